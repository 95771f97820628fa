"""Turning a request's events into Discord messages.

The bot tracks each request it submitted with a ``DiscordTarget`` (the thread
or DM to answer in). Events from web's websocket are routed to that request's
``LiveMessageRenderer``: a placeholder shows the status, then the live text,
then the exact final text. Requests the bot lost track of (it restarted) are
delivered from the database by the outbox instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from artifacts.extraction import describe_size
from bots.render import discord_footer, with_footer
from bots.stream import ChannelBudget, DiscordTarget, LiveMessageRenderer
from conversations.phases import describe_phase, describe_queued
from trollama.logs import request_context

logger = logging.getLogger(__name__)

# Discord accepts at most 10 attachments per message, and uploads in DMs up to
# 10 MiB (a guild's limit is ``guild.filesize_limit``, higher with boosts).
MAX_ATTACHMENTS = 10
DM_UPLOAD_LIMIT = 10 * 1024 * 1024

FetchFile = Callable[[int], Awaitable[bytes]]

FAILED_PREFIX = "❌ "
CANCELLED_TEXT = "Cancelled."


# Events about a whole thread whose ``notice`` is said in its channel: a summary
# was written, or an operator reset or closed it from the console.
THREAD_NOTICE_TYPES = frozenset({"thread.summarized", "thread.reset", "thread.closed"})


def thread_notice(event: dict[str, Any]) -> tuple[int, str] | None:
    """The Discord channel and text to post for a notice about a thread, or None when it is not ours to post.

    Ours: one of ``THREAD_NOTICE_TYPES``, about a Discord thread, with a notice.
    """
    if event.get("type") not in THREAD_NOTICE_TYPES or event.get("platform") != "discord":
        return None
    channel = str(event.get("thread_external_id", ""))
    return (int(channel), str(event["notice"])) if channel.isdigit() and event.get("notice") else None


@dataclass
class Outcome:
    request_id: int
    status: str  # done, failed or cancelled; "undelivered" when the bot gave up showing it
    error: str = ""


OnFinish = Callable[[Outcome], Awaitable[None]]
# While deltas are missing, how often to read the stored partial answer (saved every few seconds).
GAP_RESYNC_INTERVAL = 1.0
RESUMED_NOTE = "↻ {reason}"


@dataclass(eq=False)
class _View:
    """One request being shown: its renderer and its lane, a queue of events applied in order."""

    request_id: int
    renderer: LiveMessageRenderer
    attempt: int | None = None  # the attempt whose text is shown
    gap: bool = False  # a delta was missed: later ones wait in ``pending`` until a resync fills the gap
    pending: list[tuple[int, str]] = field(default_factory=list)
    resynced_at: float = 0.0  # loop time of the last resync a gap asked for
    on_finish: list[OnFinish] = field(default_factory=list)
    lane: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Outcome | None]]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


# -- Files ----------------------------------------------------------------


@runtime_checkable
class FileTarget(Protocol):
    """A ``DiscordTarget`` that can also take files: the bot's channels, not every fake."""

    @property
    def upload_limit(self) -> int:
        """Bytes one message may upload here."""

    async def send(self, content: str) -> Any: ...

    async def attach(self, handle: Any, files: list[tuple[str, bytes]]) -> None:
        """Add ``(filename, data)`` files to the message ``handle``."""


@dataclass(frozen=True)
class FilePlan:
    attach: list[dict[str, Any]]  # artifact summaries (see artifacts.selectors.artifact_summary)
    link: list[dict[str, Any]]


def plan_files(artifacts: Sequence[dict[str, Any]], *, upload_limit: int) -> FilePlan:
    """Which files go up as attachments and which as links.

    In answer order, a file is attached while the files attached so far and it
    fit in ``upload_limit`` together and in ``MAX_ATTACHMENTS``; every other
    file gets its signed link. (Discord counts the limit per file and the
    request size per message; keeping the total under it satisfies both.)
    """
    attach: list[dict[str, Any]] = []
    link: list[dict[str, Any]] = []
    total = 0
    for artifact in artifacts:
        if len(attach) < MAX_ATTACHMENTS and total + artifact["size"] <= upload_limit:
            attach.append(artifact)
            total += artifact["size"]
        else:
            link.append(artifact)
    return FilePlan(attach=attach, link=link)


def files_message(links: Sequence[dict[str, Any]], notes: Sequence[str]) -> str:
    """The message after an answer with links to files too large to attach, and notes about files left out.

    Expiry is a Discord timestamp (``<t:…:R>``), which every reader sees in their own time zone.
    """
    lines = []
    for artifact in links:
        expires = int(datetime.fromisoformat(artifact["expires_at"]).timestamp())
        lines.append(
            f"📎 **{artifact['filename']}** ({describe_size(artifact['size'])}, too large to attach here): "
            f"<{artifact['url']}> (the link expires <t:{expires}:R>)"
        )
    lines.extend(f"⚠️ {note}" for note in notes)
    return "\n".join(lines)


async def deliver_files(
    target: DiscordTarget,
    answer_message: Any,
    artifacts: Sequence[dict[str, Any]],
    notes: Sequence[str],
    *,
    fetch: FetchFile | None,
    budget: ChannelBudget | None = None,
) -> None:
    """Attach the answer's files to its last message; link those past the upload limit.

    A target that cannot take files, a file that cannot be read, or Discord
    refusing the upload all fall back to links, so the user always gets the files.
    Each write waits for ``budget`` (the channel's) when one is given.
    """
    budget = budget or ChannelBudget()
    if not artifacts and not notes:
        return
    plan = FilePlan(attach=[], link=list(artifacts))
    if isinstance(target, FileTarget) and fetch is not None and answer_message is not None:
        plan = plan_files(artifacts, upload_limit=target.upload_limit)
        try:
            if plan.attach:
                files = [(artifact["filename"], await fetch(artifact["id"])) for artifact in plan.attach]
                async with budget.writing("edit"):
                    await target.attach(answer_message, files)
        except Exception:
            logger.warning("Could not attach %d file(s); sending links instead", len(plan.attach), exc_info=True)
            plan = FilePlan(attach=[], link=[*plan.attach, *plan.link])
    text = files_message(plan.link, notes)
    if text:
        async with budget.writing("send"):
            await target.send(text)


def _with_notices(content: str, summary: dict[str, Any]) -> str:
    """The answer with the request's stored notices under it; the model's text itself stays exactly as written."""
    return with_footer(content, discord_footer(summary.get("notices")))


class Delivery:
    """Routes events to the renderers of the requests this bot is showing.

    Each request has a lane: its events (and resyncs from the database) are
    applied in order by a task of its own, so one answer's slow final edit,
    file upload or Discord error never holds up another's. An error showing
    one answer ends that answer's lane only (the bot's reconcile picks it up
    again); nothing here escapes into the event stream.

    Answers shown in the same Discord channel (or thread) share one
    ``ChannelBudget``, since Discord counts their writes together: two answers
    streaming at once then stay within the channel's limits, and the writes that
    finish an answer go before the others' live edits. ``share_channel_budget``
    False gives each answer a budget of its own instead (what the bot did
    before; only the benchmark's baseline wants it).
    """

    def __init__(
        self,
        *,
        edit_interval: float,
        mark_delivered: Callable[[int], Awaitable[None]],
        fetch_file: FetchFile | None = None,
        remember_messages: Callable[[int, list[int]], Awaitable[None]] | None = None,
        fetch_snapshot: Callable[[int], Awaitable[dict[str, Any] | None]] | None = None,
        share_channel_budget: bool = True,
    ) -> None:
        self._edit_interval = edit_interval
        self._share_channel_budget = share_channel_budget
        self._budgets: dict[Any, ChannelBudget] = {}
        self._mark_delivered = mark_delivered
        self._fetch_file = fetch_file
        self._remember_messages = remember_messages
        self._fetch_snapshot = fetch_snapshot
        self._views: dict[int, _View] = {}

    def track(
        self,
        request_id: int,
        target: DiscordTarget,
        *,
        existing: Sequence[Any] = (),
        on_finish: OnFinish | None = None,
    ) -> bool:
        """Start showing a request in ``target`` (editing ``existing`` messages first).

        False if it is shown already; ``on_finish`` is then added to that view.
        """
        view = self._views.get(request_id)
        if view is not None:
            if on_finish is not None:
                view.on_finish.append(on_finish)
            return False

        async def remember(handles: list[Any]) -> None:
            await self._remember(request_id, handles)

        renderer = LiveMessageRenderer(
            target,
            edit_interval=self._edit_interval,
            existing=existing,
            on_handles=remember,
            budget=self.budget_of(target),
        )
        view = _View(request_id, renderer, on_finish=[on_finish] if on_finish else [])
        self._views[request_id] = view
        view.task = asyncio.get_running_loop().create_task(self._run_lane(view))
        return True

    def budget_of(self, target: DiscordTarget) -> ChannelBudget:
        """The write budget of the channel ``target`` writes into (see the class docstring)."""
        if not self._share_channel_budget:
            return ChannelBudget()
        # A target that names no channel (a test's fake) is a channel of its own.
        key = getattr(target, "channel_id", None) or id(target)
        # Forget the other channels no answer has written to for a whole window.
        self._budgets = {k: budget for k, budget in self._budgets.items() if k == key or not budget.idle}
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = ChannelBudget()
        return budget

    def is_tracking(self, request_id: int) -> bool:
        return request_id in self._views

    def tracked(self) -> list[int]:
        return list(self._views)

    def request_shown_in(self, message_id: int) -> int | None:
        """The in-progress request whose answer is shown in the bot's message ``message_id``."""
        for request_id, view in self._views.items():
            if any(getattr(handle, "id", None) == message_id for handle in view.renderer.handles):
                return request_id
        return None

    def dispatch(self, event: dict[str, Any]) -> asyncio.Future[Outcome | None] | None:
        """Queue an event on its request's lane; None when the request is not shown here.

        The future resolves, once the event is applied, to the outcome when it
        ended the request (or None).
        """
        view = self._views.get(event.get("request_id"))  # type: ignore[arg-type]
        if view is None:
            return None
        done: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        view.lane.put_nowait((event, done))
        return done

    async def handle(self, event: dict[str, Any]) -> Outcome | None:
        """Apply one event and wait for it; returns the outcome when it finished a tracked request."""
        done = self.dispatch(event)
        return await done if done is not None else None

    def resync(self, request_id: int, snapshot: dict[str, Any] | None) -> asyncio.Future[Outcome | None] | None:
        """Bring a shown request up to date with its stored state (``pipeline.snapshots.request_snapshot``)."""
        return self.dispatch({"type": "resync", "request_id": request_id, "snapshot": snapshot})

    async def _run_lane(self, view: _View) -> None:
        outcome: Outcome | None = None
        while outcome is None:
            event, done = await view.lane.get()
            with request_context(view.request_id):
                try:
                    outcome = await self._apply(view, event)
                except Exception as exc:
                    outcome = await self._give_up(view, exc)
            if not done.done():
                done.set_result(outcome)
        while not view.lane.empty():  # events that came after the end
            _, done = view.lane.get_nowait()
            if not done.done():
                done.set_result(None)

    async def _apply(self, view: _View, event: dict[str, Any]) -> Outcome | None:
        kind = event.get("type")
        request_id = view.request_id
        if kind == "resync":
            return await self._resync(view, event["snapshot"])
        if kind == "request.queued":
            if not view.renderer.text:
                view.renderer.status(describe_queued(event))
        elif kind == "request.status":
            self._on_status(view, event)
        elif kind == "request.delta":
            if self._follow_attempt(view, event.get("attempt")):
                view.pending.append((event["offset"], event["text"]))
                self._apply_pending(view)
                if view.gap:
                    return await self._fill_gap(view)
        elif kind == "request.done":
            files = (event.get("artifacts") or [], event.get("artifact_notes") or [])
            text = _with_notices(event["content"], event.get("request", {}))
            return await self._finish(view, Outcome(request_id, "done"), text, files=files)
        elif kind == "request.failed":
            outcome = Outcome(request_id, "failed", error=event.get("error", ""))
            return await self._finish(view, outcome, FAILED_PREFIX + outcome.error)
        elif kind == "request.cancelled":
            return await self._finish(view, Outcome(request_id, "cancelled"), None)
        return None

    def _follow_attempt(self, view: _View, attempt: int | None) -> bool:
        """Move to a newer attempt (its text replaces the broken one's); False for an older attempt's event."""
        if attempt is None or view.attempt is None:
            view.attempt = attempt if view.attempt is None else view.attempt
            return True
        if attempt < view.attempt:
            return False
        if attempt > view.attempt:
            view.attempt = attempt
            if view.renderer.text:
                self._start_over(view, "")
        return True

    def _start_over(self, view: _View, reason: str) -> None:
        view.renderer.restart("")
        view.pending.clear()
        view.gap = False
        if reason:
            view.renderer.status(RESUMED_NOTE.format(reason=reason))

    def _on_status(self, view: _View, event: dict[str, Any]) -> None:
        attempt = event.get("attempt")
        if event.get("reset"):
            # An event older than what is shown (read before a resync) is ignored.
            if attempt is not None and view.attempt is not None and attempt < view.attempt:
                return
            view.attempt = attempt if attempt is not None else view.attempt
            self._start_over(view, event.get("reason", ""))
            if event.get("phase") == "resuming":
                return  # back in the queue: the note stays until the next attempt says more
        elif not self._follow_attempt(view, attempt):
            return
        if view.renderer.text:
            return
        label = describe_phase(event.get("phase") or "", model=event.get("model") or "", reason=event.get("reason", ""))
        if label:
            view.renderer.status(label)

    def _apply_pending(self, view: _View) -> None:
        """Feed the deltas that continue what is shown; stop at a gap (a resync or the final text fills it)."""
        while view.pending:
            offset, text = view.pending[0]
            written = len(view.renderer.text)
            if offset > written:
                view.gap = True
                return
            view.pending.pop(0)
            if text[written - offset :]:
                view.renderer.feed(text[written - offset :])
        view.gap = False

    async def _fill_gap(self, view: _View) -> Outcome | None:
        """Deltas were missed (web was away): read the stored partial answer, at most once a second."""
        now = asyncio.get_running_loop().time()
        if self._fetch_snapshot is None or now - view.resynced_at < GAP_RESYNC_INTERVAL:
            return None
        view.resynced_at = now
        return await self._resync(view, await self._fetch_snapshot(view.request_id))

    async def _resync(self, view: _View, snapshot: dict[str, Any] | None) -> Outcome | None:
        request_id = view.request_id
        if snapshot is None:  # deleted (the conversation was reset or closed)
            return await self._finish(view, Outcome(request_id, "cancelled"), None)
        status = snapshot["status"]
        if status == "done":
            files: tuple[list[dict[str, Any]], list[str]] = (snapshot.get("artifacts") or [], [])
            text = _with_notices(snapshot["content"], snapshot)
            return await self._finish(view, Outcome(request_id, "done"), text, files=files)
        if status == "failed":
            outcome = Outcome(request_id, "failed", error=snapshot.get("error", ""))
            return await self._finish(view, outcome, FAILED_PREFIX + outcome.error)
        if status == "cancelled":
            return await self._finish(view, Outcome(request_id, "cancelled"), None)
        self._follow_attempt(view, snapshot.get("attempts"))
        shown, stored = view.renderer.text, snapshot.get("content") or ""
        if status in ("queued", "held"):
            if shown:  # it went back to the queue after text was shown
                self._start_over(view, "")
            view.renderer.status(describe_queued({**snapshot, "position": snapshot.get("position") or 1}))
        elif stored.startswith(shown) and len(stored) > len(shown):
            view.renderer.feed(stored[len(shown) :])
        elif not shown.startswith(stored):
            view.renderer.restart(stored)
        self._apply_pending(view)
        return None

    async def _finish(
        self,
        view: _View,
        outcome: Outcome,
        final_text: str | None,
        *,
        files: tuple[list[dict[str, Any]], list[str]] = ([], []),
    ) -> Outcome:
        if final_text is None:
            # Cancelled: keep what was written, and say so.
            final_text = (view.renderer.text + "\n\n" if view.renderer.text else "") + CANCELLED_TEXT
        handles = await view.renderer.finish(final_text)
        await self._deliver_files(view.renderer, handles[-1] if handles else None, *files)
        await self._mark_delivered(view.request_id)
        # Tracked until marked delivered: a reconcile meanwhile (the final edit may wait for the
        # channel's budget) would otherwise take the finished request over and show it a second time.
        self._views.pop(view.request_id, None)
        await self._ended(view, outcome)
        return outcome

    async def _give_up(self, view: _View, exc: Exception) -> Outcome:
        """Stop showing a request after Discord refused what it needed; the next reconcile tries again."""
        self._views.pop(view.request_id, None)
        await view.renderer.close()
        status = getattr(exc, "status", None)
        if status in (403, 404):
            # The channel is gone or closed to the bot: trying again would fail the same way.
            logger.warning("Request %s: Discord refused its answer (%s); not delivered", view.request_id, exc)
            await self._mark_delivered(view.request_id)
        else:
            logger.warning("Request %s: could not show its answer (%s); will try again", view.request_id, exc)
        outcome = Outcome(view.request_id, "undelivered", error=str(exc))
        await self._ended(view, outcome)
        return outcome

    async def _ended(self, view: _View, outcome: Outcome) -> None:
        for callback in view.on_finish:
            try:
                await callback(outcome)
            except Exception:  # a reaction failing must not lose the next event
                logger.exception("After-delivery step failed for request %s", view.request_id)

    async def _remember(self, request_id: int, handles: list[Any]) -> None:
        if self._remember_messages is None:
            return
        try:
            await self._remember_messages(request_id, [getattr(handle, "id", handle) for handle in handles])
        except Exception:  # the answer is still shown; only a restart would lose track of it
            logger.exception("Could not store the Discord messages of request %s", request_id)

    async def _deliver_files(
        self, renderer: LiveMessageRenderer, answer_message: Any, artifacts: list[dict[str, Any]], notes: list[str]
    ) -> None:
        try:
            await deliver_files(
                renderer.target, answer_message, artifacts, notes, fetch=self._fetch_file, budget=renderer.budget
            )
        except Exception:  # the answer is delivered; a failed file message must not lose the next event
            logger.exception("Could not deliver the files of an answer")

    async def close(self) -> None:
        """Stop every lane without delivering the rest (the bot shuts down)."""
        views, self._views = list(self._views.values()), {}
        for view in views:
            if view.task is not None:
                view.task.cancel()
                await asyncio.gather(view.task, return_exceptions=True)
            await view.renderer.close()
