"""Typing only while an answer is being written (issue 15 §2.6), on a channel that records typing sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bots.typing_indicator import TypingIndicator, typing_wanted

WAIT = 5.0  # bound on waiting for a condition, not a duration under test


class TypingChannel:
    id = 1

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self.changed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        self.started += 1
        self.changed.set()
        try:
            yield
        finally:
            self.ended += 1
            self.changed.set()

    async def until(self, condition) -> None:
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), WAIT)


def status(phase: str, *, request_id: int = 7, status: str = "generating", **extra) -> dict:
    return {"type": "request.status", "request_id": request_id, "status": status, "phase": phase, **extra}


class TypingWantedTests:
    def test_writing_phases_and_text_want_typing(self):
        for phase in ("loading_model", "thinking", "generating", "searching"):
            assert typing_wanted(status(phase)) is True
        assert typing_wanted({"type": "request.delta", "request_id": 7, "offset": 0, "text": "a"}) is True

    def test_waiting_and_the_end_do_not(self):
        assert typing_wanted({"type": "request.queued", "request_id": 7, "position": 2}) is False
        assert typing_wanted(status("", status="held")) is False
        assert typing_wanted(status("starting")) is False  # waiting for a model slot
        assert typing_wanted(status("budget")) is False
        assert typing_wanted(status("resuming", status="queued", reset=True)) is False
        for kind in ("request.done", "request.failed", "request.cancelled"):
            assert typing_wanted({"type": kind, "request_id": 7}) is False

    def test_other_events_change_nothing(self):
        assert typing_wanted({"type": "system.health"}) is None


class TypingIndicatorTests:
    async def test_it_types_while_the_answer_is_written_and_stops_when_it_waits_again_or_ends(self):
        channel = TypingChannel()
        indicator = TypingIndicator(limit=600)
        indicator.follow(7, channel)

        indicator.on_event({"type": "request.queued", "request_id": 7, "position": 1})
        indicator.on_event(status("routing", status="routing"))
        assert not indicator.is_typing(7)

        indicator.on_event(status("generating"))
        await channel.until(lambda: channel.started == 1)
        indicator.on_event({"type": "request.delta", "request_id": 7, "offset": 0, "text": "Hi"})
        assert indicator.is_typing(7)

        indicator.on_event(status("resuming", status="queued", reset=True))  # back in the queue
        await channel.until(lambda: channel.ended == 1)
        assert not indicator.is_typing(7)

        indicator.on_event(status("generating"))
        await channel.until(lambda: channel.started == 2)
        indicator.on_event({"type": "request.done", "request_id": 7})
        await channel.until(lambda: channel.ended == 2)

        indicator.on_event(status("generating"))  # no longer followed
        assert not indicator.is_typing(7) and channel.started == 2

    async def test_typing_ends_after_its_limit_whatever_the_events_say(self):
        channel = TypingChannel()
        indicator = TypingIndicator(limit=0.05)
        indicator.follow(7, channel)

        indicator.on_event(status("thinking"))

        await channel.until(lambda: channel.ended == 1)
        assert not indicator.is_typing(7)

    async def test_requests_it_does_not_follow_are_ignored(self):
        indicator = TypingIndicator(limit=600)

        indicator.on_event(status("generating", request_id=8))

        assert not indicator.is_typing(8)
