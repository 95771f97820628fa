"""Words for what a request is doing, shared by the terminal and the bot."""

from __future__ import annotations

from typing import Any

PHASE_LABELS = {
    "routing": "Choosing a model…",
    "budget": "Waiting for your other answers to finish: they hold the rest of your token budget…",
    "loading_model": "Loading the model {model}…",
    "starting": "Waiting for {model}…",
    "thinking": "Thinking…",
    "generating": "Writing…",
    "retrying": "Retrying: {reason}",
    "resuming": "{reason}",
    "searching": "Searching: {reason}",
    "reading": "Reading: {reason}",
}


def describe_phase(phase: str, *, model: str = "", reason: str = "") -> str | None:
    label = PHASE_LABELS.get(phase)
    return label.format(model=model or "the model", reason=reason) if label else None


def describe_wait(seconds: float) -> str:
    """A rough wait in words: "under a minute", "about 3 minutes"."""
    if seconds < 45:
        return "under a minute"
    minutes = max(1, round(seconds / 60))
    return "about a minute" if minutes == 1 else f"about {minutes} minutes"


def describe_queue_position(position: int, wait: float | None = None) -> str:
    """``Queued (position 3, about 2 minutes)…``; the wait is the scheduler's rough estimate, when it has one."""
    if wait is None:
        return f"Queued (position {position})…"
    return f"Queued (position {position}, {describe_wait(wait)})…"


def describe_hold(message: str = "") -> str:
    """The status of a request held by soft maintenance."""
    reason = message.strip() or "Trollama is under maintenance."
    return f"Held: {reason} Your message is saved and will be answered when maintenance ends."


def describe_queued(event: dict[str, Any]) -> str:
    """The status line of a ``request.queued`` event: the queue position, or why it is held."""
    if event.get("status") == "held":
        return describe_hold(event.get("message", ""))
    wait = event.get("wait")
    return describe_queue_position(event["position"], wait if isinstance(wait, int | float) else None)
