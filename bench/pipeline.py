"""The request pipeline under load: intake → queue → worker → Ollama → events → websocket.

    python -m bench.pipeline [--config embedded|production|both] [--requests N] [--quick]

For each configuration it starts a real system (Daphne web + a django-q2
``qcluster``, see ``tests.e2e.harness``) against a fake Ollama server running
in this process, then runs a *driver* subprocess configured exactly like the
system (same environment) that submits requests with
``pipeline.services.submit_request`` and follows them over web's
``/ws/events/`` websocket with the internal token, as the bot does.

- embedded default: SQLite, the ORM broker, the in-memory channel layer in
  web; workers and the driver relay their events to web over HTTP.
- production: PostgreSQL (a fresh database on the server ``DATABASE_URL``
  names, default ``postgres://postgres@127.0.0.1:5432/postgres``) and Redis
  (``REDIS_URL``, default ``redis://127.0.0.1:6379/0``); skipped, with the
  reason, when either cannot be reached.

The fake answers the same ~60-token reply (code, a tab, non-ASCII) either
instantly or at 30 tokens/s. Figures, all from time.time() on this machine:

- pickup: ``started_at - queued_at`` of each Request row;
- first token → websocket: when the driver received the first
  ``request.delta`` minus when the fake wrote its first chunk;
- end-to-end overhead: (``request.done`` received - submit) minus the fake's
  own stream time (last chunk - request received), next to the same figure
  for the reply streamed straight from the fake with ``ollama.AsyncClient``;
- throughput at concurrency 1, 4 and 16, with an integrity check of every
  request's events (one ``request.done``, contiguous delta offsets,
  deltas == reply);
- resident memory of web, the worker process group and the bench itself.

Latencies are judged at concurrency 1; higher concurrencies include waiting
for a free worker once there are more requests than workers. Nothing here
asserts: it prints figures and PASS/MISS against the targets, exits 0, and
exits non-zero only when it could not run. The report is also written to
``bench/results/pipeline-<config>.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
RESULT_MARK = "BENCH-RESULT "

# What the fake streams for every request: code with indentation, a tab,
# brackets and non-ASCII, so the integrity check is byte-exact on hard text.
REPLY = (
    "Here is the loop you asked for — résumé-safe, tabs kept:\n\n"
    "```python\n"
    "def count(n):\n"
    "    for i in range(n):  # {[()]}\n"
    '\tprint(f"{i:>3} ✓")\n'
    "    return n\n"
    "```\n\n"
    "It prints each number, right-aligned, then returns n. Want a generator instead? Say so.\n"
)
PROMPT_TOKENS = 40
PACED_TOKENS_PER_SECOND = 30.0
# Rate label -> the fake's tokens_per_second (None streams as fast as it can).
RATES: dict[str, float | None] = {"instant": None, "paced": PACED_TOKENS_PER_SECOND}
RATE_TITLES = {"instant": "instant", "paced": f"{PACED_TOKENS_PER_SECOND:g} tok/s"}
CONCURRENCY = (1, 4, 16)
FINISHED = ("done", "failed", "cancelled")  # Request.FINISHED, without importing Django here
# Q_WORKERS for the system under test: the shipped default. On 2 cores more
# worker processes only add contention; at 16 in flight the rest queue.
WORKERS = 4
DEFAULT_REQUESTS = 40
QUICK_REQUESTS = 12
REQUEST_TIMEOUT = 120.0
# Concurrency-1 runs pause up to this long (uniformly) before each submit.
MAX_PAUSE = 0.1
DRIVER_TIMEOUT = 900.0

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

TARGET_PICKUP_MS = 60.0
TARGET_FIRST_TOKEN_P95_MS = 150.0

CONFIG_TITLES = {
    "embedded": "embedded default (SQLite WAL + ORM broker + in-memory layer; web is the event hub)",
    "production": "production (PostgreSQL + Redis broker + channels-redis)",
}


# ====================================================================== plan


@dataclass(frozen=True)
class Run:
    rate: str
    concurrency: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.rate}-c{self.concurrency}"


@dataclass(frozen=True)
class Plan:
    warmup: int
    baseline: dict[str, int]
    runs: list[Run]


def make_plan(requests: int) -> Plan:
    """How many requests each part gets; the paced runs take ~2 s per request."""
    runs = []
    for rate in RATES:
        for concurrency in CONCURRENCY:
            scale = {1: 1, 4: 2, 16: 4}[concurrency]
            count = requests * scale if rate == "instant" else requests * scale // 3
            runs.append(Run(rate, concurrency, max(count, 2 * concurrency, 3)))
    baseline = {"instant": requests, "paced": max(requests // 3, 3)}
    return Plan(warmup=3 * WORKERS, baseline=baseline, runs=runs)


def message_text(rate: str, label: str, index: int) -> str:
    """Unique per request, so the fake's records map back to requests; starts with the rate."""
    return f"bench {rate} {label} request {index}"


# ====================================================================== statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks; None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fmt_ms(value: float | None, width: int = 7) -> str:
    if value is None:
        return "—".rjust(width)
    return f"{value:{width}.1f}"


def p50_p95(values: Sequence[float]) -> str:
    return f"{fmt_ms(percentile(values, 50))} {fmt_ms(percentile(values, 95))}"


# ====================================================================== memory


def _read_kb(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and PSS in kB; zeros for a process that is gone."""
    proc = Path("/proc") / str(pid)
    return {
        "rss": _read_kb(proc / "status", "VmRSS") or 0,
        "hwm": _read_kb(proc / "status", "VmHWM") or 0,
        "pss": _read_kb(proc / "smaps_rollup", "Pss") or 0,
    }


def group_pids(pgid: int) -> list[int]:
    """Every live process in a process group (the harness starts each role in its own session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = (Path("/proc") / entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return sorted(pids)


def group_memory(pgid: int) -> dict[str, int]:
    pids = group_pids(pgid)
    total = {"processes": len(pids), "rss": 0, "hwm": 0, "pss": 0}
    for pid in pids:
        for key, value in process_memory(pid).items():
            total[key] += value
    return total


def system_memory(system: Any) -> dict[str, dict[str, int]]:
    return {
        "web": group_memory(system.processes["web"].pid),
        "workers": group_memory(system.processes["worker"].pid),
        "parent": {"processes": 1, **process_memory(os.getpid())},
    }


# ====================================================================== driver (subprocess)


@dataclass
class EventLog:
    """What the websocket delivered for one request, in arrival order."""

    first_delta_at: float | None = None
    done_at: float | None = None
    done_count: int = 0
    done_content: str | None = None
    ended: str = ""  # done / failed / cancelled, from the first final event
    deltas: list[tuple[int, int, str]] = field(default_factory=list)  # (attempt, offset, text)
    resets: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Tracker:
    """Follows ``/ws/events/`` and files every event under its request id.

    Events can arrive before ``submit_request`` has returned the id (the
    queued event is sent at commit, a fast worker follows), so logs are
    created by whichever comes first.
    """

    def __init__(self) -> None:
        self.logs: dict[int, EventLog] = {}
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.other_events = 0

    def log(self, request_id: int) -> EventLog:
        return self.logs.setdefault(request_id, EventLog())

    async def wait_until_finished(self, request_id: int, *, within: float) -> bool:
        """False on timeout; raises if the websocket closed, since nothing more can arrive."""
        finished = asyncio.ensure_future(self.log(request_id).finished.wait())
        closed = asyncio.ensure_future(self.closed.wait())
        done, pending = await asyncio.wait({finished, closed}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if finished in done:
            return True
        if closed in done:
            raise ConnectionError("web closed the event websocket")
        return False

    async def follow(self, listener: Any) -> None:
        try:
            await self._follow(listener)
        finally:
            self.closed.set()

    async def _follow(self, listener: Any) -> None:
        async for event in listener:
            now = time.time()
            kind = event.get("type")
            if kind == "sync":
                self.synced.set()
                continue
            request_id = event.get("request_id")
            if not isinstance(request_id, int):
                self.other_events += 1
                continue
            log = self.log(request_id)
            if kind == "request.delta":
                if log.first_delta_at is None:
                    log.first_delta_at = now
                log.deltas.append((event.get("attempt", 1), event["offset"], event["text"]))
            elif kind == "request.status" and event.get("reset"):
                log.resets += 1
            elif kind == "request.done":
                log.done_count += 1
                if log.done_at is None:
                    log.done_at = now
                    log.done_content = event.get("content")
                log.ended = log.ended or "done"
                log.finished.set()
            elif kind in ("request.failed", "request.cancelled"):
                log.ended = log.ended or kind.removeprefix("request.")
                log.finished.set()


def check_integrity(log: EventLog, *, finished_in_db: bool) -> dict[str, int]:
    """Lost, duplicated and corrupted events of one request (all 0 when perfect).

    A request the database says has finished must have sent one final event
    (``request.done``, or failed/cancelled); a missing one is lost, a second
    ``request.done`` duplicated. Deltas are checked in arrival order within
    the last attempt: each offset must equal the length of the text before it.
    A gap is a lost delta, an overlap a duplicated one; contiguous deltas that
    do not spell the reply (or a ``request.done`` whose content is not the
    reply) are corrupted. A request that never finished is reported as timed
    out, not here.
    """
    gaps = overlaps = 0
    last_attempt = max((attempt for attempt, _, _ in log.deltas), default=1)
    expected = 0
    parts = []
    for attempt, offset, text in log.deltas:
        if attempt != last_attempt:
            continue
        if offset > expected:
            gaps += 1
        elif offset < expected:
            overlaps += 1
        else:
            parts.append(text)
        expected = max(expected, offset + len(text))
    reply = REPLY.encode()
    corrupted = bool(log.done_count) and (
        (log.done_content or "").encode() != reply or (not gaps and not overlaps and "".join(parts).encode() != reply)
    )
    return {
        "lost": gaps + (1 if finished_in_db and not log.ended else 0),
        "duplicated": overlaps + max(log.done_count - 1, 0),
        "corrupted": int(corrupted),
    }


def _submit_sync(label: str, content: str) -> dict[str, Any]:
    """Create a user and thread for this request, then submit it the way the bot does.

    One user per request keeps per-user limits (rate, budget) out of the figures.
    """
    from conversations.models import Platform
    from pipeline import services

    user = services.get_or_create_chat_user(
        platform=Platform.LOCAL, external_id=f"bench-{label}", username=f"bench-{label}"
    )
    thread = services.start_local_thread(owner=user, first_message=content)
    submit_at = time.time()
    try:
        submission = services.submit_request(user=user, thread=thread, content=content)
    except services.Refusal as refusal:
        return {"refused": refusal.code, "submit_at": submit_at}
    return {"request_id": submission.request.pk, "submit_at": submit_at, "submitted_at": time.time()}


def _rows_sync(request_ids: list[int]) -> dict[int, dict[str, Any]]:
    from conversations.models import Request

    def epoch(value: Any) -> float | None:
        return value.timestamp() if value else None

    rows = {}
    for row in Request.objects.filter(pk__in=request_ids).values(
        "pk", "status", "attempts", "queued_at", "started_at", "first_token_at", "finished_at"
    ):
        rows[row["pk"]] = {
            "status": row["status"],
            "attempts": row["attempts"],
            "queued_at": epoch(row["queued_at"]),
            "started_at": epoch(row["started_at"]),
            "first_token_at": epoch(row["first_token_at"]),
            "finished_at": epoch(row["finished_at"]),
        }
    return rows


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


async def run_load(tracker: Tracker, run: Run, *, label: str | None = None) -> dict[str, Any]:
    """Submit ``run.count`` requests keeping ``run.concurrency`` in flight."""
    from asgiref.sync import sync_to_async

    label = label or run.label
    pending = list(range(run.count))
    records: list[dict[str, Any]] = []
    submit = sync_to_async(_submit_sync)
    # One request at a time would submit in step with the ORM broker's poll
    # loop (a cycle takes about two polls), which biases pickup either way.
    # A random pause breaks the lockstep; it is left out of the run's time.
    jitter = random.Random(run.label) if run.concurrency == 1 else None
    paused = 0.0

    async def slot() -> None:
        nonlocal paused
        while pending:
            index = pending.pop(0)
            if jitter is not None:
                pause = jitter.uniform(0, MAX_PAUSE)
                await asyncio.sleep(pause)
                paused += pause
            content = message_text(run.rate, label, index)
            record = await submit(f"{label}-{index}", content)
            record["content"] = content
            records.append(record)
            if "request_id" not in record:
                continue
            if not await tracker.wait_until_finished(record["request_id"], within=REQUEST_TIMEOUT):
                record["timed_out"] = True

    started = time.time()
    await asyncio.gather(*(slot() for _ in range(run.concurrency)))
    ended = time.time() - paused
    return {"run": asdict(run), "label": label, "started": started, "ended": ended, "requests": records}


async def run_baseline(host: str, rate: str, count: int) -> list[dict[str, Any]]:
    """The reply streamed straight from the fake: a new ``AsyncClient`` per request, like a worker."""
    import httpx
    import ollama

    records = []
    for index in range(count):
        content = message_text(rate, "baseline", index)
        client = ollama.AsyncClient(host=host, timeout=httpx.Timeout(60, connect=5))
        text = []
        first_at = last_at = None
        sent_at = time.time()
        try:
            stream = await client.chat(
                model="gpt-oss:20b", messages=[{"role": "user", "content": content}], stream=True
            )
            async for chunk in stream:
                last_at = time.time()
                if chunk.message.content:
                    first_at = first_at or last_at
                    text.append(chunk.message.content)
        finally:
            await client.close()
        records.append(
            {
                "content": content,
                "sent_at": sent_at,
                "first_at": first_at,
                "last_at": last_at,
                "intact": "".join(text) == REPLY,
            }
        )
    return records


def self_memory() -> dict[str, int]:
    return {"processes": 1, **process_memory(os.getpid())}


async def drive(plan: Plan) -> dict[str, Any]:
    from asgiref.sync import sync_to_async
    from django.conf import settings

    from pipeline.listeners import WebsocketListener

    listener = await WebsocketListener.connect()
    tracker = Tracker()
    reader = asyncio.create_task(tracker.follow(listener))
    # The consumer joins its groups before accepting and then sends a snapshot:
    # once the snapshot is here, every event from now on reaches us.
    await asyncio.wait_for(tracker.synced.wait(), timeout=10)
    memory_start = self_memory()

    result: dict[str, Any] = {"baseline": {}, "runs": []}
    progress(f"warm-up: {plan.warmup} requests at concurrency {WORKERS}")
    warmup = await run_load(tracker, Run("instant", WORKERS, plan.warmup), label="warmup")
    result["warmup"] = warmup
    for rate, count in plan.baseline.items():
        progress(f"baseline: {count} {RATE_TITLES[rate]} replies straight from the fake")
        result["baseline"][rate] = await run_baseline(settings.OLLAMA_HOST, rate, count)
    for run in plan.runs:
        progress(f"{RATE_TITLES[run.rate]}, concurrency {run.concurrency}: {run.count} requests")
        result["runs"].append(await run_load(tracker, run))

    # Late duplicates would arrive after the done event: give them a moment.
    await asyncio.sleep(1.0)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await reader
    await listener.close()

    every_run = [warmup, *result["runs"]]
    ids = [r["request_id"] for run in every_run for r in run["requests"] if "request_id" in r]
    rows = await sync_to_async(_rows_sync)(ids)
    for run in every_run:
        for record in run["requests"]:
            if "request_id" not in record:
                continue
            log = tracker.log(record["request_id"])
            record.update(
                first_delta_at=log.first_delta_at,
                done_at=log.done_at,
                ended=log.ended,
                deltas=len(log.deltas),
                resets=log.resets,
                row=rows.get(record["request_id"]),
                **check_integrity(log, finished_in_db=rows.get(record["request_id"], {}).get("status") in FINISHED),
            )
    result["memory"] = {"start": memory_start, "end": self_memory()}
    return result


def driver_main(plan: Plan) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trollama.settings")
    from trollama.dotenv import read_dotenv

    read_dotenv()
    import django

    django.setup()
    result = asyncio.run(drive(plan))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


# ====================================================================== parent: analysis


@dataclass
class RunFigures:
    rate: str
    concurrency: int
    submitted: int
    refused: int
    seconds: float
    done: int
    failed: int
    timed_out: int
    pickup: list[float]
    first_token: list[float]
    overhead: list[float]
    intake: list[float]  # submit_request's own time, as the caller sees it
    before_ollama: list[float]  # submit -> the fake received the chat request
    worker_to_ollama: list[float]  # the worker's started_at -> the fake received the chat request
    after_ollama: list[float]  # the fake's last chunk -> request.done at the client
    lost: int
    duplicated: int
    corrupted: int
    retried: int

    @property
    def throughput(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def fake_chat_records(fake: Any) -> dict[str, Any]:
    """The fake's /api/chat records by last user message; the last one wins (retries)."""
    records = {}
    for record in fake.requests:
        if record.path != "/api/chat":
            continue
        users = [m for m in record.messages if m.get("role") == "user"]
        if users:
            records[str(users[-1].get("content"))] = record
    return records


def analyse_run(run: dict[str, Any], fake_records: dict[str, Any]) -> RunFigures:
    figures = RunFigures(
        rate=run["run"]["rate"],
        concurrency=run["run"]["concurrency"],
        submitted=0,
        refused=0,
        seconds=run["ended"] - run["started"],
        done=0,
        failed=0,
        timed_out=0,
        pickup=[],
        first_token=[],
        overhead=[],
        intake=[],
        before_ollama=[],
        worker_to_ollama=[],
        after_ollama=[],
        lost=0,
        duplicated=0,
        corrupted=0,
        retried=0,
    )
    for record in run["requests"]:
        if "request_id" not in record:
            figures.refused += 1
            continue
        figures.submitted += 1
        figures.lost += record["lost"]
        figures.duplicated += record["duplicated"]
        figures.corrupted += record["corrupted"]
        figures.timed_out += bool(record.get("timed_out"))
        if record["ended"] == "done":
            figures.done += 1
        elif record["ended"]:
            figures.failed += 1
        row = record.get("row") or {}
        figures.retried += (row.get("attempts") or 0) > 1
        if row.get("started_at") and row.get("queued_at"):
            figures.pickup.append((row["started_at"] - row["queued_at"]) * 1000)
        figures.intake.append((record["submitted_at"] - record["submit_at"]) * 1000)
        fake = fake_records.get(record["content"])
        if fake is None:
            continue
        figures.before_ollama.append((fake.received_at - record["submit_at"]) * 1000)
        if row.get("started_at"):
            figures.worker_to_ollama.append((fake.received_at - row["started_at"]) * 1000)
        if record["first_delta_at"] and fake.first_chunk_at:
            figures.first_token.append((record["first_delta_at"] - fake.first_chunk_at) * 1000)
        if record["done_at"] and fake.last_chunk_at:
            stream_time = fake.last_chunk_at - fake.received_at
            figures.overhead.append(((record["done_at"] - record["submit_at"]) - stream_time) * 1000)
            figures.after_ollama.append((record["done_at"] - fake.last_chunk_at) * 1000)
    return figures


@dataclass
class BaselineFigures:
    count: int
    intact: int
    first_token: list[float]
    overhead: list[float]


def analyse_baseline(records: list[dict[str, Any]], fake_records: dict[str, Any]) -> BaselineFigures:
    figures = BaselineFigures(count=len(records), intact=0, first_token=[], overhead=[])
    for record in records:
        figures.intact += record["intact"]
        fake = fake_records.get(record["content"])
        if fake is None or record["last_at"] is None:
            continue
        if record["first_at"] and fake.first_chunk_at:
            figures.first_token.append((record["first_at"] - fake.first_chunk_at) * 1000)
        stream_time = fake.last_chunk_at - fake.received_at
        figures.overhead.append(((record["last_at"] - record["sent_at"]) - stream_time) * 1000)
    return figures


# ====================================================================== parent: report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def mib(kb: int) -> str:
    return f"{kb / 1024:8.1f}"


def render_report(
    config: str,
    *,
    plan: Plan,
    result: dict[str, Any],
    fake: Any,
    memory_start: dict[str, dict[str, int]],
    memory_end: dict[str, dict[str, int]],
    setup_seconds: float,
    load_seconds: float,
    load_average: tuple[float, float],
) -> tuple[str, dict[str, bool]]:
    from tests.fake_ollama import chunk_text

    fake_records = fake_chat_records(fake)
    runs = [analyse_run(run, fake_records) for run in result["runs"]]
    warmup = analyse_run(result["warmup"], fake_records)
    baseline = {rate: analyse_baseline(records, fake_records) for rate, records in result["baseline"].items()}
    at_one = {f.rate: f for f in runs if f.concurrency == 1}

    lines = [
        f"Trollama pipeline benchmark — {CONFIG_TITLES[config]}",
        f"  machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}; "
        f"1-min load average {load_average[0]:.2f} before the load, {load_average[1]:.2f} after",
        f"  system: Daphne web (1 process) + qcluster with Q_WORKERS={WORKERS}"
        + (", ORM broker poll Q_POLL=0.05 s (default)" if config == "embedded" else ", Redis broker"),
        "  stream: deltas coalesced every 250 ms (STREAM_DELTA_INTERVAL_MS default), first delta at once",
        f"  reply: {len(chunk_text(REPLY))} chunks, {len(REPLY)} characters; rates: instant and "
        f"{PACED_TOKENS_PER_SECOND:g} tokens/s (~{len(chunk_text(REPLY)) / PACED_TOKENS_PER_SECOND:.1f} s stream)",
        f"  start-up {setup_seconds:.1f} s, load {load_seconds:.1f} s; warm-up {warmup.submitted} requests "
        "(checked for integrity, not timed)",
        "",
        f"Latency at concurrency 1 (ms)                    instant          {RATE_TITLES['paced']}",
        "                                              p50     p95        p50     p95",
    ]

    def latency_row(name: str, pick: Any) -> str:
        cells = []
        for rate in RATES:
            figures = at_one.get(rate)
            cells.append(p50_p95(pick(figures)) if figures else p50_p95([]))
        return f"  {name:<38}{cells[0]}    {cells[1]}"

    lines += [
        latency_row("pickup (queued_at → started_at)", lambda f: f.pickup),
        latency_row("first Ollama token → websocket", lambda f: f.first_token),
        latency_row("  direct baseline: first chunk → client", lambda f: baseline[f.rate].first_token),
        latency_row("end-to-end overhead, Trollama", lambda f: f.overhead),
        latency_row("end-to-end overhead, direct baseline", lambda f: baseline[f.rate].overhead),
        latency_row("  of which submit_request call", lambda f: f.intake),
        latency_row("  of which submit → Ollama request", lambda f: f.before_ollama),
        latency_row("    of which worker start → Ollama", lambda f: f.worker_to_ollama),
        latency_row("  of which last chunk → done at client", lambda f: f.after_ollama),
        "  (overhead = done event at the client - submit, minus the fake's own stream time;",
        "   baseline = last chunk at an ollama.AsyncClient - request sent, minus the same)",
        "",
        "Throughput and integrity",
        "  rate        conc   reqs      s   req/s   pickup p50/p95    1st tok p50/p95    lost dup corrupt failed",
    ]
    for f in runs:
        lines.append(
            f"  {RATE_TITLES[f.rate]:<10}{f.concurrency:>5}{f.submitted:>7}{f.seconds:>7.1f}{f.throughput:>8.2f}"
            f"  {p50_p95(f.pickup)}   {p50_p95(f.first_token)}"
            f"  {f.lost:>5}{f.duplicated:>4}{f.corrupted:>8}{f.failed + f.timed_out:>7}"
        )
    everything = [warmup, *runs]
    lost = sum(f.lost for f in everything)
    duplicated = sum(f.duplicated for f in everything)
    corrupted = sum(f.corrupted for f in everything)
    failed = sum(f.failed + f.timed_out for f in everything)
    refused = sum(f.refused for f in everything)
    retried = sum(f.retried for f in everything)
    total = sum(f.submitted for f in everything)
    intact_baseline = sum(b.intact for b in baseline.values())
    count_baseline = sum(b.count for b in baseline.values())
    lines += [
        f"  all {total} requests (warm-up included): lost {lost}, duplicated {duplicated}, corrupted {corrupted}, "
        f"failed/timed out {failed}, refused at intake {refused}, retried {retried}",
        f"  direct baseline replies intact: {intact_baseline}/{count_baseline}",
        "  (pickup above concurrency 4 includes waiting for one of the "
        f"{WORKERS} workers; req/s counts finished requests;",
        f"   concurrency 1 pauses 0-{MAX_PAUSE * 1000:.0f} ms at random before each submit, left out of its s and req/s)",
        "",
        "Resident memory (MiB)                  processes   RSS start  RSS after load  peak RSS   PSS after",
    ]
    driver = result["memory"]
    memory_rows = [
        ("web (daphne)", memory_start["web"], memory_end["web"]),
        ("workers (qcluster process group)", memory_start["workers"], memory_end["workers"]),
        ("bench driver (websocket client)", driver["start"], driver["end"]),
        ("bench parent (with the fake Ollama)", memory_start["parent"], memory_end["parent"]),
    ]
    for name, start, end in memory_rows:
        lines.append(
            f"  {name:<38}{end['processes']:>6}    {mib(start['rss'])}    {mib(end['rss'])}      "
            f"{mib(end['hwm'])}  {mib(end['pss'])}"
        )
    lines.append("  (RSS sums count pages shared between forked workers once per process; PSS shares them out)")

    pickup_all = [v for f in at_one.values() for v in f.pickup]
    first_all = [v for f in at_one.values() for v in f.first_token]
    pickup_median = percentile(pickup_all, 50)
    first_p95 = percentile(first_all, 95)
    checks: dict[str, bool] = {}
    lines += ["", "Targets (concurrency 1, both rates)"]
    if config == "embedded":
        checks["pickup"] = pickup_median is not None and pickup_median <= TARGET_PICKUP_MS
        lines.append(
            f"  pickup median ≤ {TARGET_PICKUP_MS:g} ms (embedded)      {fmt_ms(pickup_median)} ms   "
            f"{verdict(checks['pickup'])}"
        )
    else:
        lines.append(f"  pickup median (target is for embedded)    {fmt_ms(pickup_median)} ms   info")
    checks["first_token"] = first_p95 is not None and first_p95 <= TARGET_FIRST_TOKEN_P95_MS
    checks["events"] = lost == 0 and duplicated == 0 and corrupted == 0 and total > 0
    worst = max((percentile(f.first_token, 95) or 0.0 for f in runs), default=0.0)
    lines += [
        f"  first token → websocket p95 ≤ {TARGET_FIRST_TOKEN_P95_MS:g} ms    {fmt_ms(first_p95)} ms   "
        f"{verdict(checks['first_token'])}   (worst run p95 {worst:.1f} ms)",
        f"  0 lost / 0 duplicated / 0 corrupted events    {lost}/{duplicated}/{corrupted}   {verdict(checks['events'])}",
    ]
    return "\n".join(lines) + "\n", checks


# ====================================================================== parent: orchestration


class Skip(Exception):
    """A configuration that cannot run here; the message says why."""


def production_urls() -> tuple[str, str]:
    """DATABASE_URL and REDIS_URL for the production run, after checking both answer."""
    database_url = os.environ.get("DATABASE_URL", "") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL", "") or DEFAULT_REDIS_URL
    if not database_url.startswith(("postgres", "pgsql")):
        raise Skip(f"DATABASE_URL is not a PostgreSQL URL ({database_url})")
    # The run gets a fresh database of its own on that server (tests.e2e.harness.fresh_postgres_database),
    # so what must answer is the server, through its maintenance database: the one DATABASE_URL names
    # (the test suite's "trollama", say) need not exist.
    server = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    try:
        import psycopg

        with psycopg.connect(server, connect_timeout=3):
            pass
    except Exception as exc:
        raise Skip(f"PostgreSQL is not reachable at {server} ({exc})") from None
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except Exception as exc:
        raise Skip(f"Redis is not reachable at {redis_url} ({exc})") from None
    return database_url, redis_url


@contextlib.contextmanager
def started_system(config: str, fake: Any, data_dir: Path, **env: str) -> Iterator[Any]:
    """Web and workers in ``config`` against ``fake``, with the benchmarks' worker count unless ``env`` says otherwise."""
    from tests.e2e.harness import System, fresh_postgres_database

    with contextlib.ExitStack() as stack:
        database_url = redis_url = ""
        if config == "production":
            server_url, redis_url = production_urls()
            database_url = stack.enter_context(fresh_postgres_database(server_url))
        system = System(
            data_dir,
            ollama_url=fake.url,
            database_url=database_url,
            redis_url=redis_url,
            **{"Q_WORKERS": str(WORKERS), **env},
        )
        try:
            system.start()
        except Exception:
            system.stop()
            raise
        stack.callback(system.stop)
        yield system


def run_driver(system: Any, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.pipeline", "--drive", "--requests", str(args.requests)]
    env = {**system.env, "DJANGO_SETTINGS_MODULE": "trollama.settings", "LOG_LEVEL": "warning"}
    completed = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, timeout=DRIVER_TIMEOUT, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    raise RuntimeError(f"the driver exited with {completed.returncode} and no result:\n{completed.stdout[-3000:]}")


def bench_config(config: str, fake: Any, args: argparse.Namespace) -> tuple[str, dict[str, bool]]:
    plan = make_plan(args.requests)
    fake.reset()
    for rate, tokens_per_second in RATES.items():
        fake.script(
            REPLY,
            match=rf"^bench {rate} ",
            tokens_per_second=tokens_per_second,
            prompt_tokens=PROMPT_TOKENS,
        )
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{config}-"))
    began = time.monotonic()
    try:
        with started_system(config, fake, data_dir) as system:
            setup_seconds = time.monotonic() - began
            memory_start = system_memory(system)
            load_before = os.getloadavg()[0]
            loaded = time.monotonic()
            try:
                result = run_driver(system, args)
            except Exception:
                print(system.logs(), file=sys.stderr)
                raise
            load_seconds = time.monotonic() - loaded
            memory_end = system_memory(system)
            load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return render_report(
        config,
        plan=plan,
        result=result,
        fake=fake,
        memory_start=memory_start,
        memory_end=memory_end,
        setup_seconds=setup_seconds,
        load_seconds=load_seconds,
        load_average=(load_before, load_after),
    )


def save_report(config: str, report: str) -> None:
    with contextlib.suppress(OSError):
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"pipeline-{config}.txt").write_text(report)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("embedded", "production", "both"), default="both")
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"requests at concurrency 1 (instant rate); other runs scale from it (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: --requests {QUICK_REQUESTS}")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)  # the driver subprocess
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drive:
        return driver_main(make_plan(args.requests))

    from tests.fake_ollama import FakeOllama

    configs = ["embedded", "production"] if args.config == "both" else [args.config]
    summary: list[str] = []
    could_not_run = False
    began = time.monotonic()
    with FakeOllama() as fake:
        for config in configs:
            print(f"\n=== {config} ===", file=sys.stderr, flush=True)
            checks: dict[str, bool] = {}
            try:
                report, checks = bench_config(config, fake, args)
                marks = ", ".join(f"{name} {verdict(ok)}" for name, ok in checks.items())
            except Skip as skip:
                report = f"Trollama pipeline benchmark — {CONFIG_TITLES[config]}\n  SKIPPED: {skip}\n"
                marks = "skipped"
            except Exception as exc:
                could_not_run = True
                report = f"Trollama pipeline benchmark — {CONFIG_TITLES[config]}\n  COULD NOT RUN: {exc!r}\n"
                marks = "could not run"
            print(report, flush=True)
            save_report(config, report)
            summary.append(f"  {config:<11} {marks}")
    print("Summary")
    print("\n".join(summary))
    print(f"  total time {time.monotonic() - began:.0f} s")
    return 1 if could_not_run else 0


if __name__ == "__main__":
    raise SystemExit(main())
