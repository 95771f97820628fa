"""The queue decides what runs next: a snapshot of the queue and the GPUs, the policy's order, an atomic claim.

A free worker (any django-q2 task of ``pipeline.tasks.run_request``; the
task's request id is only a hint) calls ``claim_next``: it builds a
``scheduling.Snapshot`` from the database and each host's cached ``/api/ps``
(outside any transaction: a slow Ollama costs at most ``SCHEDULER_PS_TIMEOUT``
once per ``SCHEDULER_PS_CACHE``, and an unanswered host makes the order first
in, first out), orders the waiting requests with ``REQUEST_SCHEDULER``'s
policy, then claims the first one it can:

- on PostgreSQL, inside one transaction, each candidate in turn is locked
  with ``SELECT … FOR UPDATE SKIP LOCKED`` (a row another worker is claiming
  is skipped, not waited for), and the first still queued is claimed;
- on SQLite the transaction is IMMEDIATE (``transaction_mode`` in settings),
  so claims take turns;
- either way the claim itself is the conditional UPDATE of
  ``processing.take_request`` (queued → routing, attempts + 1), so two
  workers never run the same request.

Queue positions and estimated waits shown to users are this same order
(``publish_positions``), stored on each waiting request and sent as
``request.queued`` events when they change, at most every
``QUEUE_UPDATE_INTERVAL`` per process (and from each cluster's reaper).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from conversations import selectors
from conversations.models import Request
from pipeline import scheduling
from routing import gpu
from routing.hosts import canonical_model_name
from routing.models import OllamaHost, RouterSettings
from trollama import events

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_SECONDS = 30.0  # an answer's length before any has been timed
CLAIM_LOCK = 17_017  # PostgreSQL advisory lock that makes gpu-aware claims take turns


def _seconds(value: datetime) -> float:
    return value.timestamp()


def _claimable() -> Q:
    return Q(status=Request.Status.QUEUED, cancel_requested=False, attempts__lt=F("handbacks") + settings.MAX_ATTEMPTS)


def _waiting() -> list[scheduling.Waiting]:
    rows = list(
        Request.objects.filter(_claimable())
        .order_by("queued_at", "pk")
        .values_list("pk", "user_id", "model", "expected_model", "queued_at")
    )
    if not rows:
        return []
    oldest, newest = rows[0][4], rows[-1][4]
    # Whatever was in the system when each waiting request arrived: what arrival order would have run first.
    earlier = list(
        Request.objects.filter(queued_at__lt=newest)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gt=oldest))
        .values_list("queued_at", "finished_at")
    )
    slots, service = settings.Q_WORKERS, service_seconds()
    waiting = []
    for pk, user_id, model, expected, queued_at in rows:
        ahead = sum(
            1 for queued, finished in earlier if queued < queued_at and (finished is None or finished > queued_at)
        )
        turn = scheduling.fifo_turn(queued_at=_seconds(queued_at), ahead=ahead, slots=slots, service_seconds=service)
        name = canonical_model_name(model or expected) if (model or expected) else ""
        waiting.append(scheduling.Waiting(pk, user_id, name, _seconds(queued_at), turn))
    return waiting


def _usable_hosts() -> list[OllamaHost]:
    now = timezone.now()
    return [host for host in OllamaHost.objects.filter(enabled=True) if host.breaker_state(now) != "open"]


def read_gpus() -> None:
    """Bring each usable host's cached ``/api/ps`` up to date (at most ``SCHEDULER_PS_TIMEOUT`` each).

    Called outside transactions, before a snapshot is built inside one from the cache.
    """
    for host in _usable_hosts():
        gpu.loaded_models(host.base_url)


def build_snapshot(*, also: frozenset[str] = frozenset(), cached: bool = False) -> scheduling.Snapshot:
    """The queue and the GPUs as the policy sees them.

    Reads Ollama (cached for ``SCHEDULER_PS_CACHE``): call outside
    transactions, or with ``cached`` after ``read_gpus`` (then it takes the
    last read, however old, and asks no host). ``also``: models whose sizes the
    caller needs besides those waiting or running.
    """
    waiting = _waiting()
    hosts = _usable_hosts()
    ids_by_url = {host.base_url: host.pk for host in hosts}
    running: Counter[tuple[int, str]] = Counter()
    # A request just claimed has no host or model of its own yet (routing names them): until then it counts
    # for the model expected at intake, on the only host when there is one.
    only = hosts[0].pk if len(hosts) == 1 else None
    generating: Counter[tuple[int, str]] = Counter()  # running requests that have had their first token
    rows = Request.objects.filter(status__in=Request.RUNNING).values_list(
        "host", "model", "expected_model", "first_token_at"
    )
    for url, model, expected, first_token_at in rows:
        host_id = ids_by_url.get(url, only if not url else None)
        if host_id is not None and (model or expected):
            running[(host_id, canonical_model_name(model or expected))] += 1
            if first_token_at is not None:
                generating[(host_id, canonical_model_name(model or expected))] += 1
    names = {w.model for w in waiting if w.model} | {model for _, model in running} | set(also)
    sizes = gpu.model_sizes(names, urls=[host.base_url for host in hosts])
    states = []
    for host in hosts:
        loaded = gpu.loaded_models(host.base_url, max_age=math.inf if cached else None)
        if loaded is None:
            states.append(scheduling.HostState(host.pk, None, 0, host.num_parallel, {}, known=False))
            continue
        learned = gpu.note_memory_seen(host, loaded)
        # Slots: the admin's number, or more when one model was seen answering that many at once.
        seen_parallel = max((n for (host_id, _), n in generating.items() if host_id == host.pk), default=0)
        parallel = max(host.num_parallel, gpu.note_parallel_seen(host, seen_parallel))
        held = dict(loaded)
        # A model being loaded for a running request is not in /api/ps yet, but its memory is spoken for:
        # the DB knows of the claim before Ollama shows the load.
        loading = set()
        for (host_id, model), _ in running.items():
            if host_id == host.pk and model not in held:
                held[model] = sizes.get(model, 0)
                loading.add(model)
        budget = int(host.vram_budget_gb * gpu.GB) if host.vram_budget_gb else None
        states.append(
            scheduling.HostState(
                host.pk,
                budget,
                learned,
                parallel,
                held,
                too_much=host.vram_too_much,
                too_many=host.models_too_many,
                loading=frozenset(loading),
            )
        )
    # The router's and the embedding model are wanted, like any model, while requests wait for them: those
    # only routing can place (a request pinned to a route needs neither).
    keep: frozenset[str] = frozenset()
    if any(not w.model for w in waiting):
        config = RouterSettings.current()
        keep = frozenset(canonical_model_name(m) for m in (config.router_model, config.embedding_model) if m)
    return scheduling.Snapshot(
        waiting=waiting,
        hosts=states,
        running=dict(running),
        sizes=sizes,
        hosts_for=gpu.hosts_having(names),
        keep=keep,
        workers=settings.Q_WORKERS,
    )


def order(snapshot: scheduling.Snapshot) -> list[scheduling.Ranked]:
    """The waiting requests in the order ``REQUEST_SCHEDULER`` would start them."""
    if settings.REQUEST_SCHEDULER == "fifo":
        return scheduling.fifo(snapshot.waiting)
    return scheduling.rank(snapshot, now=time.time(), aging=settings.SCHEDULER_AGING)


@dataclass(frozen=True)
class Claimed:
    request_id: int
    ranked: scheduling.Ranked


def claim_next(*, take: Callable[[int], bool]) -> Claimed | None:
    """Claim the waiting request the policy starts first; None when none may start now.

    ``take(request_id)`` is the conditional UPDATE that claims one request
    (True when it did); it runs inside the claim's transaction, with the row
    locked on PostgreSQL.
    """
    gpu_aware = settings.REQUEST_SCHEDULER != "fifo"
    snapshot: scheduling.Snapshot | None = None
    if gpu_aware:
        read_gpus()  # outside the transaction: a slow host must not hold the claim lock
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        if gpu_aware:
            # The order is built inside the claim, after the claims before it: a snapshot taken outside
            # would miss what other workers claimed meanwhile and send several of them to load models at
            # once. SQLite's IMMEDIATE transaction already makes claims take turns; PostgreSQL takes a lock.
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK])
            snapshot = build_snapshot(cached=True)
            ranked = [r for r in order(snapshot) if not r.held]
        else:
            ranked = scheduling.fifo(_waiting())  # arrival order needs nothing from Ollama
        for choice in ranked:
            # One row at a time, so a worker claiming alongside skips only the row this one takes.
            row = Request.objects.filter(_claimable(), pk=choice.request_id)
            if skip_locked:
                row = row.select_for_update(skip_locked=True)
            if row.values_list("pk", flat=True).first() is not None and take(choice.request_id):
                logger.info(
                    "Claimed request %s (%s, %s)%s",
                    choice.request_id,
                    choice.model or "model not known",
                    choice.reason,
                    _trace(snapshot, choice) if snapshot is not None else "",
                )
                return Claimed(choice.request_id, choice)
    return None


def _trace(snapshot: scheduling.Snapshot, choice: scheduling.Ranked) -> str:
    """What the claim saw: each host's models (GB, running), learned limits and the age of its /api/ps."""
    parts = []
    urls = {host.pk: host.base_url for host in _usable_hosts()}
    for host in snapshot.hosts:
        models = ", ".join(
            f"{name} {size / gpu.GB:.1f}G x{snapshot.running.get((host.host_id, name), 0)}"
            + (" loading" if name in host.loading else "")
            for name, size in sorted(host.loaded.items())
        )
        age = gpu.cache_age(urls.get(host.host_id, ""))
        parts.append(
            f"host {host.host_id}: [{models}] slots {host.num_parallel} seen {host.learned_budget / gpu.GB:.1f}G"
            f" too much {'-' if host.too_much is None else f'{host.too_much / gpu.GB:.1f}G'}"
            f" too many {host.too_many or '-'} ps {'-' if age is None else f'{age:.2f}s'} old"
        )
    waiting = Counter(w.model for w in snapshot.waiting)
    queue = ", ".join(f"{name or '?'} {count}" for name, count in waiting.most_common())
    return f"; {'; '.join(parts)}; waiting: {queue}"


def make_room(*, host_url: str, model: str) -> list[str]:
    """Before ``model`` loads on ``host_url``: unload idle models nobody waits for, if it would not fit otherwise.

    Only under the ``gpu`` scheduler and with a known memory budget; Ollama
    would evict on its own, but least recently used first, which may be a
    model the queue is about to need.
    """
    if settings.REQUEST_SCHEDULER != "gpu":
        return []
    host = next((h for h in _usable_hosts() if h.base_url == host_url), None)
    if host is None:
        return []
    wanted = canonical_model_name(model)
    gpu.forget(host_url)  # what it holds right now, not a second ago
    snapshot = build_snapshot(also=frozenset({wanted}))
    released = []
    for name in scheduling.to_release(snapshot, host.pk, wanted):
        if gpu.release(host_url, name):
            released.append(name)
    return released


LONG_KEEP_ALIVE = "30m"


def keep_alive_for(*, model: str, default: str | None, request_id: int | None = None) -> str | None:
    """``keep_alive`` for a call to ``model``: kept while requests for it wait, else ``default``.

    Ollama takes the keep_alive of each request to a model, so the last request
    of a run of them sets it back to the route's own. A model kept this way is
    still released by ``make_room`` when the policy wants its memory.
    """
    if settings.REQUEST_SCHEDULER != "gpu":
        return default
    name = canonical_model_name(model)
    waiting = Request.objects.filter(_claimable())
    if request_id is not None:
        waiting = waiting.exclude(pk=request_id)
    if waiting.filter(Q(model=name) | Q(model=model) | Q(model="", expected_model=name)).exists():
        return LONG_KEEP_ALIVE
    return default


def any_waiting() -> bool:
    return Request.objects.filter(_claimable()).exists()


def service_seconds() -> float:
    """The median time of the last answers, from start to finish: what one turn in the queue costs."""
    recent = Request.objects.filter(status=Request.Status.DONE, started_at__isnull=False, finished_at__isnull=False)
    spans = [
        (finished - started).total_seconds()
        for started, finished in recent.order_by("-finished_at").values_list("started_at", "finished_at")[:20]
        if started is not None and finished is not None
    ]
    return statistics.median(spans) if spans else DEFAULT_SERVICE_SECONDS


def _slots(snapshot: scheduling.Snapshot) -> int:
    parallel = sum(host.num_parallel * max(1, len(host.loaded)) for host in snapshot.hosts) or 1
    return max(1, min(settings.Q_WORKERS, parallel))


_last_published = 0.0
_publish_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _publish_lock
    _publish_lock = threading.Lock()  # the reaper thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_reset_after_fork)


def publish_positions(*, force: bool = False) -> int:
    """Store each waiting request's place in the policy's order and its estimated wait; tell listeners of changes.

    At most once per ``QUEUE_UPDATE_INTERVAL`` in this process unless ``force``.
    Returns how many requests were told.
    """
    global _last_published
    with _publish_lock:
        now = time.monotonic()
        if not force and now - _last_published < settings.QUEUE_UPDATE_INTERVAL:
            return 0
        _last_published = now
    snapshot = build_snapshot()
    # A waiting request starts when a slot frees: its place is the order a worker freed by the answers running
    # now would take (with them over, a loaded model's slot is free again), not the order for a worker free now.
    ranked = order(dataclasses.replace(snapshot, running={}))
    waits = scheduling.estimate_waits(ranked, slots=_slots(snapshot), service_seconds=service_seconds())
    rows = Request.objects.filter(pk__in=[r.request_id for r in ranked])
    stored = {pk: (position, wait) for pk, position, wait in rows.values_list("pk", "queue_position", "wait_estimate")}
    told = 0
    for index, choice in enumerate(ranked, start=1):
        wait = round(waits[choice.request_id])
        position, known_wait = stored.get(choice.request_id, (None, None))
        if position == index and known_wait is not None:  # (the first estimate is always told)
            if abs(known_wait - wait) > max(5.0, 0.2 * known_wait):
                # Same place, another wait: kept for the next snapshot a listener loads, not worth an event.
                Request.objects.filter(pk=choice.request_id).update(wait_estimate=wait)
            continue
        if not Request.objects.filter(pk=choice.request_id, status=Request.Status.QUEUED).update(
            queue_position=index, wait_estimate=wait
        ):
            continue
        request = Request.objects.select_related("user", "thread", "route").get(pk=choice.request_id)
        events.publish(
            {
                "type": "request.queued",
                "request_id": choice.request_id,
                "status": request.status,
                "position": index,
                "wait": wait,
                "reason": choice.reason,
                "request": selectors.request_summary(request),
            },
            request_id=choice.request_id,
        )
        told += 1
    return told


def publish_positions_quietly(*, force: bool = False) -> None:
    """``publish_positions`` for callers whose own work must not fail with it (a worker after a claim)."""
    try:
        publish_positions(force=force)
    except Exception:
        logger.warning("Could not publish queue positions", exc_info=True)


def scheduler_overview() -> dict[str, object]:
    """For the console's Health page: each host's models, slots and memory, and what waits for which model."""
    snapshot = build_snapshot()
    ranked = order(snapshot)
    names = dict(OllamaHost.objects.values_list("pk", "name"))
    hosts = []
    for host in snapshot.hosts:
        models = [
            {
                "name": name,
                "bytes": size,
                "running": snapshot.running.get((host.host_id, name), 0),
                "free_slots": max(host.num_parallel - snapshot.running.get((host.host_id, name), 0), 0),
                "waiting": sum(1 for w in snapshot.waiting if w.model == name),
            }
            for name, size in sorted(host.loaded.items())
        ]
        hosts.append(
            {
                "name": names.get(host.host_id, str(host.host_id)),
                "known": host.known,
                "num_parallel": host.num_parallel,
                "used": sum(host.loaded.values()),
                "budget": host.budget,
                "learned_budget": host.learned_budget,
                "models": models,
            }
        )
    by_model: dict[str, dict[str, object]] = {}
    for position, choice in enumerate(ranked, start=1):
        entry = by_model.setdefault(
            choice.model or "",
            {"model": choice.model or "(chosen when routed)", "count": 0, "first": position, "reason": choice.reason},
        )
        entry["count"] = int(str(entry["count"])) + 1
    return {
        "scheduler": settings.REQUEST_SCHEDULER,
        "aging": settings.SCHEDULER_AGING,
        "hosts": hosts,
        "waiting": list(by_model.values()),
        "held": sum(1 for choice in ranked if choice.held),
    }
