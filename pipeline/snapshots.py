"""What a listener needs to show one request from scratch: the request as stored, with its files.

Here rather than in ``conversations.selectors`` because it reads artifacts, a floor above the data model.
"""

from __future__ import annotations

from typing import Any

from artifacts.selectors import request_artifacts
from conversations.models import Request
from conversations.selectors import request_summary


def request_snapshot(request_id: int) -> dict[str, Any] | None:
    """Everything a listener needs to show one request from scratch, text included."""
    request = Request.objects.select_related("user", "thread", "route", "reply").filter(pk=request_id).first()
    if request is None:
        return None
    snapshot = request_summary(request)
    snapshot["content"] = request.reply.content if request.reply else request.partial_content
    snapshot["artifacts"] = request_artifacts(request.pk)
    return snapshot
