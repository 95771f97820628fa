"""django-q2 tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from pipeline import processing, summaries, workers


def run_request(request_id: int) -> str:
    """A request is waiting: claim the one the scheduler starts first (``request_id`` is a hint)."""
    with workers.running_a_task():
        outcome = processing.process_next(hint=request_id)
    return outcome.value if outcome else "skipped"


def requeue_abandoned_requests() -> dict[str, int]:
    return processing.requeue_abandoned_requests()


def summarize_thread(thread_id: int, user_id: int | None = None) -> str:
    return "summarized" if summaries.summarize_if_needed(thread_id=thread_id, user_id=user_id) else "skipped"
