"""The migration that gives messages of several clauses their clause vectors queues exactly those for embedding."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = ("knowledge", "0004_indexedthread")
AFTER = ("knowledge", "0005_indexedmessage_clause_pieces")


def migrate(target: tuple[str, str]) -> None:
    MigrationExecutor(connection).migrate([target])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ClausePiecesMigrationTests:
    def test_only_embedded_messages_of_several_clauses_are_queued_again(self):
        leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
        try:
            migrate(BEFORE)
            apps = MigrationExecutor(connection).loader.project_state([BEFORE]).apps
            channel = apps.get_model("knowledge", "IndexedChannel").objects.create(guild_id=1, channel_id=2, name="g")
            messages = apps.get_model("knowledge", "IndexedMessage").objects
            now = timezone.now()
            for message_id, text, deleted in (
                (10, "Code freeze starts Wednesday noon, only hotfixes after that", False),
                (11, "gg", False),
                (12, "", True),
            ):
                messages.create(
                    message_id=message_id,
                    channel=channel,
                    posted_in=2,
                    guild_id=1,
                    author_id=1,
                    author_name="Alice",
                    created_at=now,
                    text=text,
                    embedding=b"\0" * 16,
                    needs_embedding=False,
                    deleted=deleted,
                )

            migrate(AFTER)

            from knowledge.models import IndexedMessage

            queued = set(IndexedMessage.objects.filter(needs_embedding=True).values_list("message_id", flat=True))
            assert queued == {10}
            assert IndexedMessage.objects.get(pk=10).embedding is not None  # searchable meanwhile
        finally:
            for leaf in leaves:
                migrate(leaf)
