"""What a reply chain's branch costs at intake, beside a plain follow-up.

    python -m bench.branches [--turns 100,1000] [--runs 30] [--database-url postgres://...]

A thread of ``--turns`` messages (``bench.context.make_thread``: two people and
the assistant, every tenth user turn with a 4,000-character file) is held in
one Discord channel. Each run, inside a transaction rolled back afterwards so
every run sees the same database, submits one Discord message through
``bots.services.submit_discord_message`` with the default settings:

- the baseline, measured in the same run: a follow-up in the thread's own
  channel (the intake every message pays);
- a branch: a reply to the middle of the thread, answered in a new channel,
  which copies the history up to that point (``conversations.branches``).

Figures are wall-clock on this machine. Target: a branch of a 1,000-turn
thread within 500 ms p95 (the user is waiting for a placeholder). Nothing
asserts: it prints the figures and PASS/MISS, and writes them to
``bench/results/branches.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.context import database, make_thread, percentile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "branches.txt"
TARGET_P95_MS = 500.0


class Rollback(Exception):
    """Raised to undo one run's writes."""


def timed_submission(*, channel_id: int, branch_from: int | None, message_id: int) -> float:
    """Milliseconds for one Discord submission, its writes rolled back."""
    import time

    from django.db import transaction

    from bots import services

    author = services.DiscordAuthor(id=1, username="alice", display_name="Alice")
    started = time.perf_counter()
    try:
        with transaction.atomic():
            services.submit_discord_message(
                author=author,
                channel_id=channel_id,
                channel_title="bench",
                content="and what if we had chosen the other way?",
                message_id=message_id,
                branch_from=branch_from,
            )
            elapsed = (time.perf_counter() - started) * 1000
            raise Rollback
    except Rollback:
        return elapsed


def measure(turns: int, runs: int) -> dict[str, Any]:
    from django.db import transaction

    from conversations.models import ChatUser, Message, Request, Thread

    with transaction.atomic():
        request = make_thread(turns)
        Request.objects.filter(pk=request.pk).update(status=Request.Status.DONE)  # the thread's last turn is answered
        middle = Message.objects.filter(thread=request.thread).order_by("created_at", "pk")[turns // 2]
    follow_up = [timed_submission(channel_id=100, branch_from=None, message_id=10**9 + n) for n in range(runs)]
    branch = [timed_submission(channel_id=200, branch_from=middle.pk, message_id=2 * 10**9 + n) for n in range(runs)]
    copied = Message.objects.filter(thread=request.thread).filter(created_at__lte=middle.created_at).count()
    Thread.objects.all().delete()
    ChatUser.objects.all().delete()
    return {"turns": turns, "copied": copied, "follow_up": follow_up, "branch": branch}


def report(results: list[dict[str, Any]]) -> str:
    lines = ["Branching a reply chain at intake (ms, wall clock, default settings)", ""]
    lines.append(f"{'turns':>6} {'copied':>7} {'follow-up p50':>14} {'p95':>7} {'branch p50':>11} {'p95':>7}  target")
    for result in results:
        follow_up, branch = result["follow_up"], result["branch"]
        p95 = percentile(branch, 0.95)
        verdict = ("PASS" if p95 <= TARGET_P95_MS else "MISS") if result["turns"] >= 1000 else "-"
        lines.append(
            f"{result['turns']:>6} {result['copied']:>7} {statistics.median(follow_up):>14.1f} "
            f"{percentile(follow_up, 0.95):>7.1f} {statistics.median(branch):>11.1f} {p95:>7.1f}  {verdict}"
        )
    lines += ["", f"Target: a branch of a 1,000-turn thread within {TARGET_P95_MS:.0f} ms p95."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", default="100,1000", help="thread lengths, comma-separated")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    with database(args.database_url):
        text = report([measure(int(turns), args.runs) for turns in args.turns.split(",")])
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
