"""Read-only queries for operators: the queue at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from conversations.models import Request


@dataclass(frozen=True)
class QueueOverview:
    queued: int
    running: int
    held: int
    failed_last_hour: int
    oldest_waiting_at: datetime | None
    oldest_waiting_id: int | None

    @property
    def oldest_wait(self) -> timedelta | None:
        return timezone.now() - self.oldest_waiting_at if self.oldest_waiting_at else None


def queue_overview() -> QueueOverview:
    now = timezone.now()
    by_status = dict(
        Request.objects.exclude(status__in=(Request.Status.DONE, Request.Status.CANCELLED))
        .values_list("status")
        .annotate(count=Count("pk"))
        .values_list("status", "count")
    )
    failed = Request.objects.filter(status=Request.Status.FAILED, finished_at__gte=now - timedelta(hours=1)).count()
    oldest = (
        Request.objects.filter(status=Request.Status.QUEUED)
        .order_by("queued_at", "pk")
        .values("pk", "queued_at")
        .first()
    )
    return QueueOverview(
        queued=by_status.get(Request.Status.QUEUED, 0),
        running=sum(by_status.get(status, 0) for status in Request.RUNNING),
        held=by_status.get(Request.Status.HELD, 0),
        failed_last_hour=failed,
        oldest_waiting_at=oldest["queued_at"] if oldest else None,
        oldest_waiting_id=oldest["pk"] if oldest else None,
    )


def held_count() -> int:
    return Request.objects.filter(status=Request.Status.HELD).count()


def format_duration(delta: timedelta) -> str:
    """``3 h 4 min``, ``2 min 5 s``, ``12 s``: short, for one line of a command's output."""
    seconds = max(int(delta.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"
