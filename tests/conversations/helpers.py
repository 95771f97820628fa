"""Small tools the conversation tests share: the task queue and event groups, read after the fact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
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


async def _receive(layer: Any, channel: str) -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), timeout=0.3)


@contextmanager
def listening(group: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A channel in ``group``; calling what it yields returns the events received so far."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)("test.")
    async_to_sync(layer.group_add)(group, channel)

    def received() -> list[dict[str, Any]]:
        events = []
        while True:
            try:
                events.append(async_to_sync(_receive)(layer, channel)["event"])
            except TimeoutError:
                return events

    try:
        yield received
    finally:
        async_to_sync(layer.group_discard)(group, channel)


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
