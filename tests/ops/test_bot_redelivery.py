"""The bot killed mid-stream: what it never delivered is delivered once after it restarts.

Service level, as the bot's outbox sees the database (the gateway is Discord's).
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from bots import services
from conversations.models import Request
from pipeline.processing import process_request

ALICE = services.DiscordAuthor(id=1001, username="alice", display_name="Alice")


def submit(content: str, message_id: int) -> Request:
    return services.submit_discord_message(
        author=ALICE, channel_id=555, channel_title="a thread", content=content, message_id=message_id
    ).request


def restart_outbox() -> list[int]:
    """What a freshly started bot delivers: each undelivered answer it manages to claim."""
    return [r.pk for r in services.undelivered_requests() if services.claim_undelivered(request_id=r.pk)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class BotRestartRedeliveryTests:
    def test_an_answer_that_finished_while_the_bot_was_down_is_delivered_once(self, fake_ollama):
        fake_ollama.script("Finished while you were away.")
        request = submit("hello", 1)
        # The bot was showing it live and died before the final edit: nothing marked delivered.
        process_request(request_id=request.pk)

        assert restart_outbox() == [request.pk]
        assert restart_outbox() == []  # a second restart sends nothing again
        request.refresh_from_db()
        assert request.delivered_at is not None
        assert request.reply.content == "Finished while you were away."

    def test_a_retried_failure_is_delivered_again_once_answered(self, fake_ollama):
        fake_ollama.script(error=(404, "model 'gpt-oss:20b' not found"), times=1)
        request = submit("hello", 2)
        process_request(request_id=request.pk)
        assert restart_outbox() == [request.pk]  # the failure reached Discord

        fake_ollama.script("Second time lucky.")
        call_command("retry", str(request.pk), stdout=io.StringIO())
        process_request(request_id=request.pk)

        assert restart_outbox() == [request.pk]
        request.refresh_from_db()
        assert (request.status, request.reply.content) == (Request.Status.DONE, "Second time lucky.")

    def test_held_requests_are_not_delivered_until_answered(self):
        from ops.maintenance import set_maintenance

        set_maintenance(mode="soft", changed_by="ada")
        submit("later", 3)

        assert restart_outbox() == []
