"""Turning a request's events into Discord messages.

The bot tracks each request it submitted with a ``DiscordTarget`` (the thread
or DM to answer in). Events from web's websocket are routed to that request's
``LiveMessageRenderer``: a placeholder shows the status, then the live text,
then the exact final text. Requests the bot lost track of (it restarted) are
delivered from the database by the outbox instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from artifacts.extraction import describe_size
from bots.render import discord_footer, with_footer
from bots.stream import DiscordTarget, LiveMessageRenderer
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
    status: str  # done, failed or cancelled
    error: str = ""


@dataclass
class _View:
    renderer: LiveMessageRenderer
    written: int = 0  # characters of the current attempt fed to the renderer
    gap: bool = False  # a delta was missed; the final text will set things right
    on_finish: list[Callable[[Outcome], Awaitable[None]]] = field(default_factory=list)


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
) -> None:
    """Attach the answer's files to its last message; link those past the upload limit.

    A target that cannot take files, a file that cannot be read, or Discord
    refusing the upload all fall back to links, so the user always gets the files.
    """
    if not artifacts and not notes:
        return
    plan = FilePlan(attach=[], link=list(artifacts))
    if isinstance(target, FileTarget) and fetch is not None and answer_message is not None:
        plan = plan_files(artifacts, upload_limit=target.upload_limit)
        try:
            if plan.attach:
                files = [(artifact["filename"], await fetch(artifact["id"])) for artifact in plan.attach]
                await target.attach(answer_message, files)
        except Exception:
            logger.warning("Could not attach %d file(s); sending links instead", len(plan.attach), exc_info=True)
            plan = FilePlan(attach=[], link=[*plan.attach, *plan.link])
    text = files_message(plan.link, notes)
    if text:
        await target.send(text)


class Delivery:
    """Routes events to the renderers of the requests this bot is showing."""

    def __init__(
        self,
        *,
        edit_interval: float,
        mark_delivered: Callable[[int], Awaitable[None]],
        fetch_file: FetchFile | None = None,
    ) -> None:
        self._edit_interval = edit_interval
        self._mark_delivered = mark_delivered
        self._fetch_file = fetch_file
        self._views: dict[int, _View] = {}

    def track(
        self,
        request_id: int,
        target: DiscordTarget,
        *,
        placeholder: Any = None,
        on_finish: Callable[[Outcome], Awaitable[None]] | None = None,
    ) -> None:
        renderer = LiveMessageRenderer(target, edit_interval=self._edit_interval, placeholder_handle=placeholder)
        self._views[request_id] = _View(renderer, on_finish=[on_finish] if on_finish else [])

    def is_tracking(self, request_id: int) -> bool:
        return request_id in self._views

    def request_shown_in(self, message_id: int) -> int | None:
        """The in-progress request whose answer is shown in the bot's message ``message_id``."""
        for request_id, view in self._views.items():
            if any(getattr(handle, "id", None) == message_id for handle in view.renderer.handles):
                return request_id
        return None

    async def handle(self, event: dict[str, Any]) -> Outcome | None:
        """Apply one event; returns the outcome when it finished a tracked request."""
        view = self._views.get(event.get("request_id"))  # type: ignore[arg-type]
        if view is None:
            return None
        with request_context(event["request_id"]):
            return await self._apply(view, event)

    async def _apply(self, view: _View, event: dict[str, Any]) -> Outcome | None:
        kind = event.get("type")
        if kind == "request.queued":
            view.renderer.status(describe_queued(event))
        elif kind == "request.status":
            self._on_status(view, event)
        elif kind == "request.delta":
            self._on_delta(view, event["offset"], event["text"])
        elif kind == "request.done":
            return await self._finish(
                event["request_id"],
                Outcome(event["request_id"], "done"),
                # The stored notices go under the model's text, which stays exactly as written.
                with_footer(event["content"], discord_footer(event.get("request", {}).get("notices"))),
                files=(event.get("artifacts") or [], event.get("artifact_notes") or []),
            )
        elif kind == "request.failed":
            outcome = Outcome(event["request_id"], "failed", error=event.get("error", ""))
            return await self._finish(event["request_id"], outcome, FAILED_PREFIX + outcome.error)
        elif kind == "request.cancelled":
            return await self._finish(event["request_id"], Outcome(event["request_id"], "cancelled"), None)
        return None

    def _on_status(self, view: _View, event: dict[str, Any]) -> None:
        if event.get("reset"):
            # The failed attempt's text is on screen; the final text replaces it.
            view.gap = True
        if view.written:
            return
        label = describe_phase(event.get("phase") or "", model=event.get("model") or "", reason=event.get("reason", ""))
        if label:
            view.renderer.status(label)

    def _on_delta(self, view: _View, offset: int, text: str) -> None:
        if view.gap or offset > view.written:
            view.gap = True
            return
        fresh = text[view.written - offset :]
        if fresh:
            view.renderer.feed(fresh)
            view.written += len(fresh)

    async def _finish(
        self,
        request_id: int,
        outcome: Outcome,
        final_text: str | None,
        *,
        files: tuple[list[dict[str, Any]], list[str]] = ([], []),
    ) -> Outcome:
        view = self._views.pop(request_id)
        if final_text is None:
            # Cancelled: keep what was written, and say so.
            final_text = (view.renderer.text + "\n\n" if view.renderer.text else "") + CANCELLED_TEXT
        handles = await view.renderer.finish(final_text)
        await self._deliver_files(view.renderer.target, handles[-1] if handles else None, *files)
        await self._mark_delivered(request_id)
        for callback in view.on_finish:
            try:
                await callback(outcome)
            except Exception:  # a reaction failing must not lose the next event
                logger.exception("After-delivery step failed for request %s", request_id)
        return outcome

    async def _deliver_files(
        self, target: DiscordTarget, answer_message: Any, artifacts: list[dict[str, Any]], notes: list[str]
    ) -> None:
        try:
            await deliver_files(target, answer_message, artifacts, notes, fetch=self._fetch_file)
        except Exception:  # the answer is delivered; a failed file message must not lose the next event
            logger.exception("Could not deliver the files of an answer")

    async def close(self) -> None:
        for view in self._views.values():
            await view.renderer.close()
        self._views.clear()
