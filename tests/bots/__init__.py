"""Fakes for the Discord side, shared by the bot tests and `bench/discord_render.py`.

- `virtual_time()`: makes an asyncio loop's clock virtual. Whenever every task is
  waiting on a timer, time jumps to the next timer instead of passing, so a
  200-second stream runs in milliseconds while `asyncio.sleep`, timeouts and
  `loop.time()` behave exactly as in real time.
- `FakeDiscordChannel`: a channel that enforces Discord's per-channel limits
  (5 sends and 5 edits per 5 s, sliding), rejects what the API rejects, and
  records every call with its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import discord

DISCORD_LIMIT = 2000


@contextlib.contextmanager
def virtual_time(loop: asyncio.AbstractEventLoop | None = None) -> Iterator[Callable[[], float]]:
    """Run `loop` (default: the running one) on virtual time; yields its clock.

    Works by replacing the loop's `time()` and its selector's `select()`: asyncio
    asks the selector to block until the next timer is due, and this one moves
    the clock there instead. Relies on `loop._selector`, private but unchanged
    since asyncio began.
    """
    loop = loop or asyncio.get_running_loop()
    selector = loop._selector  # type: ignore[attr-defined]  # see docstring
    real_select = selector.select
    now = [loop.time()]

    def select(timeout: float | None = None) -> list:
        events = real_select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # Nothing is scheduled: only real I/O or another thread can wake us.
            events = real_select(30)
            if not events:
                raise RuntimeError("virtual time: every task waits for something that never comes")
            return events
        now[0] += timeout
        return []

    loop.time = lambda: now[0]  # type: ignore[method-assign]
    selector.select = select
    try:
        yield loop.time
    finally:
        del loop.time
        del selector.select


@dataclass
class Call:
    at: float
    op: str  # "send", "edit" or "delete"
    message: int
    content: str
    rejected: bool = False  # answered with a 429 or another error
    done_at: float | None = None  # when the result was visible in Discord


@dataclass
class FakeDiscordChannel:
    """A Discord channel or thread, as `LiveMessageRenderer` sees it.

    `shown` maps message ids to what Discord displays. Exceptions appended to
    `failures` with `fail_next()` are raised by the next matching call instead of
    doing it.
    """

    latency: float = 0.0
    writes_per_window: int = 5
    window: float = 5.0
    clock: Callable[[], float] | None = None
    rate_limited: int = 0  # calls answered with 429
    calls: list[Call] = field(default_factory=list)
    shown: dict[int, str] = field(default_factory=dict)
    _failures: list[tuple[str, Exception]] = field(default_factory=list, init=False, repr=False)
    _accepted: dict[str, deque[float]] = field(
        default_factory=lambda: {"send": deque(), "edit": deque()}, init=False, repr=False
    )
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), init=False, repr=False)

    def now(self) -> float:
        return self.clock() if self.clock else asyncio.get_running_loop().time()

    def fail_next(self, op: str, exc: Exception) -> None:
        self._failures.append((op, exc))

    async def send(self, content: str) -> int:
        message = next(self._ids)
        call = self._admit("send", message, content)
        await self._travel()
        self.shown[message] = content
        call.done_at = self.now()
        return message

    async def edit(self, handle: int, content: str) -> None:
        call = self._admit("edit", handle, content)
        if handle not in self.shown:
            call.rejected = True
            raise discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), "Unknown Message")
        await self._travel()
        self.shown[handle] = content
        call.done_at = self.now()

    async def delete(self, handle: int) -> None:
        call = self._admit("delete", handle, "")
        await self._travel()
        del self.shown[handle]
        call.done_at = self.now()

    def _admit(self, op: str, message: int, content: str) -> Call:
        now = self.now()
        call = Call(now, op, message, content)
        self.calls.append(call)
        for index, (failing_op, exc) in enumerate(self._failures):
            if failing_op == op:
                del self._failures[index]
                call.rejected = True
                raise exc
        if op != "delete":
            if not content.strip() or len(content) > DISCORD_LIMIT:
                call.rejected = True
                raise ValueError(f"400 Bad Request: content of {len(content)} characters")
            accepted = self._accepted[op]
            while accepted and accepted[0] <= now - self.window + 1e-9:
                accepted.popleft()
            if len(accepted) >= self.writes_per_window:
                call.rejected = True
                self.rate_limited += 1
                raise discord.RateLimited(accepted[0] + self.window - now)
            accepted.append(now)
        return call

    async def _travel(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    # Views for assertions.

    def contents(self) -> list[str]:
        """What the channel shows, oldest message first."""
        return [self.shown[message] for message in sorted(self.shown)]

    def writes(self, message: int) -> list[Call]:
        """Accepted sends and edits of one message."""
        return [c for c in self.calls if c.message == message and not c.rejected and c.op in ("send", "edit")]

    def rejected(self) -> list[Call]:
        return [c for c in self.calls if c.rejected]
