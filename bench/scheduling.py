"""Scheduling on one simulated GPU: each request policy against the lower bound for the same work.

    python -m bench.scheduling [--policies fifo,gpu] [--workloads burst,stream,heavy]
                               [--time-scale 0.1] [--config embedded|production] [--check]

For each policy (the ``REQUEST_SCHEDULER`` setting) it starts the real system
(web under Daphne and a django-q2 ``qcluster`` with its default workers, the
real broker and database, through ``bench.pipeline.started_system``) against
the fake Ollama with its GPU simulation on (``tests/fake_ollama/gpu.py``):
one 24 GB GPU, the models' real sizes, 0.5 s of loading per GB, 2 parallel
slots per model, at most 3 models loaded, idle models evicted least recently
used first, and Ollama's own queue with its head-of-line waiting. A driver
process submits each workload with ``pipeline.services.submit_request``
pinned to a route (``route_slug``, as ``manage.py chat --route`` does), so
routing is not what is measured; each route has its own model:

- **burst**: 36 requests at once over five models, in the interleaved order a
  busy server produces (math, complex_code, reasoning, general, vision, ...),
  from 12 users;
- **stream**: 40 requests, one every 4 s, models in a seeded random order,
  from 8 users;
- **heavy**: one user sends 20 messages at once to one route while 8 light
  users send one message each to mixed routes over the next 20 s;
- **waves** (added untuned, after the others): four waves 30 s apart, each 9
  requests within 3 s over 3 of the five routes, seeded, from 10 users.

Every answer is 400 tokens; the models generate at their simulated speeds
(``gpu.DEFAULT_TOKENS_PER_SECOND``). Before each workload the GPU is emptied
and the system's own warm-up (``routing.services.warm_up``) runs, so the
models a fresh start keeps warm are loaded, as on a real server.

It prints, per workload and policy: model loads, time spent loading, makespan
(first request queued → last answer finished), latency p50/p95/max
(queued → finished), GPU busy share (time any model was generating, over the
makespan) and each user's wait (queued → first token: mean and longest),
beside the **lower bound**: every model not loaded at the start loaded once
(loads, load time), and a makespan no schedule can beat, the largest of

- work: the generation time of all requests (as the simulation measured it)
  spread over every worker at once (``Q_WORKERS``, when the loaded models have
  that many slots), after the first load when nothing needed is loaded yet;
- loading: every needed load one after the other (Ollama loads one model at a
  time on a GPU), then the shortest request for the model loaded last;
- arrival: each request's arrival, plus its model's load if needed, plus the
  shortest generation of a request for its model;
- model: for each model, its load if needed, then the generation time of its
  requests spread over its parallel slots (``num_parallel``): one model's
  answers never run more than that many at once, however many workers wait.

Targets (issue 17): loads ≤ 1.5 times and makespan ≤ 1.3 times the lower bound; p95
latency at most first-in-first-out's; the longest wait at most
first-in-first-out's plus the aging bound (``--aging-bound``, simulated
seconds). A policy the system does not know is reported as such and skipped.
Nothing asserts; ``--check`` exits 1 when a target is missed.

Figures are in simulated seconds. The time scale (real seconds per simulated
one) only makes the run shorter: the system's own real-time costs (broker
pickup, database writes) grow by ``1 / time_scale`` in simulated terms, so a
smaller scale flatters no policy but adds noise. Timers inside the system run
in real time, so the scheduler's (``SCHEDULER_AGING``, 30 s, and
``SCHEDULER_PS_CACHE``, 1 s) are set to their defaults times the scale, as the
system would feel them at its defaults in real time (the report says so);
``--system-env NAME=VALUE`` sets any setting instead, and at ``--time-scale 1``
everything is the default. The per-user rate limit (``RATE_LIMIT_PER_MINUTE``)
counts real minutes, in which a scaled workload sends far more than a person
could, so it is switched off here, and the model sync scheduled every five
minutes is held off while workloads run (after the one a start makes), so it
lands in no policy's figures; everything else is the default.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pipeline import RESULT_MARK, ROOT, percentile, verdict
from bench.reporting import report_main

POLICIES = ("fifo", "gpu")
WORKLOADS = ("burst", "stream", "heavy", "waves", "two_hosts")
# The two-host workload: a second GPU host that has every model but this one, pinned to the first host.
PINNED_MODEL = "magistral:24b"
SECOND_HOST_NAME = "bench second GPU"
# One route per model, so a pin picks the model (the seeded routes; see routing's migrations).
ROUTES = ("math", "complex_code", "reasoning", "general", "vision")
ANSWER_TOKENS = 400
REPLY = "Here is the answer."
DEFAULT_TIME_SCALE = 0.1
AGING_BOUND = 30.0  # issue 17: nobody waits more than about 30 s beyond their first-in-first-out turn
TARGET_LOADS = 1.5
TARGET_MAKESPAN = 1.3
FINISHED = ("done", "failed", "cancelled")
SYNC_TASK = "routing.tasks.sync_models"
# The bench changes only this default; see the module docstring.
SYSTEM_ENV = {"RATE_LIMIT_PER_MINUTE": "0"}
# The scheduler's own timers (real seconds), scaled to the simulated clock so the system behaves as it would
# with its defaults in real time; see ``scaled_timers``.
SCALED_TIMERS = {"SCHEDULER_AGING": 30.0, "SCHEDULER_PS_CACHE": 1.0}
DRIVER_TIMEOUT = 1800.0
SYNC_TIMEOUT = 900.0  # real seconds the start's model sync may take before a workload runs anyway


# ====================================================================== workloads


@dataclass(frozen=True)
class Arrival:
    at: float  # simulated seconds after the workload starts
    user: str
    route: str


def burst() -> list[Arrival]:
    """36 requests at once, the five routes interleaved, three requests from each of 12 users."""
    return [Arrival(0.0, f"user{index % 12 + 1:02d}", ROUTES[index % len(ROUTES)]) for index in range(36)]


def stream() -> list[Arrival]:
    """40 requests, one every 4 simulated seconds, routes in a seeded random order, from 8 users."""
    rng = random.Random(17)
    return [Arrival(4.0 * index, f"user{index % 8 + 1:02d}", rng.choice(ROUTES)) for index in range(40)]


def heavy() -> list[Arrival]:
    """One user sends 20 messages at once to one route; 8 light users send one each over the next 20 s."""
    arrivals = [Arrival(0.0, "heavy", "general") for _ in range(20)]
    light = ["general", "math", "reasoning", "general", "vision", "complex_code", "general", "math"]
    arrivals += [Arrival(2.5 * (index + 1), f"light{index + 1}", route) for index, route in enumerate(light)]
    return arrivals


def waves() -> list[Arrival]:
    """Four waves 30 s apart, each 9 requests within 3 s over 3 of the five routes (seeded), from 10 users.

    Added after the policy was tuned on the other three: bursts smaller than
    the burst's, each wanting another mix of models, with the GPU still busy
    with the last wave when the next one comes.
    """
    rng = random.Random(1717)
    arrivals = []
    for wave in range(4):
        routes = rng.sample(ROUTES, 3)
        for index in range(9):
            at = 30.0 * wave + rng.uniform(0.0, 3.0)
            arrivals.append(Arrival(round(at, 2), f"user{rng.randrange(10) + 1:02d}", routes[index % 3]))
    return sorted(arrivals, key=lambda a: a.at)


def two_hosts() -> list[Arrival]:
    """The burst again, on two GPU hosts (the second one without the reasoning route's model)."""
    return burst()


WORKLOAD_PLANS = {"burst": burst, "stream": stream, "heavy": heavy, "waves": waves, "two_hosts": two_hosts}
SECOND_HOST_WORKLOADS = {"two_hosts"}
WORKLOAD_TITLES = {
    "burst": "burst: 36 requests at once over five models, interleaved",
    "stream": "steady stream: 40 requests, one every 4 s",
    "heavy": "one heavy user (20 messages at once) among 8 light users",
    "waves": "waves: 4 waves 30 s apart, 9 requests over 3 models each",
    "two_hosts": f"two hosts: the burst over two 24 GB GPUs, {PINNED_MODEL} on the first one only",
}


def message_text(workload: str, index: int, arrival: Arrival) -> str:
    return f"sched {workload} {index} {arrival.user} {arrival.route}"


# ====================================================================== driver (a subprocess with Django)


def _wait_for_scheduled_sync(timeout: float) -> bool:
    """The cluster syncs (and warms) models on start: let that finish, then hold the next one off for an hour.

    Every five minutes it would warm models and embed the router's examples
    again, landing in one policy's workload and not in another's. The first
    one retrains the router's classifier, which on a busy machine takes
    minutes and holds one worker meanwhile. False when it had not finished
    within ``timeout`` (the workload then ran with a worker fewer).
    """
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import Schedule, Task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        schedule = Schedule.objects.filter(func=SYNC_TASK).first()
        if schedule is None:
            return True
        if schedule.task and Task.objects.filter(id=schedule.task).exists():
            break
        time.sleep(0.5)
    else:
        return False
    Schedule.objects.filter(func=SYNC_TASK).update(next_run=timezone.now() + timedelta(hours=1))
    return True


def _use_second_host(url: str | None) -> None:
    """Add (and sync) the second host for a two-host workload, or switch it off for the others."""
    from routing.models import OllamaHost
    from routing.sync import sync_host

    if url is None:
        OllamaHost.objects.filter(name=SECOND_HOST_NAME).update(enabled=False)
        return
    host, _ = OllamaHost.objects.update_or_create(name=SECOND_HOST_NAME, defaults={"url": url, "enabled": True})
    sync_host(host)


def _reset_gpu_and_warm_up(second_host: str | None = None) -> list[str]:
    """Empty the simulated GPUs, then run the system's own warm-up: the state a fresh start leaves."""
    import httpx
    from django.conf import settings

    from routing.services import warm_up

    for url in [settings.OLLAMA_HOST, *([second_host] if second_host else [])]:
        httpx.post(f"{url}/_fake/gpu/reset", timeout=10).raise_for_status()
    return [f"{w.model} ({w.keep_alive or 'default'})" + (f": {w.error}" if w.error else "") for w in warm_up()]


def _routes() -> dict[str, dict[str, Any]]:
    from routing.models import Route

    return {
        route.slug: {"model": route.model, "context_size": route.context_size, "keep_alive": route.keep_alive}
        for route in Route.objects.filter(slug__in=ROUTES)
    }


def _epoch(value: Any) -> float | None:
    return value.timestamp() if value else None


def drive(plan: dict[str, Any]) -> dict[str, Any]:
    """Submit one workload at its (scaled) arrival times and wait until every request has finished."""
    from conversations.models import Platform, Request
    from pipeline import services

    scale = float(plan["time_scale"])
    synced = _wait_for_scheduled_sync(timeout=SYNC_TIMEOUT)
    second_host = plan.get("second_host")
    _use_second_host(second_host)
    warmed = _reset_gpu_and_warm_up(second_host)
    arrivals = [Arrival(**a) for a in plan["arrivals"]]
    users = {
        name: services.get_or_create_chat_user(
            platform=Platform.LOCAL, external_id=f"sched-{plan['workload']}-{name}", username=name
        )
        for name in sorted({a.user for a in arrivals})
    }
    # Threads first, so the clock runs only for submitting.
    asks = []
    for index, arrival in enumerate(arrivals):
        content = message_text(plan["workload"], index, arrival)
        thread = services.start_local_thread(owner=users[arrival.user], first_message=content)
        asks.append((arrival, content, thread))
    started = time.time()
    submitted: list[dict[str, Any]] = []
    for arrival, content, thread in sorted(asks, key=lambda ask: ask[0].at):
        delay = started + arrival.at * scale - time.time()
        if delay > 0:
            time.sleep(delay)
        try:
            submission = services.submit_request(
                user=users[arrival.user], thread=thread, content=content, route_slug=arrival.route
            )
        except services.Refusal as refusal:
            submitted.append({"user": arrival.user, "route": arrival.route, "at": arrival.at, "refused": refusal.code})
            continue
        submitted.append(
            {"user": arrival.user, "route": arrival.route, "at": arrival.at, "request_id": submission.request.pk}
        )
    ids = [s["request_id"] for s in submitted if "request_id" in s]
    deadline = time.monotonic() + float(plan["timeout"])
    while Request.objects.filter(pk__in=ids, status__in=FINISHED).count() < len(ids):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    rows = {
        row["pk"]: row
        for row in Request.objects.filter(pk__in=ids).values(
            "pk", "status", "model", "attempts", "queued_at", "started_at", "first_token_at", "finished_at"
        )
    }
    for record in submitted:
        row = rows.get(record.get("request_id", -1))
        if row is None:
            continue
        record.update(
            status=row["status"],
            model=row["model"],
            attempts=row["attempts"],
            queued_at=_epoch(row["queued_at"]),
            started_at=_epoch(row["started_at"]),
            first_token_at=_epoch(row["first_token_at"]),
            finished_at=_epoch(row["finished_at"]),
        )
    return {"started": started, "warmed": warmed, "routes": _routes(), "requests": submitted, "synced": synced}


def driver_main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trollama.settings")
    import django

    django.setup()
    plan = json.loads(sys.stdin.read())
    print(RESULT_MARK + json.dumps(drive(plan)), flush=True)
    return 0


# ====================================================================== figures


@dataclass
class Figures:
    """One workload under one policy, in simulated seconds."""

    policy: str
    requests: int
    answered: int
    failed: int
    refused: int
    unfinished: int
    refusals: dict[str, int]
    loads: int
    load_seconds: float
    makespan: float
    latencies: list[float]
    waits: dict[str, list[float]]  # user -> wait of each request (queued -> first token)
    busy_share: float
    work: float  # generation seconds the simulation measured
    loads_counted_match: bool = True
    bound: Bound | None = None
    trace: list[str] = field(default_factory=list)  # each load and unload, in order, with its cause
    synced: bool = True  # False: the start's model sync still held a worker when the workload began

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95)

    @property
    def longest_wait(self) -> float:
        return max((w for waits in self.waits.values() for w in waits), default=0.0)


@dataclass
class Bound:
    loads: int
    load_seconds: float
    makespan: float
    parts: dict[str, float] = field(default_factory=dict)


def lower_bound(
    requests: list[dict[str, Any]],
    *,
    resident: set[str],
    load_seconds: dict[str, float],
    generation: dict[str, list[float]],
    concurrency: int,
    slots: int | None = None,
    apart: set[frozenset[str]] | None = None,
    model_slots: dict[str, int] | None = None,
    lanes: int = 1,
) -> Bound:
    """The lower bound for this work (see the module docstring); ``requests`` carry ``model`` and ``arrival``.

    ``resident``: models loaded when the workload starts; ``load_seconds``: each
    model's load time; ``generation``: the measured generation time of each
    request per model; ``concurrency``: how many requests can generate at once;
    ``slots``: how many of one model's requests can (Ollama's ``num_parallel``;
    None: no limit of its own); ``apart``: pairs of models that never fit in
    memory together (on the one GPU), so that their answers never overlap;
    ``model_slots``: each model's slots over every host that has it, instead of
    ``slots``; ``lanes``: GPUs that load models at the same time (one per host).
    """
    needed = sorted({r["model"] for r in requests} - resident)
    loads = sum(load_seconds[m] for m in needed)
    work = sum(sum(times) for times in generation.values())
    first_load = 0.0 if {r["model"] for r in requests} & resident else min((load_seconds[m] for m in needed), default=0)
    work_bound = first_load + work / max(concurrency, 1)
    shortest = {m: min(times) for m, times in generation.items() if times}
    load_bound = loads / max(lanes, 1) + min((shortest.get(m, 0.0) for m in needed), default=0.0) if needed else 0.0
    arrival_bound = 0.0
    for request in requests:
        # Which of its model's requests came last is not known: count the shortest.
        own = shortest.get(request["model"], 0.0)
        load = load_seconds.get(request["model"], 0.0) if request["model"] in needed else 0.0
        arrival_bound = max(arrival_bound, request["arrival"] + load + own)

    def slots_of(m: str) -> int:
        own = (model_slots or {}).get(m) or slots
        return max(min(own, concurrency) if own else concurrency, 1)

    model_bound = max(
        (
            (load_seconds[m] if m in needed else 0.0) + sum(times) / slots_of(m)
            for m, times in generation.items()
            if times
        ),
        default=0.0,
    )
    parts = {"work": work_bound, "loading": load_bound, "arrival": arrival_bound, "model": model_bound}
    if apart:
        # Two models that never fit together run one after the other: each one's answers over its slots (and
        # no shorter than its longest answer), with the second one's load between them, and the first one's
        # too unless it was loaded at the start. (A model resident at the start that goes second is pushed
        # out by the first and loaded again.)
        def span(m: str) -> float:
            times = generation.get(m, [])
            return max(sum(times) / slots_of(m), max(times, default=0.0))

        def one_after_other(first: str, second: str) -> float:
            before = 0.0 if first in resident else load_seconds[first]
            return before + span(first) + load_seconds[second] + span(second)

        used = {r["model"] for r in requests}
        pairs = [tuple(sorted(pair)) for pair in apart if len(pair) == 2 and pair <= used]
        if pairs:
            parts["apart"] = max(min(one_after_other(a, b), one_after_other(b, a)) for a, b in pairs)
    return Bound(loads=len(needed), load_seconds=loads, makespan=max(parts.values()), parts=parts)


@dataclass(frozen=True)
class HostLoad:
    """A load on one of several GPUs, on the first one's clock (``host``: "" for the first, else its number)."""

    model: str
    started: float
    finished: float
    context_length: int = 0
    host: str = ""

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True)
class HostUnload:
    model: str
    at: float
    reason: str
    host: str = ""


@dataclass
class Gpus:
    """The records of every simulated GPU of a run, on the first one's clock (``sim_time`` is its own)."""

    first: Any
    loads: list[Any]
    unloads: list[Any]
    busy: list[Any]
    config: Any

    def sim_time(self, wall: float) -> float:
        return float(self.first.sim_time(wall))

    def busy_share(self, start: float, end: float) -> float:
        """Share of ``[start, end]`` in which some model on some GPU was working (as the simulation's own)."""
        from tests.fake_ollama.gpu import busy_share

        return busy_share(self.busy, start, end)


def merged_gpus(fake: Any, others: Sequence[Any]) -> Gpus:
    """One view of the GPUs of ``fake`` and ``others``: each record moved to the first GPU's clock."""
    first = fake.gpu
    loads: list[Any] = list(first.loads)
    unloads: list[Any] = list(first.unloads)
    busy: list[Any] = list(first.busy)
    for number, other in enumerate(others, start=2):
        gpu = other.gpu

        def shift(t: float, gpu: Any = gpu) -> float:
            return float(first.sim_time(gpu.wall_time(t)))

        label = f"host {number}"
        loads += [HostLoad(x.model, shift(x.started), shift(x.finished), x.context_length, label) for x in gpu.loads]
        unloads += [HostUnload(u.model, shift(u.at), u.reason, label) for u in gpu.unloads]
        busy += [dataclasses.replace(b, started=shift(b.started), finished=shift(b.finished)) for b in gpu.busy]
    return Gpus(first, loads, unloads, busy, first.config)


def analyse(policy: str, result: dict[str, Any], fake: Any, *, workers: int, others: Sequence[Any] = ()) -> Figures:
    """Figures from the driver's rows (database timestamps) and the simulations' records, on the first's clock.

    ``others``: the fakes of further hosts; the bound then lets a model that every host has use every
    host's slots, and loads run on every GPU at once.
    """
    gpu = merged_gpus(fake, others)
    hosts = 1 + len(others)
    rows = result["requests"]
    start = gpu.sim_time(result["started"])
    queued = [gpu.sim_time(r["queued_at"]) for r in rows if r.get("queued_at")]
    finished = [gpu.sim_time(r["finished_at"]) for r in rows if r.get("finished_at")]
    first = min(queued, default=start)
    end = max(finished, default=first)
    # The warm-up's loads happened before the workload started; everything after counts.
    loads = [load for load in gpu.loads if load.started >= start]
    latencies = [
        gpu.sim_time(r["finished_at"]) - gpu.sim_time(r["queued_at"])
        for r in rows
        if r.get("status") == "done" and r.get("finished_at")
    ]
    waits: dict[str, list[float]] = {}
    for r in rows:
        if r.get("first_token_at") and r.get("queued_at"):
            waits.setdefault(r["user"], []).append(gpu.sim_time(r["first_token_at"]) - gpu.sim_time(r["queued_at"]))
    busy = [b for b in gpu.busy if b.started >= start and b.completed]
    generation: dict[str, list[float]] = {}
    for b in busy:
        generation.setdefault(b.model, []).append(b.finished - b.started)
    # Loaded when the workload started (by the warm-up, not unloaded since) with the context size its
    # route asks for: Ollama reloads a model asked for with another num_ctx.
    contexts = {route["model"]: route["context_size"] for route in result["routes"].values()}
    resident = {
        load.model for load in gpu.loads if load.finished <= start and load.context_length == contexts.get(load.model)
    }
    resident -= {u.model for u in gpu.unloads if u.at <= start}
    sizes = {spec.name: gpu.config.load_seconds(spec.size) for spec in fake.models}
    config = gpu.config
    concurrency = min(workers, hosts * config.num_parallel * config.max_loaded_models)
    answered = [r for r in rows if r.get("status") == "done"]
    having = {spec.name: 1 + sum(other.find_model(spec.name) is not None for other in others) for spec in fake.models}
    bound = lower_bound(
        [{"model": r["model"], "arrival": gpu.sim_time(r["queued_at"]) - first} for r in answered],
        resident=resident,
        load_seconds=sizes,
        generation=generation,
        concurrency=concurrency,
        slots=config.num_parallel,
        model_slots={name: count * config.num_parallel for name, count in having.items()} if others else None,
        lanes=hosts,
        # On one GPU only: with several, two models that do not fit together may run on two of them.
        apart=never_together(fake.models, vram=config.vram) if not others else None,
    )
    return Figures(
        trace=load_trace(gpu, start=start, first=first, resident=resident),
        synced=bool(result.get("synced", True)),
        policy=policy,
        requests=len(rows),
        answered=len(answered),
        failed=sum(r.get("status") in ("failed", "cancelled") for r in rows),
        refused=sum("refused" in r for r in rows),
        refusals={
            code: sum(r.get("refused") == code for r in rows) for code in {r.get("refused") for r in rows} if code
        },
        unfinished=sum("request_id" in r and r.get("status") not in FINISHED for r in rows),
        loads=len(loads),
        load_seconds=sum(load.seconds for load in loads),
        makespan=end - first,
        latencies=latencies,
        waits=waits,
        busy_share=gpu.busy_share(first, end),
        work=sum(b.finished - b.started for b in busy),
        bound=bound,
    )


def never_together(models: Sequence[Any], *, vram: int) -> set[frozenset[str]]:
    """The pairs of models whose sizes together exceed the GPU's memory: the simulation never holds both."""
    return {
        frozenset((a.name, b.name))
        for index, a in enumerate(models)
        for b in models[index + 1 :]
        if a.size + b.size > vram
    }


def load_trace(gpu: Any, *, start: float, first: float, resident: set[str]) -> list[str]:
    """Every load and unload of the workload, in order, each load above the lower bound with its cause.

    A model's first load is one the lower bound counts (unless it was resident
    at the start); every further load is attributed to how the model went
    before: evicted for another model, its keep_alive ran out, released by the
    scheduler (``keep_alive 0``), or reloaded with another context size.
    With several GPUs, each record names its host ("on host 2"; the first's name none), and a model
    loaded on a second host after the first counts as a load above the bound.
    """

    def on(record: Any) -> str:
        host = getattr(record, "host", "")
        return f" on {host}" if host else ""

    events: list[tuple[float, str]] = []
    loaded_once: set[str] = set()
    unloads = [u for u in gpu.unloads if u.at >= start]
    for load in sorted((x for x in gpu.loads if x.started >= start), key=lambda x: x.started):
        went = [u for u in unloads if u.model == load.model and on(u) == on(load) and u.at <= load.started]
        if load.model not in loaded_once and load.model not in resident:
            cause = "needed (counted by the bound)"
        elif went:
            cause = f"EXTRA: it had gone ({went[-1].reason} at {went[-1].at - first:.1f} s)"
        else:
            cause = "EXTRA: loaded again"
        loaded_once.add(load.model)
        events.append(
            (
                load.started,
                f"{load.started - first:6.1f} s load {load.model}{on(load)} ({load.seconds:.1f} s): {cause}",
            )
        )
    for unload in unloads:
        events.append((unload.at, f"{unload.at - first:6.1f} s unload {unload.model}{on(unload)} ({unload.reason})"))
    return [text for _, text in sorted(events)]


# ====================================================================== report


def fmt(value: float | None, unit: str = " s") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def targets(figures: Figures, fifo: Figures | None, *, aging_bound: float) -> dict[str, bool]:
    bound = figures.bound
    assert bound is not None
    checks = {
        f"loads ≤ {TARGET_LOADS:g} x bound": figures.loads <= TARGET_LOADS * max(bound.loads, 1),
        f"makespan ≤ {TARGET_MAKESPAN:g} x bound": figures.makespan <= TARGET_MAKESPAN * bound.makespan,
        "every request answered": figures.answered == figures.requests,
    }
    if fifo is not None and figures.policy != "fifo":
        checks["p95 ≤ fifo's"] = (figures.p95 or 0) <= (fifo.p95 or 0)
        checks[f"longest wait ≤ fifo's + {aging_bound:g} s"] = figures.longest_wait <= fifo.longest_wait + aging_bound
    return checks


def render_workload(
    workload: str, runs: dict[str, Figures | str], *, aging_bound: float
) -> tuple[str, dict[str, bool]]:
    measured = {policy: f for policy, f in runs.items() if isinstance(f, Figures)}
    fifo = measured.get("fifo")
    some = next(iter(measured.values()), None)
    lines = [f"Workload — {WORKLOAD_TITLES[workload]}"]
    for policy, run in runs.items():
        if isinstance(run, str):
            lines.append(f"  {policy}: {run}")
    if some is None:
        return "\n".join(lines) + "\n", {}
    names = list(measured)
    width = 22
    header = f"  {'':<26}" + "".join(f"{name:>{width}}" for name in names) + f"{'lower bound':>{width}}"
    lines.append(header)
    bound = some.bound
    assert bound is not None

    def row(label: str, values: list[str], bound_value: str) -> None:
        lines.append(f"  {label:<26}" + "".join(f"{v:>{width}}" for v in values) + f"{bound_value:>{width}}")

    figs = [measured[n] for n in names]
    row("answered", [f"{f.answered}/{f.requests}" for f in figs], "")
    row("model loads", [str(f.loads) for f in figs], str(bound.loads))
    row("time spent loading", [fmt(f.load_seconds) for f in figs], fmt(bound.load_seconds))
    row("makespan", [fmt(f.makespan) for f in figs], fmt(bound.makespan))
    row("latency p50 / p95", [f"{fmt(f.p50, '')} / {fmt(f.p95)}" for f in figs], "—")
    row("latency max", [fmt(max(f.latencies, default=None)) for f in figs], "—")
    row("GPU busy", [f"{100 * f.busy_share:.0f} %" for f in figs], "~100 %")
    row("longest wait", [fmt(f.longest_wait) for f in figs], "—")
    parts = ", ".join(f"{name} {value:.1f} s" for name, value in bound.parts.items())
    lines.append(f"  (makespan bound = the largest of {parts}; generation measured: {some.work:.1f} s)")
    lines.append("  each user's wait (queued → first token), mean / longest:")
    users = sorted({user for f in figs for user in f.waits})
    for user in users:
        cells = []
        for f in figs:
            waits = f.waits.get(user, [])
            cells.append(f"{fmt(sum(waits) / len(waits), '')} / {fmt(max(waits))}" if waits else "—")
        row(f"  {user} ({max(len(f.waits.get(user, [])) for f in figs)})", cells, "")
    all_checks: dict[str, bool] = {}
    for f in figs:
        checks = targets(f, fifo, aging_bound=aging_bound)
        marks = ", ".join(f"{name} {verdict(ok)}" for name, ok in checks.items())
        lines.append(f"  targets, {f.policy}: {marks}")
        all_checks |= {f"{workload} {f.policy}: {name}": ok for name, ok in checks.items()}
    for f in figs:
        extra = sum("EXTRA" in line for line in f.trace)
        lines.append(f"  loads and unloads, {f.policy} ({extra} loads above the bound):")
        lines.extend(f"    {line}" for line in f.trace)
    for f in figs:
        if not f.synced:
            lines.append(f"  ! {f.policy}: the start's model sync still held a worker when this workload began")
        if f.refused or f.failed or f.unfinished:
            codes = ", ".join(f"{code} x{n}" for code, n in sorted(f.refusals.items()))
            lines.append(
                f"  ! {f.policy}: {f.refused} refused ({codes or 'none'}), {f.failed} failed, "
                f"{f.unfinished} never finished"
            )
    return "\n".join(lines) + "\n", all_checks


# ====================================================================== orchestration


class UnknownPolicy(Exception):
    pass


def system_policy(system: Any) -> str:
    """What ``REQUEST_SCHEDULER`` the system's settings ended up with ("fifo" when it has no such setting)."""
    try:
        value = system.query(
            "from django.conf import settings\nresult = getattr(settings, 'REQUEST_SCHEDULER', None)", timeout=60
        )
    except subprocess.CalledProcessError as exc:
        raise UnknownPolicy(f"the settings refused it: {(exc.stderr or '').strip().splitlines()[-1:]}") from None
    # Before the setting existed the broker's order was the only one: first in, first out.
    return "fifo" if value is None else str(value)


@contextlib.contextmanager
def policy_system(config: str, fake: Any, policy: str, extra_env: dict[str, str]) -> Iterator[Any]:
    from bench.pipeline import started_system
    from tests.e2e.harness import System

    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-scheduling-{policy}-"))
    try:
        env = {**SYSTEM_ENV, "REQUEST_SCHEDULER": policy, **extra_env}
        probe = System(data_dir, ollama_url=fake.url, **env)
        found = system_policy(probe)
        if found != policy:
            raise UnknownPolicy(f"this system does not know it (REQUEST_SCHEDULER={policy} runs as {found})")
        with started_system(config, fake, data_dir, **env) as system:
            yield system
    finally:
        keep = os.environ.get("BENCH_SCHEDULING_LOGS")  # a folder for the system's logs (each claim's view)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for log in data_dir.glob("*.log"):
                shutil.copy(log, Path(keep) / f"{policy}-{log.name}")
        shutil.rmtree(data_dir, ignore_errors=True)


def run_workload(
    system: Any,
    workload: str,
    *,
    time_scale: float,
    timeout: float,
    arrivals: Sequence[Arrival] | None = None,
    second_host: str | None = None,
) -> dict[str, Any]:
    """Run one workload (by name, or ``arrivals`` under that name) through a driver process; its raw result.

    ``second_host``: the URL of a second Ollama the system uses for this workload (and not for the next).
    """
    arrivals = WORKLOAD_PLANS[workload]() if arrivals is None else arrivals
    plan = {
        "workload": workload,
        "time_scale": time_scale,
        "timeout": timeout,
        "arrivals": [{"at": a.at, "user": a.user, "route": a.route} for a in arrivals],
        "second_host": second_host,
    }
    env = {**system.env, "DJANGO_SETTINGS_MODULE": "trollama.settings", "LOG_LEVEL": "warning"}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.scheduling", "--drive"],
        cwd=ROOT,
        env=env,
        input=json.dumps(plan),
        stdout=subprocess.PIPE,
        text=True,
        timeout=DRIVER_TIMEOUT,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise RuntimeError(f"the driver exited with {completed.returncode} and no result:\n{completed.stdout[-3000:]}")


def workers_of(system: Any) -> int:
    return int(system.env.get("Q_WORKERS") or 4)


def measure(
    fake: Any, policies: Sequence[str], workloads: Sequence[str], args: argparse.Namespace
) -> dict[str, dict[str, Figures | str]]:
    """Every workload under every policy; a policy that cannot run gets the reason instead of figures."""
    results: dict[str, dict[str, Figures | str]] = {w: {} for w in workloads}
    for policy in policies:
        progress(f"policy {policy}: starting the system")
        try:
            with policy_system(args.config, fake, policy, args.env) as system:
                for workload in workloads:
                    progress(f"policy {policy}: {WORKLOAD_TITLES[workload]}")
                    with contextlib.ExitStack() as stack:
                        others = []
                        if workload in SECOND_HOST_WORKLOADS:
                            others.append(stack.enter_context(second_fake(args.time_scale)))
                        result = run_workload(
                            system,
                            workload,
                            time_scale=args.time_scale,
                            timeout=args.timeout,
                            second_host=others[0].url if others else None,
                        )
                        results[workload][policy] = analyse(
                            policy, result, fake, workers=workers_of(system), others=others
                        )
        except UnknownPolicy as unknown:
            for workload in workloads:
                results[workload][policy] = f"NOT RUN: {unknown}"
    return results


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def second_fake(time_scale: float) -> Iterator[Any]:
    """A second Ollama with its own simulated GPU, like the first but without ``PINNED_MODEL``."""
    from tests.fake_ollama import FakeOllama

    with FakeOllama() as fake:
        configure_fake(fake, time_scale)
        fake.remove_model(PINNED_MODEL)
        yield fake


def configure_fake(fake: Any, time_scale: float) -> None:
    from tests.fake_ollama import GpuConfig

    fake.simulate_gpu(GpuConfig(time_scale=time_scale))
    fake.script(REPLY, match=r"^sched ", completion_tokens=ANSWER_TOKENS)


def render(results: dict[str, dict[str, Figures | str]], args: argparse.Namespace, gpu: Any) -> tuple[str, bool]:
    config = gpu.config
    lines = [
        f"Trollama scheduling — {args.config}, policies {', '.join(args.policies)}",
        f"  simulated GPU: {config.vram / 1e9:g} GB, {config.load_seconds_per_gb:g} s/GB to load, "
        f"{config.num_parallel} slots per model, at most {config.max_loaded_models} models; "
        f"answers of {ANSWER_TOKENS} tokens; time scale {args.time_scale:g}; figures in simulated seconds",
        "  the system's settings: its defaults, but for "
        + ", ".join(f"{name}={value}" for name, value in args.env.items())
        + (
            " (scheduler timers scaled to the simulated clock: their defaults times the time scale)"
            if args.scaled
            else ""
        ),
        "",
    ]
    ok = True
    for workload, runs in results.items():
        text, checks = render_workload(workload, runs, aging_bound=args.aging_bound)
        lines.append(text)
        ok = ok and all(checks.values())
    return "\n".join(lines), ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default=",".join(POLICIES), help="REQUEST_SCHEDULER values, comma-separated")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"among {', '.join(WORKLOADS)}")
    parser.add_argument("--config", choices=("embedded", "production"), default="embedded")
    parser.add_argument(
        "--time-scale", type=float, default=DEFAULT_TIME_SCALE, help="real seconds per simulated second"
    )
    parser.add_argument(
        "--aging-bound", type=float, default=AGING_BOUND, help="simulated seconds allowed beyond fifo's longest wait"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="real seconds a workload may take")
    parser.add_argument(
        "--system-env", action="append", default=[], metavar="NAME=VALUE", help="extra settings for the system"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)  # the driver subprocess
    args = parser.parse_args(argv)
    args.policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; use {', '.join(WORKLOADS)}")
    if not args.policies:
        parser.error("--policies needs at least one")
    if not args.time_scale > 0:
        parser.error("--time-scale must be positive")
    env = {}
    for item in args.system_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--system-env wants NAME=VALUE, not {item!r}")
        env[name] = value
    args.system_env = env
    args.scaled = scaled_timers(args.time_scale, given=env)
    args.env = {**SYSTEM_ENV, **args.scaled, **env}
    return args


def scaled_timers(time_scale: float, *, given: dict[str, str]) -> dict[str, str]:
    """The scheduler's timers as the system would feel them at its defaults in real time.

    The simulation runs ``1 / time_scale`` times as fast as the real clock,
    the system's timers in real time: 30 s of aging would be 300 simulated
    seconds at a scale of 0.1. So each default in ``SCALED_TIMERS`` is
    multiplied by the scale (none at a scale of 1), unless ``--system-env``
    sets it.
    """
    if time_scale == 1:
        return {}
    return {name: f"{default * time_scale:g}" for name, default in SCALED_TIMERS.items() if name not in given}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drive:
        return driver_main()
    from tests.fake_ollama import FakeOllama

    missed = False

    def produce() -> str:
        nonlocal missed
        with FakeOllama() as fake:
            configure_fake(fake, args.time_scale)
            results = measure(fake, args.policies, args.workloads, args)
            report, ok = render(results, args, fake.gpu)
        missed = not ok
        return report

    status = report_main(f"Trollama scheduling — {args.config}", f"scheduling-{args.config}", produce)
    if status == 0 and args.check and missed:
        return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
