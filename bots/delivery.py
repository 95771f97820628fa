"""Turning a request's events into Discord messages.

The bot tracks each request it submitted with a ``DiscordTarget`` (the thread
or DM to answer in). Events from web's websocket are routed to that request's
``LiveMessageRenderer``: a placeholder shows the status, then the live text,
then the exact final text. Requests the bot lost track of (it restarted) are
delivered from the database by the outbox instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bots.stream import DiscordTarget, LiveMessageRenderer
from conversations.phases import describe_phase, describe_queued
from trollama.logs import request_context

logger = logging.getLogger(__name__)

FAILED_PREFIX = "❌ "
CANCELLED_TEXT = "Cancelled."


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


class Delivery:
    """Routes events to the renderers of the requests this bot is showing."""

    def __init__(self, *, edit_interval: float, mark_delivered: Callable[[int], Awaitable[None]]) -> None:
        self._edit_interval = edit_interval
        self._mark_delivered = mark_delivered
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
            return await self._finish(event["request_id"], Outcome(event["request_id"], "done"), event["content"])
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

    async def _finish(self, request_id: int, outcome: Outcome, final_text: str | None) -> Outcome:
        view = self._views.pop(request_id)
        if final_text is None:
            # Cancelled: keep what was written, and say so.
            final_text = (view.renderer.text + "\n\n" if view.renderer.text else "") + CANCELLED_TEXT
        await view.renderer.finish(final_text)
        await self._mark_delivered(request_id)
        for callback in view.on_finish:
            try:
                await callback(outcome)
            except Exception:  # a reaction failing must not lose the next event
                logger.exception("After-delivery step failed for request %s", request_id)
        return outcome

    async def close(self) -> None:
        for view in self._views.values():
            await view.renderer.close()
        self._views.clear()
