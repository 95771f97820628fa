"""Prometheus metrics, read from the database when Prometheus scrapes.

Web, workers and bot are separate processes (and there may be several of
each), so counters kept in memory would each see a slice. The database sees
everything, so the collector queries it at scrape time instead; every figure
is then the same whichever web process answers.

* ``trollama_requests{route,status}``: requests stored, by route and status.
* ``trollama_queue_depth{state}``: waiting, held and running requests now.
* ``trollama_request_queue_wait_seconds``, ``..._time_to_first_token_seconds``
  and ``..._total_seconds``: histograms over the requests that finished in the
  last ``METRICS_WINDOW_MINUTES`` (a window, not since start: read them with
  ``histogram_quantile`` directly, not ``rate``).
* ``trollama_tokens_total{route,model,kind,use}``: prompt and completion
  tokens of every Ollama call (``use``: answer, router, embedding, tool,
  summary), counted as they are used in ``MetricCounter`` rows, so deleting a
  thread never lowers it. Every enabled route's model has samples (0) from
  the start.
* ``trollama_ollama_errors_total{host,kind}``: failed requests and retried
  attempts, by Ollama host, counted as they happen (``MetricCounter`` rows);
  every enabled host has both kinds from the start.
* ``trollama_workers_alive{cluster,host}``: worker processes of each django-q2
  cluster that reported in the last 30 s, and ``trollama_worker_clusters`` how
  many clusters that is (0 when none: alert on it).
* ``trollama_bot_up``, ``trollama_bot_heartbeat_age_seconds``,
  ``trollama_bot_gateway_latency_seconds``: the Discord bot's connection.
* ``trollama_maintenance{mode}``: 1 for the current maintenance mode.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from bots.selectors import latest_heartbeat
from conversations.models import Request
from ops.health import enabled_host_urls
from pipeline.cluster import live_clusters
from routing.models import Route
from trollama.counters import OLLAMA_ERRORS, TOKENS, counter_values
from trollama.maintenance import current_maintenance

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds. Queue waits and answers range from instant to many minutes on a cold GPU.
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)


def histogram_buckets(
    values: Iterable[float], bounds: tuple[float, ...] = BUCKETS
) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (``le`` label, count) and the sum of ``values``."""
    counts = [0] * (len(bounds) + 1)
    total = 0.0
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
        total += value
    cumulative, running = [], 0
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        running += count
        cumulative.append((bound, float(running)))
    return cumulative, total


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max((later - earlier).total_seconds(), 0.0)


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._timings()
        yield from self._tokens()
        yield from self._errors()
        yield from self._workers()
        yield from self._bot()
        yield from self._maintenance()

    def _requests(self) -> Iterator[Metric]:
        by_route = GaugeMetricFamily(
            "trollama_requests", "Requests stored, by route and status.", labels=["route", "status"]
        )
        rows = Request.objects.values("route__slug", "status").annotate(count=Count("pk")).order_by()
        depth = dict.fromkeys(("queued", "held", "running"), 0)
        for row in rows:
            by_route.add_metric([row["route__slug"] or "", row["status"]], row["count"])
            if row["status"] in Request.RUNNING:
                depth["running"] += row["count"]
            elif row["status"] in depth:
                depth[row["status"]] += row["count"]
        yield by_route
        queue = GaugeMetricFamily("trollama_queue_depth", "Requests waiting, held or running now.", labels=["state"])
        for state, count in depth.items():
            queue.add_metric([state], count)
        yield queue

    def _timings(self) -> Iterator[Metric]:
        since = timezone.now() - timedelta(minutes=settings.METRICS_WINDOW_MINUTES)
        rows = list(
            Request.objects.filter(finished_at__gte=since, status=Request.Status.DONE).values_list(
                "queued_at", "started_at", "first_token_at", "finished_at"
            )
        )
        window = f" Requests answered in the last {settings.METRICS_WINDOW_MINUTES} minutes."
        series = {
            "trollama_request_queue_wait_seconds": (
                "From intake to a worker taking it.",
                [_seconds(s, q) for q, s, _, _ in rows],
            ),
            "trollama_request_time_to_first_token_seconds": (
                "From a worker taking it to the first token of the answer.",
                [_seconds(t, s) for _, s, t, _ in rows],
            ),
            "trollama_request_total_seconds": (
                "From intake to the stored answer.",
                [_seconds(f, q) for q, _, _, f in rows],
            ),
        }
        for name, (documentation, values) in series.items():
            buckets, total = histogram_buckets(value for value in values if value is not None)
            yield HistogramMetricFamily(name, documentation + window, buckets=buckets, sum_value=total)

    def _tokens(self) -> Iterator[Metric]:
        labels = ["route", "model", "kind", "use"]
        tokens = CounterMetricFamily(
            "trollama_tokens", "Tokens used by Ollama calls, by route, model and use.", labels=labels
        )
        values: dict[tuple[str, ...], int] = {}
        for route, model in Route.objects.filter(enabled=True).values_list("slug", "model"):
            for kind in ("prompt", "completion"):
                values[(route, model, kind, "answer")] = 0
        for counted, value in counter_values(TOKENS):
            values[tuple(counted.get(label, "") for label in labels)] = value
        for key, value in sorted(values.items()):
            tokens.add_metric(list(key), value)
        yield tokens

    def _errors(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "trollama_ollama_errors",
            "Ollama trouble by host: requests that failed, and attempts that failed and were retried.",
            labels=["host", "kind"],
        )
        # Zero for every enabled host from the start, so alerts on rate() work before the first error.
        counts: dict[tuple[str, str], int] = {
            (host, kind): 0 for host in enabled_host_urls() for kind in ("failed_request", "retried_attempt")
        }
        for labels, value in counter_values(OLLAMA_ERRORS):
            key = (labels.get("host", ""), labels.get("kind", ""))
            counts[key] = counts.get(key, 0) + value
        for (host, kind), count in sorted(counts.items()):
            errors.add_metric([host, kind], count)
        yield errors

    def _workers(self) -> Iterator[Metric]:
        try:
            clusters = live_clusters()
        except Exception:  # the broker is down: /health says so; report no live workers
            clusters = []
        alive = GaugeMetricFamily(
            "trollama_workers_alive",
            "Worker processes of each django-q2 cluster that reported in the last 30 s.",
            labels=["cluster", "host"],
        )
        for cluster in clusters:
            alive.add_metric([cluster["cluster"], cluster["host"]], cluster["workers"])
        yield alive
        yield GaugeMetricFamily(
            "trollama_worker_clusters", "django-q2 clusters that reported in the last 30 s.", value=len(clusters)
        )

    def _bot(self) -> Iterator[Metric]:
        heartbeat = latest_heartbeat()
        up = bool(heartbeat and heartbeat.is_alive(settings.BOT_HEARTBEAT_INTERVAL) and heartbeat.connected)
        yield GaugeMetricFamily(
            "trollama_bot_up", "1 when the Discord bot beats and is connected to the gateway.", value=int(up)
        )
        if heartbeat is not None:
            yield GaugeMetricFamily(
                "trollama_bot_heartbeat_age_seconds",
                "Seconds since the bot's last heartbeat.",
                value=heartbeat.age_seconds,
            )
            if heartbeat.latency_ms is not None:
                yield GaugeMetricFamily(
                    "trollama_bot_gateway_latency_seconds",
                    "Discord gateway round trip at the last heartbeat.",
                    value=heartbeat.latency_ms / 1000,
                )

    def _maintenance(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("trollama_maintenance", "1 for the current maintenance mode.", labels=["mode"])
        mode = current_maintenance().mode
        for choice in ("off", "soft", "hard"):
            family.add_metric([choice], int(choice == mode))
        yield family


def render_metrics() -> bytes:
    """The exposition text for one scrape. A registry per scrape keeps the collector stateless."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
