"""Rendering one streamed answer into Discord messages, throttled.

The model's text arrives in small deltas; Discord allows few writes (5 edits per
5 s per channel) and discord.py queues edits behind its rate limiter instead of
failing, so editing on every delta lags further and further behind. The renderer
coalesces deltas and edits each message at most once per `edit_interval`, keeps
all edits within the channel's window, moves on to a new message when the text
outgrows one (closing and reopening code blocks, see `bots.render`), and always
ends with the exact final text.

No Django and no Discord connection: the target is anything with `send`, `edit`
and `delete` coroutines (a thin wrapper over a discord.py channel in the bot, a
fake in tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bots.render import DISCORD_LIMIT, Part, split_with_spans

EMPTY_ANSWER = "The model finished without writing anything. Try asking again, or rephrase your message."


class DiscordTarget(Protocol):
    """Where the messages of one answer go: a Discord channel or thread."""

    async def send(self, content: str) -> Any:
        """Post a new message and return a handle for editing it."""

    async def edit(self, handle: Any, content: str) -> None: ...

    async def delete(self, handle: Any) -> None: ...


@dataclass
class _Message:
    handle: Any
    content: str | None  # what Discord shows; None for a placeholder we did not write
    written_at: float


@dataclass(frozen=True)
class _Op:
    kind: str  # "send", "edit" or "delete"
    index: int
    content: str = ""


class LiveMessageRenderer:
    """Turns the text deltas of one answer into Discord sends and edits.

    Call `status()` for placeholder text ("Queued (position 3)", "Thinking…") shown
    until model text arrives, `feed()` for each delta, then `await finish()`. Both
    `status()` and `feed()` only record and return; a background task does the
    writing, and starts on the first call (so they must be called with an event
    loop running).

    Guarantees:
    - at most one edit per message per `edit_interval` seconds, and at most
      `window_writes` edits (and separately sends) per `window` seconds overall;
    - a rate-limit error (anything with `retry_after`, or HTTP status 429) waits
      that long (1 s if unknown) and tries again with the newest content;
    - when `finish()` returns, the messages read exactly
      `split_message(final text)`; it waits only as long as the limits above demand.
    """

    def __init__(
        self,
        target: DiscordTarget,
        *,
        edit_interval: float = 1.1,
        window_writes: int = 5,
        window: float = 5.0,
        limit: int = DISCORD_LIMIT,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        existing: Sequence[Any] = (),
        empty_text: str = EMPTY_ANSWER,
        on_handles: Callable[[list[Any]], Awaitable[None]] | None = None,
    ) -> None:
        if window_writes < 1:
            raise ValueError("window_writes must be at least 1")
        self.target = target
        self.edit_interval = edit_interval
        self.window = window
        self.limit = limit
        # The event loop's clock by default: the one asyncio.sleep measures.
        self._clock = clock
        self._sleep = sleep
        self.empty_text = empty_text
        # Messages already showing this answer (a placeholder, or what a bot that
        # restarted had written): their content is unknown, so they are edited.
        self.messages: list[_Message] = [_Message(handle, None, -math.inf) for handle in existing]
        self._on_handles = on_handles
        self.lost_messages = 0  # messages someone deleted while they were being written
        self.edits = 0
        self.sends = 0
        self.rate_limited = 0
        self._chunks: list[str] = []
        self._text = ""
        self._settled: list[Part] = []
        self._status: str | None = None
        self._edit_times: deque[float] = deque(maxlen=window_writes)
        self._send_times: deque[float] = deque(maxlen=window_writes)
        self._finishing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        """The answer so far, exactly as fed."""
        if self._chunks:
            self._text += "".join(self._chunks)
            self._chunks.clear()
        return self._text

    @property
    def handles(self) -> list[Any]:
        return [message.handle for message in self.messages]

    def status(self, text: str) -> None:
        """Show `text` in the first message while no model text has arrived."""
        self._status = text
        self._poke()

    def restart(self, text: str = "") -> None:
        """Replace everything fed so far with ``text``: the answer started again (a retry, a resync)."""
        if self._finishing:
            raise RuntimeError("restart() after finish()")
        if not text.startswith(self.text):
            self._settled.clear()
        self._text = text
        self._poke()

    def feed(self, delta: str) -> None:
        """Append model text; it is shown unaltered, split across messages as needed."""
        if self._finishing:
            raise RuntimeError("feed() after finish()")
        if delta:
            self._chunks.append(delta)
            self._poke()

    async def finish(self, final_text: str | None = None) -> list[Any]:
        """Deliver the final text and return the handles of its messages, in order.

        `final_text`, when given, replaces what was fed (say, the answer as stored,
        after a reconnect lost some deltas). Raises what the target raised, other
        than rate limits.
        """
        if final_text is not None and final_text != self.text:
            if not final_text.startswith(self.text):
                self._settled.clear()
            self._text = final_text
        self._finishing = True
        self._poke()
        assert self._task is not None
        await self._task
        return self.handles

    async def close(self) -> None:
        """Stop writing without delivering the rest (say, when the bot shuts down)."""
        if self._task is not None:
            self._task.cancel()
            # Whatever stopped the writing (a cancel, a refused write) is the caller's to have handled.
            await asyncio.gather(self._task, return_exceptions=True)

    def _poke(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump())
        self._wake.set()

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._catch_up()
            if self._finishing:
                return

    async def _catch_up(self) -> None:
        """Write until Discord shows what it should, waiting out the limits.

        What it should show is recomputed after every wait, so deltas that arrive
        meanwhile go out in the same edit.
        """
        while True:
            due = self._next_op()
            if due is None:
                return
            op, ready_at = due
            delay = ready_at - self._now()
            if delay > 0:
                await self._pause(delay)
                continue
            try:
                await self._write(op)
            except Exception as exc:
                retry_after = _retry_after(exc)
                if retry_after is not None:
                    self.rate_limited += 1
                    await self._sleep(retry_after)
                elif op.kind != "send" and getattr(exc, "status", None) == 404:
                    # Someone deleted this message: the parts from here on move up one
                    # message, and the last goes out as a new one.
                    del self.messages[op.index]
                    self.lost_messages += 1
                    await self._handles_changed()
                else:
                    raise

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds, or less if poked meanwhile: new text may need a new message."""
        self._wake.clear()
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    def _next_op(self) -> tuple[_Op, float] | None:
        """The write to do next and when it may happen, or None when up to date.

        Of the writes due now, the first message's goes first; otherwise the one
        that becomes due soonest.
        """
        wanted = self._wanted()
        ops: list[tuple[float, int, _Op]] = []
        for index, content in enumerate(wanted):
            if index >= len(self.messages):
                ops.append((self._slot(self._send_times), index, _Op("send", index, content)))
                break  # messages are sent in order
            message = self.messages[index]
            if message.content != content:
                # Live edits leave one edit of the window free, so that the final
                # content of a message never waits for the window to drain.
                final = self._finishing or index < len(self._settled)
                slot = self._slot(self._edit_times, spare=0 if final else 1)
                ops.append((max(message.written_at + self.edit_interval, slot), index, _Op("edit", index, content)))
        if self._finishing and len(self.messages) > len(wanted):
            # The final text needs fewer messages than were streamed: only after a replacement.
            ops.append((-math.inf, len(self.messages) - 1, _Op("delete", len(self.messages) - 1)))
        if not ops:
            return None
        now = self._now()
        ready = [op for op in ops if op[0] <= now]
        ready_at, _, op = min(ready, key=lambda o: o[1]) if ready else min(ops)
        return op, ready_at

    def _slot(self, times: deque[float], spare: int = 0) -> float:
        """When a write fits in the sliding window and still leaves `spare` writes free."""
        allowed = max((times.maxlen or 1) - 1 - spare, 0)  # writes that may precede this one in the window
        if len(times) <= allowed:
            return -math.inf
        return times[len(times) - allowed - 1] + self.window

    def _wanted(self) -> list[str]:
        """The contents the messages should have now."""
        text = self.text
        parts = self._settled + split_with_spans(text, self.limit, after=self._settled[-1] if self._settled else None)
        while len(self._settled) < len(parts) and parts[len(self._settled)].settled:
            self._settled.append(parts[len(self._settled)])
        if self._finishing:
            contents = [part.content for part in parts if part.content.strip()]
            return contents or [self.empty_text]
        # Settled parts are final; show the next one live. (More can exist only while
        # whitespace trails the text, so nothing visible waits.)
        shown = parts[: len(self._settled) + 1]
        contents = [part.content for part in shown]
        live = shown[-1] if shown and shown[-1] is parts[-1] else None
        if live and live.closer and len(contents[-1]) + len(live.closer) <= self.limit:
            # Close a code block still being written, so it renders as code meanwhile.
            contents[-1] += live.closer
        contents = [content for content in contents if content.strip()]
        if not contents and self._status:
            return [self._status]
        return contents

    async def _write(self, op: _Op) -> None:
        now = self._now()
        if op.kind == "send":
            handle = await self.target.send(op.content)
            self.messages.append(_Message(handle, op.content, now))
            self._send_times.append(now)
            self.sends += 1
            await self._handles_changed()
        elif op.kind == "edit":
            message = self.messages[op.index]
            await self.target.edit(message.handle, op.content)
            message.content, message.written_at = op.content, now
            self._edit_times.append(now)
            self.edits += 1
        else:
            await self.target.delete(self.messages[op.index].handle)
            del self.messages[op.index]
            await self._handles_changed()

    async def _handles_changed(self) -> None:
        if self._on_handles is not None:
            await self._on_handles(self.handles)


def _retry_after(exc: Exception) -> float | None:
    """Seconds to wait before retrying after `exc`, or None if it is no rate limit.

    discord.py waits out most 429s itself. It raises `RateLimited` (which has
    `retry_after`) when the wait would exceed the client's `max_ratelimit_timeout`,
    and `HTTPException` with status 429 when Cloudflare answers or retries run out.
    """
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        return max(0.0, float(retry_after))
    if getattr(exc, "status", None) == 429:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        try:
            return max(0.0, float(headers.get("Retry-After", 1.0)))
        except (TypeError, ValueError):
            return 1.0
    return None
