"""Ending a request whose answer is ready: stored and done, or failed in words, never left running."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.streaming import Outcome

logger = logging.getLogger(__name__)

ANSWER_NOT_STORED = (
    "The answer was written, but saving it failed, so it could not be delivered. "
    "Please ask again; if it keeps happening, tell an operator."
)


def finish_or_fail(*, finish: Callable[[], bool], fail: Callable[[str], bool], request_id: int) -> Outcome:
    """Store the answer with ``finish``; if that raises, end the request with ``fail(ANSWER_NOT_STORED)``.

    ``finish`` stores everything in one transaction and returns False when the
    request is no longer ours (the lease was lost). Whatever it raises (a
    database refusing a value, a lost connection, a full disk) rolls that
    transaction back, and the request is then failed in a transaction of its
    own with a reason for the user, instead of staying ``generating`` until
    its lease runs out. Returns DONE, LOST or FAILED.
    """
    try:
        return Outcome.DONE if finish() else Outcome.LOST
    except Exception:
        logger.exception("Request %s: storing the answer failed; failing the request", request_id)
    try:
        fail(ANSWER_NOT_STORED)
    except Exception:
        # The database is gone altogether: the lease runs out and the sweeper settles the request.
        logger.exception("Request %s: could not mark it failed either", request_id)
    return Outcome.FAILED
