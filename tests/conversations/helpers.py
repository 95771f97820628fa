"""Small tools the conversation tests share: the task queue, read after the fact, and written histories."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from conversations.models import ChatUser, Message, Request
from tests import personas


def drain_queue() -> list[dict[str, Any]]:
    """Every task waiting in the broker, taken off it (decoded: ``func``, ``args``, ``kwargs``)."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    tasks = []
    while broker.queue_size():
        for ack_id, payload in broker.dequeue() or []:
            tasks.append(SignedPackage.loads(payload))
            if ack_id is not None:
                broker.acknowledge(ack_id)
    return tasks


class History:
    """A thread written message by message, one second apart, ending in a request."""

    def __init__(self, owner: ChatUser | None = None) -> None:
        self.owner = owner or personas.discord_user()
        self.thread = personas.thread_of(self.owner)
        self.clock = timezone.now() - timedelta(days=1)

    def say(self, content: str, *, by: ChatUser | None = None, tokens: int | None = None) -> Message:
        self.clock += timedelta(seconds=1)
        return Message.objects.create(
            thread=self.thread,
            author=by or self.owner,
            role=Message.Role.USER,
            content=content,
            token_count=tokens,
            created_at=self.clock,
        )

    def answer(self, content: str, *, tokens: int | None = None) -> Message:
        self.clock += timedelta(seconds=1)
        return Message.objects.create(
            thread=self.thread, role=Message.Role.ASSISTANT, content=content, token_count=tokens, created_at=self.clock
        )

    def ask(self, content: str, *, by: ChatUser | None = None) -> Request:
        message = self.say(content, by=by)
        return Request.objects.create(user=by or self.owner, thread=self.thread, message=message)
