"""Reading the index's state, for the console and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from knowledge.models import EmbeddingState, IndexedChannel


@dataclass(frozen=True)
class ChannelStats:
    pk: int
    guild_id: int
    channel_id: int
    name: str
    messages: int  # indexed and searchable or about to be
    backlog: int  # waiting for their embedding
    backfill_done: bool
    backfilled: int
    last_indexed_at: datetime | None
    last_error: str
    last_error_at: datetime | None


def channel_stats() -> list[ChannelStats]:
    rows = IndexedChannel.objects.annotate(
        live=Count("messages", filter=Q(messages__deleted=False)),
        waiting=Count("messages", filter=Q(messages__deleted=False, messages__needs_embedding=True)),
    )
    return [
        ChannelStats(
            pk=row.pk,
            guild_id=row.guild_id,
            channel_id=row.channel_id,
            name=row.name,
            messages=row.live,
            backlog=row.waiting,
            backfill_done=row.backfill_done,
            backfilled=row.backfilled,
            last_indexed_at=row.last_indexed_at,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
        )
        for row in rows
    ]


def embedding_state() -> EmbeddingState:
    return EmbeddingState.current()
