"""Words for what a request is doing, shared by the terminal and the bot."""

from __future__ import annotations

PHASE_LABELS = {
    "routing": "Choosing a model…",
    "loading_model": "Loading the model {model}…",
    "starting": "Waiting for {model}…",
    "thinking": "Thinking…",
    "generating": "Writing…",
    "retrying": "Retrying: {reason}",
    "searching": "Searching: {reason}",
    "reading": "Reading: {reason}",
}


def describe_phase(phase: str, *, model: str = "", reason: str = "") -> str | None:
    label = PHASE_LABELS.get(phase)
    return label.format(model=model or "the model", reason=reason) if label else None


def describe_queue_position(position: int) -> str:
    return f"Queued (position {position})…"
