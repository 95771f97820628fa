"""Discord's "is typing…" for an answer, shown only while a worker is writing it.

Not while the request waits (queued, held by maintenance, waiting for a model
slot or for the user's budget): typing there would claim work that is not
happening. It ends when the request ends or goes back to waiting, and after
``limit`` seconds in any case, whatever happens to the event stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

logger = logging.getLogger(__name__)

# Phases in which a worker is producing the answer (``conversations.phases``); the
# others ("routing", "starting", "budget", "resuming") are waits or take no time.
WORKING_PHASES = frozenset({"loading_model", "thinking", "generating", "searching", "reading", "retrying"})
ENDED = frozenset({"request.done", "request.failed", "request.cancelled"})


def typing_wanted(event: dict[str, Any]) -> bool | None:
    """True: this event says the answer is being written; False: it is not (waiting or ended); None: no change."""
    kind = event.get("type")
    if kind == "request.delta":
        return True
    if kind == "request.queued" or kind in ENDED:
        return False
    if kind == "request.status":
        if event.get("reset") or event.get("status") in ("queued", "held"):
            return False
        return event.get("phase") in WORKING_PHASES
    return None


class TypingIndicator:
    """Typing in each followed request's channel while its events say it is being written."""

    def __init__(self, *, limit: float) -> None:
        self.limit = limit
        self._channels: dict[int, Any] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def follow(self, request_id: int, channel: Any) -> None:
        """Show typing in ``channel`` when ``request_id``'s events say so (nothing yet)."""
        self._channels[request_id] = channel

    def on_event(self, event: dict[str, Any]) -> None:
        request_id = event.get("request_id")
        if request_id not in self._channels:
            return
        wanted = typing_wanted(event)
        if wanted:
            self._start(request_id)
        elif wanted is False:
            self._stop(request_id)
            if event.get("type") in ENDED:
                self.forget(request_id)

    def is_typing(self, request_id: int) -> bool:
        task = self._tasks.get(request_id)
        return task is not None and not task.done()

    def forget(self, request_id: int) -> None:
        """The request ended: stop typing for it and stop following it."""
        self._stop(request_id)
        self._channels.pop(request_id, None)

    def close(self) -> None:
        for request_id in list(self._channels):
            self.forget(request_id)

    def _start(self, request_id: int) -> None:
        if not self.is_typing(request_id):
            self._tasks[request_id] = asyncio.create_task(self._type(self._channels[request_id]))

    def _stop(self, request_id: int) -> None:
        task = self._tasks.pop(request_id, None)
        if task is not None:
            task.cancel()

    async def _type(self, channel: Any) -> None:
        # discord.py's typing() sends "typing" now and every 5 s until the block ends;
        # cancelling this task ends it.
        try:
            async with channel.typing():
                await asyncio.sleep(self.limit)
        except discord.HTTPException as exc:
            logger.info("Could not show typing in channel %s: %s", getattr(channel, "id", "?"), exc)
