"""Rendering one streamed answer into Discord messages, throttled.

The model's text arrives in small deltas; Discord allows few writes (5 edits and
5 sends per 5 s per channel) and discord.py queues edits behind its rate limiter
instead of failing, so editing on every delta lags further and further behind.
The renderer coalesces deltas and edits each message at most once per
`edit_interval`, keeps every write within the channel's `ChannelBudget` (one per
channel, shared by all answers shown in it, final writes first), moves on to a
new message when the text outgrows one (closing and reopening code blocks, see
`bots.render`), and always ends with the exact final text.

No Django and no Discord connection: the target is anything with `send`, `edit`
and `delete` coroutines (a thin wrapper over a discord.py channel in the bot, a
fake in tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
class _Slot:
    at: float  # when the write started; once it is done, when it was done
    done: bool = False


class ChannelBudget:
    """The message writes one Discord channel allows, shared by every answer shown in it.

    Discord counts message sends and edits per channel (a thread is a channel of
    its own): today 5 sends and, separately, 5 edits per 5 s, whichever message
    they touch. Every `LiveMessageRenderer` writing into one channel must share
    one budget, or two answers streaming at once together exceed the limit.

    The budget keeps each kind within `window_writes` per `window` seconds,
    counted from when each write was *done* (so from after Discord counted it,
    however long discord.py held it), plus `margin` for the clocks. Final writes
    come first: interim (live) writes leave `final_reserve` writes of the window
    free while more than one answer shares the channel (one while only one does;
    sends always leave one), and wait while any final write in the channel is
    waiting.

    No locks: everything runs on one event loop, and a renderer takes its slot
    (`take`) in the same step in which it found the slot free (`ready_at`).
    """

    def __init__(
        self,
        *,
        window_writes: int = 5,
        window: float = 5.0,
        margin: float = 0.05,
        final_reserve: int = 2,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if window_writes < 1:
            raise ValueError("window_writes must be at least 1")
        self.window_writes = window_writes
        self.window = window
        self.margin = margin
        self.final_reserve = final_reserve
        self._clock = clock
        self._slots: dict[str, list[_Slot]] = {"send": [], "edit": []}
        self._members: list[LiveMessageRenderer] = []
        self._finals_waiting: dict[str, set[object]] = {"send": set(), "edit": set()}

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    # -- Who writes here ---------------------------------------------------

    def join(self, member: LiveMessageRenderer) -> None:
        if member not in self._members:
            self._members.append(member)

    def leave(self, member: LiveMessageRenderer) -> None:
        if member in self._members:
            self._members.remove(member)
        self.stop_waiting(member)

    @property
    def idle(self) -> bool:
        """No answer writes here and the window holds no write: the budget can be forgotten."""
        return not self._members and not any(self._prune(kind) for kind in self._slots)

    # -- When a write may go ----------------------------------------------

    def ready_at(self, kind: str, *, final: bool, who: object = None) -> float:
        """The earliest time a write of ``kind`` ("send" or "edit") may start; ``math.inf``: once woken.

        An interim write waits for every final write waiting in this channel.
        """
        if not final and self._finals_waiting[kind] - {who}:
            return math.inf
        slots = self._prune(kind)
        spare = 0 if final else self._reserve(kind)
        allowed = max(self.window_writes - spare, 1)  # writes the window may hold, this one included
        if len(slots) < allowed:
            return -math.inf
        # The write that must age out of the window first; one still on its way counts as landing now.
        now = self.now()
        times = sorted(slot.at if slot.done else now for slot in slots)
        return times[len(times) - allowed] + self.window + self.margin

    def _reserve(self, kind: str) -> int:
        """Writes of the window that interim writes of ``kind`` leave to final ones.

        Sends need only one: most are a new answer's first message, which is
        wanted soon too, and few answers end by sending a part of their own.
        """
        reserve = self.final_reserve if kind == "edit" and len(self._members) > 1 else 1
        return min(reserve, self.window_writes - 1)

    def _prune(self, kind: str) -> list[_Slot]:
        horizon = self.now() - self.window - self.margin
        slots = self._slots[kind] = [slot for slot in self._slots[kind] if slot.at > horizon or not slot.done]
        return slots

    def wait_final(self, who: object, kind: str) -> None:
        """``who`` has a final write of ``kind`` waiting for the window: interim writes hold back."""
        self._finals_waiting[kind].add(who)

    def stop_waiting(self, who: object) -> None:
        """``who`` has no final write waiting any more: the interim writes it held back may go."""
        if any(who in waiting for waiting in self._finals_waiting.values()):
            for waiting in self._finals_waiting.values():
                waiting.discard(who)
            self._wake_others(who)

    # -- Writing -----------------------------------------------------------

    def take(self, kind: str, who: object = None) -> _Slot:
        """Count a write of ``kind`` starting now; call `done` when it returns (or fails)."""
        slot = _Slot(self.now())
        self._slots[kind].append(slot)
        self.stop_waiting(who)
        return slot

    def done(self, slot: _Slot) -> None:
        # Counted from its end: Discord saw it somewhere between start and end.
        slot.at, slot.done = max(slot.at, self.now()), True
        self._wake_others(None)  # who waited counting it as landing now may go sooner

    @contextlib.asynccontextmanager
    async def writing(
        self, kind: str, *, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    ) -> AsyncIterator[None]:
        """Around a one-off write that is not an answer's text (files, a note after it): waits as a final write."""
        token = object()
        try:
            while (delay := self.ready_at(kind, final=True, who=token) - self.now()) > 0:
                self.wait_final(token, kind)
                await sleep(delay)
        finally:
            self.stop_waiting(token)
        slot = self.take(kind, token)
        try:
            yield
        finally:
            self.done(slot)

    def _wake_others(self, who: object | None) -> None:
        for member in self._members:
            if member is not who:
                member.nudge()


@dataclass
class _Message:
    handle: Any
    content: str | None  # what Discord shows; None for a placeholder we did not write
    written_at: float  # when its last write was done


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
    - at most one edit per message per `edit_interval` seconds (counted from the
      end of one write to the start of the next), and every write within
      `budget`: the channel's, shared with the other answers in it, or (without
      one) a budget of its own of `window_writes` per `window` seconds;
    - the writes that carry final text (a finished part, the finished answer)
      go before the channel's interim edits;
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
        budget: ChannelBudget | None = None,
    ) -> None:
        self.target = target
        self.edit_interval = edit_interval
        self.budget = budget or ChannelBudget(window_writes=window_writes, window=window, clock=clock)
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
        self._finishing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # From the start, so that the channel's budget counts it (and is kept) before it writes.
        self.budget.join(self)

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
        self.budget.leave(self)

    def _poke(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump())
        self._wake.set()

    def nudge(self) -> None:
        """The channel's budget changed: look again at what may be written (the budget calls this)."""
        if self._task is not None and not self._task.done():
            self._wake.set()

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def _pump(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._catch_up()
                if self._finishing:
                    return
        finally:
            self.budget.leave(self)

    async def _catch_up(self) -> None:
        """Write until Discord shows what it should, waiting out the limits.

        What it should show is recomputed after every wait, so deltas that arrive
        meanwhile go out in the same edit.
        """
        while True:
            due = self._next_op()
            if due is None:
                return
            op, ready_at, final, held_by_budget = due
            if final and held_by_budget:
                self.budget.wait_final(self, op.kind)
            else:
                self.budget.stop_waiting(self)
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
        """Sleep `delay` seconds (forever: ``math.inf``), or less if poked or nudged meanwhile.

        New text may need a new message, and the channel's budget may have freed.
        """
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait())]
        if delay != math.inf:
            waiters.append(asyncio.ensure_future(self._sleep(delay)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _next_op(self) -> tuple[_Op, float, bool, bool] | None:
        """The write to do next and when it may happen, or None when up to date.

        Also whether it carries final text (a finished part or the finished
        answer), and whether the channel's budget, not this message's own
        interval, is what holds it back. Of the writes due now, the first
        message's goes first; otherwise the one that becomes due soonest.
        """
        wanted = self._wanted()
        ops: list[tuple[float, int, _Op, bool, bool]] = []
        for index, content in enumerate(wanted):
            final = self._finishing or index < len(self._settled)
            if index >= len(self.messages):
                budget_at = self.budget.ready_at("send", final=final, who=self)
                ops.append((budget_at, index, _Op("send", index, content), final, True))
                break  # messages are sent in order
            message = self.messages[index]
            if message.content != content:
                own_at = message.written_at + self.edit_interval
                budget_at = self.budget.ready_at("edit", final=final, who=self)
                ops.append((max(own_at, budget_at), index, _Op("edit", index, content), final, budget_at > own_at))
        if self._finishing and len(self.messages) > len(wanted):
            # The final text needs fewer messages than were streamed: only after a replacement.
            index = len(self.messages) - 1
            ops.append((-math.inf, index, _Op("delete", index), True, False))
        if not ops:
            return None
        now = self._now()
        ready = [op for op in ops if op[0] <= now]
        ready_at, _, op, final, held = min(ready, key=lambda o: o[1]) if ready else min(ops, key=lambda o: o[:2])
        return op, ready_at, final, held and ready_at > now

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
        if op.kind == "send":
            slot = self.budget.take("send", self)
            try:
                handle = await self.target.send(op.content)
            finally:
                self.budget.done(slot)
            self.messages.append(_Message(handle, op.content, self._now()))
            self.sends += 1
            await self._handles_changed()
        elif op.kind == "edit":
            message = self.messages[op.index]
            slot = self.budget.take("edit", self)
            try:
                await self.target.edit(message.handle, op.content)
            finally:
                self.budget.done(slot)
            message.content, message.written_at = op.content, self._now()
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
