"""Read-only queries about conversations and requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from conversations.models import Message, Request, Thread

RECENT_LIMIT = 50


def after(message: Message) -> Q:
    """Messages that come after ``message`` in a thread's order."""
    return Q(created_at__gt=message.created_at) | Q(created_at=message.created_at, pk__gt=message.pk)


def before(message: Message) -> Q:
    return Q(created_at__lt=message.created_at) | Q(created_at=message.created_at, pk__lt=message.pk)


def queue_position(request: Request) -> int | None:
    """1 for the next request a worker will take, None once it is no longer waiting.

    The scheduler's place for it (``pipeline.queue.publish_positions``)
    once it has one; before that (just submitted, or held), arrival order.
    """
    if request.status not in Request.WAITING:
        return None
    if request.status == Request.Status.QUEUED and request.queue_position:
        return request.queue_position
    ahead = Request.objects.filter(status__in=Request.WAITING, queued_at__lt=request.queued_at).count()
    ties = Request.objects.filter(status__in=Request.WAITING, queued_at=request.queued_at, pk__lt=request.pk).count()
    return ahead + ties + 1


def worker_holds_a_request() -> bool:
    """Whether some worker holds a request under a lease it keeps renewing (a sign that it is alive)."""
    return Request.objects.filter(status__in=Request.RUNNING, lease_expires_at__gt=timezone.now()).exists()


def waiting_count() -> int:
    return Request.objects.filter(status__in=Request.WAITING).count()


def thread_history(thread: Thread, *, before: Message) -> list[Message]:
    """Messages of the thread that came before ``before``, oldest first."""
    return list(
        thread.messages.filter(created_at__lte=before.created_at).exclude(pk=before.pk).order_by("created_at", "pk")
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def request_summary(request: Request) -> dict[str, Any]:
    """The JSON-able state of a request that events and snapshots carry."""
    return {
        "id": request.pk,
        "status": request.status,
        "phase": request.phase,
        "user": request.user.display_name or request.user.username,
        "username": request.user.username,
        "user_id": request.user_id,
        "platform": request.thread.platform,
        "thread_id": request.thread_id,
        "thread": str(request.thread),
        "thread_external_id": request.thread.external_id,
        "route": request.route.slug if request.route else None,
        "model": request.model,
        "host": request.host,
        "queued_at": _iso(request.queued_at),
        "started_at": _iso(request.started_at),
        "first_token_at": _iso(request.first_token_at),
        "finished_at": _iso(request.finished_at),
        "prompt_tokens": request.prompt_tokens,
        "completion_tokens": request.completion_tokens,
        "attempts": request.attempts,
        "error": request.error,
        "notices": request.notices or [],
        "position": queue_position(request),
        "wait": request.wait_estimate if request.status == Request.Status.QUEUED else None,
    }


@dataclass(frozen=True)
class RequestFilters:
    """What a listener of the request list wants to see; empty fields match everything.

    ``status`` is a ``Request.Status`` value or ``"active"`` (not finished);
    ``user`` matches part of a user's name, ignoring case. The console applies
    the same rules in the browser to rows that events bring.
    """

    status: str = ""
    route: str = ""
    user: str = ""

    ACTIVE = "active"

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> RequestFilters:
        """From request.GET or a parsed query string; unknown statuses are ignored."""

        def first(name: str) -> str:
            value = query.get(name, "")
            if isinstance(value, list):
                value = value[0] if value else ""
            return str(value).strip()[:100]

        status = first("status")
        if status not in {cls.ACTIVE, *Request.Status.values}:
            status = ""
        return cls(status=status, route=first("route"), user=first("user"))

    def apply(self, requests: QuerySet[Request]) -> QuerySet[Request]:
        if self.status == self.ACTIVE:
            requests = requests.exclude(status__in=Request.FINISHED)
        elif self.status:
            requests = requests.filter(status=self.status)
        if self.route:
            requests = requests.filter(route__slug=self.route)
        if self.user:
            requests = requests.filter(
                Q(user__username__icontains=self.user) | Q(user__display_name__icontains=self.user)
            )
        return requests


def recent_requests_snapshot(
    *, limit: int = RECENT_LIMIT, filters: RequestFilters | None = None
) -> list[dict[str, Any]]:
    """Requests in flight, then the most recent finished ones, newest first."""
    base = Request.objects.select_related("user", "thread", "route")
    if filters is not None:
        base = filters.apply(base)
    in_flight = list(base.exclude(status__in=Request.FINISHED)[:limit])
    finished = list(base.filter(status__in=Request.FINISHED)[: max(limit - len(in_flight), 0)])
    return [request_summary(request) for request in in_flight + finished]
