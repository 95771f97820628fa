"""Soak: many requests through real web and worker processes, looking for losses, duplicates and leaks.

    python -m bench.soak [--requests 1000] [--concurrency 16] [--config embedded|production] [--quick]

Starts a real system (Daphne web + a django-q2 ``qcluster``, ``tests.e2e.harness``)
against the fake Ollama server in this process, then a driver subprocess
that submits requests the way the bot does and follows them on web's event
websocket (the pieces of ``bench.pipeline``). Requests go in batches; after
the warm-up and after each batch the driver records the resident memory of
web, of the worker cluster (each process) and of itself.

It reports:

- lost: requests that never finished ``done`` (timed out, failed) plus
  events missing from a request's stream;
- duplicated: a second ``request.done`` or overlapping deltas on the
  websocket, and any request with more than one assistant message stored;
- throughput: answered requests per second over the whole run;
- memory: per process group after the warm-up, after each batch and at the
  end; it should be flat from the end of the first batch on, when every
  worker process has filled its caches (django-q2 recycles a worker process
  after 500 tasks, so worker PIDs may change mid-run).

Nothing asserts; it prints figures and PASS/MISS against the targets
(0 lost, 0 duplicated, web and workers growing under 5% after the first batch), and exits
non-zero only when it could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.pipeline import (
    FINISHED,
    REPLY,
    ROOT,
    Run,
    Tracker,
    check_integrity,
    group_memory,
    mib,
    process_memory,
    progress,
    run_load,
    started_system,
    verdict,
)
from bench.reporting import report_main

RESULT_MARK = "SOAK-RESULT "
DEFAULT_REQUESTS = 1000
QUICK_REQUESTS = 100
DEFAULT_CONCURRENCY = 16
WARMUP = 32
BATCHES = 4
MEMORY_GROWTH_LIMIT = 0.05
DRIVER_TIMEOUT = 1800.0


# ====================================================================== driver (subprocess)


def memory_sample(label: str) -> dict[str, Any]:
    web, workers = int(os.environ["SOAK_WEB_PGID"]), int(os.environ["SOAK_WORKER_PGID"])
    return {
        "label": label,
        "at": time.time(),
        "web": group_memory(web),
        "workers": group_memory(workers),
        "driver": {"processes": 1, **process_memory(os.getpid())},
    }


def _stored_sync(request_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Status and assistant messages stored for each request (each has a thread of its own)."""
    from django.db.models import Count, Q

    from conversations.models import Request

    rows = Request.objects.filter(pk__in=request_ids).annotate(
        answers=Count("thread__messages", filter=Q(thread__messages__role="assistant"))
    )
    return {row.pk: {"status": row.status, "answers": row.answers, "attempts": row.attempts} for row in rows}


async def drive(requests: int, concurrency: int) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    from pipeline.listeners import WebsocketListener

    listener = await WebsocketListener.connect()
    tracker = Tracker()
    reader = asyncio.create_task(tracker.follow(listener))
    await asyncio.wait_for(tracker.synced.wait(), timeout=10)

    progress(f"warm-up: {WARMUP} requests")
    warmup = await run_load(tracker, Run("instant", concurrency, WARMUP), label="warmup")
    memory = [memory_sample("start")]
    runs = []
    batch = max(requests // BATCHES, 1)
    started = time.time()
    remaining, number = requests, 0
    while remaining > 0:
        number += 1
        count = min(batch, remaining)
        progress(f"batch {number}: {count} requests at concurrency {concurrency}")
        runs.append(await run_load(tracker, Run("instant", concurrency, count), label=f"soak{number}"))
        remaining -= count
        memory.append(memory_sample(f"after {requests - remaining}"))
    seconds = time.time() - started

    await asyncio.sleep(1.0)  # late duplicates would arrive after the done event
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await reader
    await listener.close()

    records = [record for run in runs for record in run["requests"]]
    ids = [record["request_id"] for record in records if "request_id" in record]
    stored = await sync_to_async(_stored_sync)(ids)
    lost = duplicated = corrupted = refused = timed_out = failed = extra_answers = retried = 0
    for record in records:
        if "request_id" not in record:
            refused += 1
            continue
        row = stored.get(record["request_id"], {})
        integrity = check_integrity(tracker.log(record["request_id"]), finished_in_db=row.get("status") in FINISHED)
        lost += integrity["lost"]
        duplicated += integrity["duplicated"]
        corrupted += integrity["corrupted"]
        timed_out += int(bool(record.get("timed_out")))
        failed += int(row.get("status") != "done")
        extra_answers += max(row.get("answers", 0) - 1, 0)
        retried += int(row.get("attempts", 1) > 1)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "warmup": len(warmup["requests"]),
        "seconds": seconds,
        "submitted": len(ids),
        "refused": refused,
        "done": sum(1 for row in stored.values() if row["status"] == "done"),
        "not_done": failed,
        "timed_out": timed_out,
        "events_lost": lost,
        "events_duplicated": duplicated,
        "corrupted": corrupted,
        "extra_answers": extra_answers,
        "retried": retried,
        "memory": memory,
    }


def driver_main(requests: int, concurrency: int) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trollama.settings")
    import django

    django.setup()
    result = asyncio.run(drive(requests, concurrency))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


# ====================================================================== parent


def growth(start: dict[str, int], end: dict[str, int], key: str = "pss") -> float:
    return (end[key] - start[key]) / start[key] if start[key] else 0.0


def render(config: str, result: dict[str, Any]) -> tuple[str, bool]:
    lost = result["not_done"] + result["events_lost"] + result["refused"]
    duplicated = result["events_duplicated"] + result["extra_answers"]
    memory = result["memory"]
    start, end = memory[0], memory[-1]
    # Worker processes fill per-process caches (connections, compiled
    # templates, the ollama client) during their first requests, so a leak
    # shows as growth after the first batch, not as that first step.
    steady = memory[1] if len(memory) > 2 else start
    flat = all(abs(growth(steady[group], end[group])) <= MEMORY_GROWTH_LIMIT for group in ("web", "workers"))
    throughput = result["done"] / result["seconds"] if result["seconds"] else 0.0
    lines = [
        f"Trollama soak — {config}: {result['requests']} requests at concurrency {result['concurrency']} "
        f"(after {result['warmup']} warm-up), instant replies from the fake Ollama",
        f"  answered                       {result['done']} of {result['submitted']} submitted "
        f"({result['refused']} refused, {result['timed_out']} timed out, {result['retried']} retried)",
        f"  lost                           {lost}   {verdict(lost == 0)}",
        f"  duplicated                     {duplicated}   {verdict(duplicated == 0)}"
        f"  (events {result['events_duplicated']}, extra stored answers {result['extra_answers']})",
        f"  corrupted answers              {result['corrupted']}",
        f"  throughput                     {throughput:.1f} req/s over {result['seconds']:.1f} s",
        "  memory, PSS MiB (processes)    " + "   ".join(f"{sample['label']:>10}" for sample in memory),
    ]
    for group in ("web", "workers", "driver"):
        cells = "   ".join(f"{mib(sample[group]['pss']):>10}" for sample in memory)
        change, settled = growth(start[group], end[group]), growth(steady[group], end[group])
        lines.append(
            f"    {group:<8} ({end[group]['processes']:>2})             {cells}   {change:+.1%} overall, "
            f"{settled:+.1%} since {steady['label']}"
        )
    lines.append(
        f"  memory flat since {steady['label']} (web, workers within ±{MEMORY_GROWTH_LIMIT:.0%})  {verdict(flat)}"
    )
    return "\n".join(lines) + "\n", lost == 0 and duplicated == 0 and flat


def run(config: str, args: argparse.Namespace) -> str:
    from tests.fake_ollama import FakeOllama

    with FakeOllama() as fake:
        fake.script(REPLY, match=r"^bench instant ", prompt_tokens=40)
        data_dir = Path(tempfile.mkdtemp(prefix=f"bench-soak-{config}-"))
        try:
            with started_system(config, fake, data_dir) as system:
                env = {
                    **system.env,
                    "DJANGO_SETTINGS_MODULE": "trollama.settings",
                    "LOG_LEVEL": "warning",
                    "SOAK_WEB_PGID": str(system.processes["web"].pid),
                    "SOAK_WORKER_PGID": str(system.processes["worker"].pid),
                }
                command = [sys.executable, "-m", "bench.soak", "--drive", "--requests", str(args.requests)]
                command += ["--concurrency", str(args.concurrency)]
                completed = subprocess.run(
                    command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, timeout=DRIVER_TIMEOUT, check=False
                )
                for line in completed.stdout.splitlines():
                    if line.startswith(RESULT_MARK):
                        report, _ = render(config, json.loads(line.removeprefix(RESULT_MARK)))
                        return report
                print(system.logs(), file=sys.stderr)
                raise RuntimeError(f"the driver exited with {completed.returncode} and no result")
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("embedded", "production"), default="embedded")
    parser.add_argument("--requests", type=int, default=None, help=f"default {DEFAULT_REQUESTS}")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: --requests {QUICK_REQUESTS}")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)  # the driver subprocess
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drive:
        return driver_main(args.requests, args.concurrency)
    return report_main(f"Trollama soak — {args.config}", f"soak-{args.config}", lambda: run(args.config, args))


if __name__ == "__main__":
    raise SystemExit(main())
