"""Building a request's context in a long thread.

    python -m bench.context [--turns 1000] [--runs 200] [--quick] [--database-url postgres://...]

A thread of ``--turns`` messages (users and the assistant taking turns, a
few hundred characters each, every tenth user turn with a text file of
4,000 characters, half the turns with Ollama's stored counts) ends in a new
request. The context for it is built ``--runs`` times by:

- ``build_context``: reads the thread newest first in batches and stops once
  the window is full;
- the baseline, the naive way measured in the same run: load the whole
  thread with its authors and files, render every turn, then keep the newest
  that fit.

on two routes: 8,192 tokens (most of the thread is dropped) and 131,072
tokens (all of it fits, the worst case for reading). Both must give the same
messages. Figures are wall-clock on this machine; target ≤ 50 ms p95 for 1,000
turns. The database is a fresh SQLite file (embedded default), or a fresh
database on the PostgreSQL server ``--database-url`` names, dropped after.
Nothing asserts: it prints the figures, PASS/MISS against the target, and
writes them to ``bench/results/context.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "context.txt"
TARGET_P95_MS = 50.0
WINDOWS = (8192, 131072)


@contextlib.contextmanager
def database(url: str) -> Iterator[None]:
    """Point Django at a fresh database, migrated, before it is set up."""
    with tempfile.TemporaryDirectory(prefix="bench-context-") as data_dir:
        os.environ["DATA_DIR"] = data_dir
        os.environ["DJANGO_SETTINGS_MODULE"] = "trollama.settings"
        os.environ.pop("REDIS_URL", None)
        with contextlib.ExitStack() as stack:
            if url:
                sys.path.insert(0, str(ROOT))
                from tests.e2e.harness import fresh_postgres_database

                os.environ["DATABASE_URL"] = stack.enter_context(fresh_postgres_database(url))
            else:
                os.environ["DATABASE_URL"] = f"sqlite:///{data_dir}/bench.sqlite3"
            import django
            from django.core.management import call_command

            django.setup()
            call_command("migrate", verbosity=0)
            try:
                yield
            finally:
                from django.db import connections

                connections.close_all()


def make_thread(turns: int) -> Any:
    """A thread of ``turns`` messages by two people and the assistant, ending in a queued request."""
    from datetime import timedelta

    from django.utils import timezone

    from conversations.models import Attachment, ChatUser, Message, Request, Thread

    alice = ChatUser.objects.create(platform="discord", external_id="1", username="alice", display_name="Alice")
    bob = ChatUser.objects.create(platform="discord", external_id="2", username="bob", display_name="Bob")
    thread = Thread.objects.create(platform="discord", external_id="100", title="bench", owner=alice)
    start = timezone.now() - timedelta(days=1)
    messages = []
    for n in range(turns):
        user_turn = n % 2 == 0
        messages.append(
            Message(
                thread=thread,
                author=(alice if n % 4 == 0 else bob) if user_turn else None,
                role="user" if user_turn else "assistant",
                content=f"turn {n}: " + ("lorem ipsum dolor sit amet " * 12),
                token_count=90 if n % 2 == 1 else None,
                created_at=start + timedelta(seconds=n),
            )
        )
    Message.objects.bulk_create(messages)
    stored = list(thread.messages.filter(role="user").order_by("created_at"))
    Attachment.objects.bulk_create(
        Attachment(message=m, kind="text", filename=f"notes-{i}.md", size=4000, extracted_text="x" * 4000)
        for i, m in enumerate(stored[::10])
    )
    question = Message.objects.create(
        thread=thread, author=alice, role="user", content="so what did we decide?", created_at=timezone.now()
    )
    return Request.objects.create(user=alice, thread=thread, message=question)


def naive_context(*, request: Any, route: Any, system_prompt: str) -> list[dict[str, Any]]:
    """The baseline: everything loaded and rendered, then fitted from the newest."""
    from conversations.models import Message
    from pipeline.context import Turn, context_budget, estimate_tokens, has_several_people, turn_of

    history = list(
        Message.objects.filter(thread=request.thread, created_at__lt=request.message.created_at)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "pk")
    )
    label = has_several_people(request.thread)
    rendered = [(turn, turn.render(label=label)) for turn in map(turn_of, history)]
    budget = context_budget(route.context_size) - estimate_tokens(system_prompt) - 4
    current = Turn(role="user", content=request.message.content, author="Alice").render(label=label)
    budget -= estimate_tokens(current) + 4
    kept: list[dict[str, Any]] = []
    for turn, text in reversed(rendered):
        cost = turn.cost(text)
        if cost > budget:
            break
        budget -= cost
        kept.append({"role": turn.role, "content": text})
    kept.reverse()
    return [{"role": "system", "content": system_prompt}, *kept, {"role": "user", "content": current}]


def timings(build: Callable[[], Any], runs: int) -> list[float]:
    build()  # warm caches and connections
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        build()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 runs: a smoke test while developing")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to create a fresh database on")
    args = parser.parse_args(argv)
    runs = 30 if args.quick else args.runs

    with database(args.database_url):
        from django.db import connection

        from pipeline.context import build_context
        from routing.models import Route

        request = make_thread(args.turns)
        system_prompt = "You are Trollama, a helpful assistant. " * 10
        lines = [
            f"Context build, a thread of {args.turns} turns, {runs} runs each, on {connection.vendor}",
            f"{'window':>8}  {'kept':>5}  {'dropped':>7}  {'p50 ms':>7}  {'p95 ms':>7}  "
            f"{'baseline p50':>12}  {'baseline p95':>12}  target p95 ≤ {TARGET_P95_MS:g} ms",
        ]
        for window in WINDOWS:
            route = Route(slug=f"bench-{window}", name="bench", model="gpt-oss:20b", context_size=window)
            context = build_context(request=request, route=route, system_prompt=system_prompt)
            baseline = naive_context(request=request, route=route, system_prompt=system_prompt)
            same = [m["content"] for m in context.messages] == [m["content"] for m in baseline]
            ours = timings(partial(build_context, request=request, route=route, system_prompt=system_prompt), runs)
            naive = timings(partial(naive_context, request=request, route=route, system_prompt=system_prompt), runs)
            p95 = percentile(ours, 0.95)
            verdict = "PASS" if p95 <= TARGET_P95_MS else "MISS"
            lines.append(
                f"{window:>8}  {len(context.messages) - 2:>5}  {context.dropped_turns:>7}  "
                f"{statistics.median(ours):>7.1f}  {p95:>7.1f}  {statistics.median(naive):>12.1f}  "
                f"{percentile(naive, 0.95):>12.1f}  {verdict}{'' if same else '  (differs from the baseline!)'}"
            )
    report = "\n".join(lines)
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
