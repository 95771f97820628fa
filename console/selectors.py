"""Read-only queries behind the console's pages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone
from django.utils.http import urlencode

from artifacts.models import Artifact
from budgets.models import UsageEntry
from console import charts
from console.stats import percentile
from conversations.models import Message, Request, Thread
from routing.models import Route

USAGE_DAYS = 28
HOURLY_WINDOW = 48
TOP_USERS = 10


# -- Requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    label: str
    at: datetime | None
    since_previous: timedelta | None


def request_for_detail(request_id: int) -> Request | None:
    return (
        Request.objects.select_related("user", "thread", "route", "message", "reply")
        .prefetch_related("usage_entries__route")
        .filter(pk=request_id)
        .first()
    )


def timeline(request: Request) -> list[Step]:
    """Queued → started → first token → finished, each with the time since the step before."""
    final = {
        Request.Status.FAILED: "Failed",
        Request.Status.CANCELLED: "Cancelled",
    }.get(Request.Status(request.status), "Done")
    points = [
        ("Queued", request.queued_at),
        ("Started", request.started_at),
        ("First token", request.first_token_at),
        (final, request.finished_at),
    ]
    steps, previous = [], None
    for label, at in points:
        steps.append(Step(label, at, at - previous if at and previous else None))
        previous = at or previous
    return steps


def route_choices() -> list[str]:
    return list(Route.objects.order_by("slug").values_list("slug", flat=True))


# -- Conversations --------------------------------------------------------------


def search_threads(query: str = "") -> QuerySet[Thread]:
    """Threads, most recently active first, whose title, owner or any message matches ``query``."""
    threads = Thread.objects.select_related("owner").annotate(message_count=Count("messages"))
    query = query.strip()
    if query:
        in_messages = Message.objects.filter(thread=OuterRef("pk"), content__icontains=query)
        threads = threads.filter(
            Q(title__icontains=query)
            | Q(external_id__icontains=query)
            | Q(owner__username__icontains=query)
            | Q(owner__display_name__icontains=query)
            | Exists(in_messages)
        )
    return threads.order_by("-updated_at", "-pk")


def thread_messages(thread: Thread) -> QuerySet[Message]:
    """The thread's messages, oldest first, with the request each one started (if any)."""
    return thread.messages.select_related("author", "route", "request").order_by("created_at", "pk")


# -- Artifacts ------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactFilters:
    """What the artifacts page lists; empty fields match everything.

    ``name`` and ``owner`` match part of a file name or of a user's name or
    display name, ignoring case; ``content_type`` is one exactly; ``state`` is
    ``"live"`` or ``"expired"`` (expired files wait for the next cleanup).
    """

    name: str = ""
    owner: str = ""
    content_type: str = ""
    state: str = ""

    LIVE = "live"
    EXPIRED = "expired"
    STATES = ((LIVE, "Live"), (EXPIRED, "Expired, not yet deleted"))

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ArtifactFilters:
        """From request.GET; an unknown state is ignored."""

        def first(name: str) -> str:
            return str(query.get(name, "")).strip()[:200]

        state = first("state")
        if state not in {cls.LIVE, cls.EXPIRED}:
            state = ""
        return cls(name=first("name"), owner=first("owner"), content_type=first("content_type"), state=state)

    @property
    def active(self) -> bool:
        return any(asdict(self).values())

    def as_query(self) -> str:
        """The filters as a query string (without "?"), to keep them across pages."""
        return urlencode({key: value for key, value in asdict(self).items() if value})

    def apply(self, artifacts: QuerySet[Artifact], *, now: datetime) -> QuerySet[Artifact]:
        if self.name:
            artifacts = artifacts.filter(filename__icontains=self.name)
        if self.owner:
            artifacts = artifacts.filter(
                Q(owner__username__icontains=self.owner) | Q(owner__display_name__icontains=self.owner)
            )
        if self.content_type:
            artifacts = artifacts.filter(content_type=self.content_type)
        if self.state == self.LIVE:
            artifacts = artifacts.filter(expires_at__gt=now)
        elif self.state == self.EXPIRED:
            artifacts = artifacts.filter(expires_at__lte=now)
        return artifacts


def search_artifacts(filters: ArtifactFilters) -> QuerySet[Artifact]:
    """Stored files matching ``filters``, newest first, with their owner and thread."""
    artifacts = Artifact.objects.select_related("owner", "thread")
    return filters.apply(artifacts, now=timezone.now()).order_by("-created_at", "-pk")


def artifact_content_types() -> list[str]:
    """Every content type a stored file has, for the page's filter."""
    return list(Artifact.objects.order_by("content_type").values_list("content_type", flat=True).distinct())


# -- Usage ----------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    legend: list[str]


@dataclass(frozen=True)
class Latency:
    name: str
    count: int
    p50: float | None
    p95: float | None


def _days(today: date, count: int) -> list[date]:
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def _routeless_label(kind: str) -> str:
    """A series name for tokens with no route: the router's and the summarizer's own calls, by what they were for."""
    if kind in (UsageEntry.Kind.ANSWER, UsageEntry.Kind.TOOL):
        return "(deleted route)"  # answers always have a route, until it is deleted (SET_NULL)
    return UsageEntry.Kind(kind).label


def tokens_per_day_chart(*, by: str, days: int = USAGE_DAYS, title: str) -> Chart:
    """Tokens per day over the last ``days``, stacked by "route", "model" or "user"."""
    key = {"route": "route__slug", "model": "model", "user": "user__username"}[by]
    labels = _days(timezone.localdate(), days)
    since = timezone.make_aware(datetime.combine(labels[0], datetime.min.time()))
    rows = (
        UsageEntry.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day", key, "kind")
        .annotate(tokens=Sum("total_tokens"))
    )
    index = {day: i for i, day in enumerate(labels)}
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * len(labels))
    for row in rows:
        if row["day"] in index:
            totals[row[key] or _routeless_label(row["kind"])][index[row["day"]]] += row["tokens"] or 0
    series = charts.limit_series([charts.Series(name, values) for name, values in totals.items()])
    svg = charts.stacked_bars([day.strftime("%b %d") for day in labels], series, title=title)
    return Chart(title, svg, [s.name for s in series])


def requests_per_hour_chart(*, hours: int = HOURLY_WINDOW) -> Chart:
    now = timezone.localtime()
    current = now.replace(minute=0, second=0, microsecond=0)
    slots = [current - timedelta(hours=hours - 1 - i) for i in range(hours)]
    counts = dict(
        Request.objects.filter(queued_at__gte=slots[0])
        .annotate(hour=TruncHour("queued_at", tzinfo=timezone.get_current_timezone()))
        .values_list("hour")
        .annotate(n=Count("pk"))
        .values_list("hour", "n")
    )
    values = [counts.get(slot, 0) for slot in slots]
    title = f"Requests per hour, last {hours} hours"
    svg = charts.bars([slot.strftime("%H:00") for slot in slots], values, title=title)
    return Chart(title, svg, [])


def top_users(*, days: int = USAGE_DAYS, limit: int = TOP_USERS) -> list[dict[str, Any]]:
    """Who spent the most tokens: username, display name, platform, tokens and requests, largest first."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        UsageEntry.objects.filter(created_at__gte=since)
        .values("user__username", "user__display_name", "user__platform")
        .annotate(tokens=Sum("total_tokens"), requests=Count("request", distinct=True))
        .order_by("-tokens")[:limit]
    )
    return [dict(row) for row in rows]


def latencies(*, days: int = USAGE_DAYS) -> list[Latency]:
    """p50/p95 of queue wait, time to first token and total time, in seconds, over finished requests.

    The durations are computed by the database and only they are fetched, one
    row of three intervals per request, then sorted here (see ``percentile``).
    """
    since = timezone.now() - timedelta(days=days)

    def span(end: str, start: str = "queued_at") -> ExpressionWrapper:
        return ExpressionWrapper(F(end) - F(start), output_field=DurationField())

    rows = (
        Request.objects.filter(queued_at__gte=since, status__in=Request.FINISHED)
        .annotate(wait=span("started_at"), ttft=span("first_token_at"), total=span("finished_at"))
        .values_list("wait", "ttft", "total")
    )
    columns: list[list[float]] = [[], [], []]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            if value is not None:
                column.append(value.total_seconds())
    names = ("Queue wait", "Time to first token", "Total time")
    result = []
    for name, values in zip(names, columns, strict=True):
        values.sort()
        result.append(Latency(name, len(values), percentile(values, 0.5), percentile(values, 0.95)))
    return result
