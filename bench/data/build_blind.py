"""Build ``routing_public_blind.jsonl``: MT-Bench and Vicuna bench prompts, labelled by a rule fixed in advance.

    python -m bench.data.build_blind --mt-bench mt_bench/question.jsonl --vicuna vicuna_bench/question.jsonl [--out FILE]

Both files come from github.com/lm-sys/FastChat ``fastchat/llm_judge/data/`` (Apache-2.0). The labelling rule is
``bench/data/README.md``'s "Labelling rule", written before the router was run on these prompts; this module only
encodes it: a route per category (``CATEGORY_ROUTES``), prompts between two routes left out (``SKIPPED``,
``SKIPPED_SECOND_TURNS``), duplicates across the two files dropped, and any prompt a training line nearly repeats
(lower-cased, punctuation and spacing folded) left out and printed. Deterministic: the same inputs give the same
file, line for line. Lines have the held-out set's format: ``route``, ``text``, ``source``, ``split``, ``licence``,
``id``, and for a follow-up ``history`` (the first turn) and, when it leaves that turn's route, ``history_route``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parent / "routing_public_blind.jsonl"
TRAINING = Path(__file__).resolve().parent.parent.parent / "routing" / "data"
LICENCE = "Apache-2.0"
FASTCHAT_COMMIT = "0e6d3e4beaab66f4d3f93db72541a4abab8af28d"

# (source, category) → route; a category missing here is left out whole (Vicuna's fermi estimates).
CATEGORY_ROUTES = {
    **{("mt-bench", c): "general" for c in ("writing", "roleplay", "extraction", "stem", "humanities")},
    ("mt-bench", "math"): "math",
    ("mt-bench", "reasoning"): "reasoning",
    ("mt-bench", "coding"): "simple_code",
    **{
        ("vicuna-bench", c): "general"
        for c in ("generic", "knowledge", "roleplay", "common-sense", "counterfactual", "writing")
    },
    ("vicuna-bench", "math"): "math",
    ("vicuna-bench", "coding"): "simple_code",
}
# Between two routes (the README's table says which and why): the question and its second turn are left out.
SKIPPED = {
    ("vicuna-bench", 3),
    ("vicuna-bench", 39),
    ("vicuna-bench", 40),
    *{("mt-bench", n) for n in (97, 99, 126, 129, 139)},
}
# Second turns between two routes; their first turns stay.
SKIPPED_SECOND_TURNS = {("mt-bench", n) for n in (103, 121, 130, 134, 143, 147, 148)}
# Second turns that clearly leave the first turn's route: (source, question id) → route. None does by the rule.
SECOND_TURN_ROUTES: dict[tuple[str, int], str] = {}


def normalized(text: str) -> str:
    """The comparison ``tests/bench/test_public_heldout.py`` makes: lower-cased, punctuation and spacing folded."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Two prompts are near-repeats when this share of all their words (normalized) is common to both:
# "Can you explain the basics of quantum computing?" and a training line "Explain the basics of
# quantum computing." share 0.75; "... of climate change?" shares 0.6 with the first.
NEAR_REPEAT = 0.7


def words(text: str) -> frozenset[str]:
    return frozenset(normalized(text).split())


def training_words(paths: Iterable[Path]) -> list[frozenset[str]]:
    return [words(row["text"]) for path in paths for row in _read_jsonl(path)]


def nearly_repeats(text: str, trained: Iterable[frozenset[str]]) -> bool:
    mine = words(text)
    return any(len(mine & other) >= NEAR_REPEAT * len(mine | other) for other in trained)


def question_rows(source: str, questions: Sequence[dict]) -> tuple[list[dict], list[str]]:
    """The rows a corpus's questions give by the rule, and the ids left out (with why) for the caller to print."""
    rows, left_out = [], []
    for question in questions:
        qid = int(question["question_id"])
        route = CATEGORY_ROUTES.get((source, question["category"]))
        if route is None or (source, qid) in SKIPPED:
            left_out.append(f"{source} {qid} ({question['category']}): between two routes")
            continue
        first = question["turns"][0].strip()
        rows.append(
            {"route": route, "text": first, "source": source, "split": "question", "licence": LICENCE, "id": str(qid)}
        )
        if len(question["turns"]) < 2:
            continue
        if (source, qid) in SKIPPED_SECOND_TURNS:
            left_out.append(f"{source} {qid} turn 2: between two routes")
            continue
        follow_route = SECOND_TURN_ROUTES.get((source, qid), route)
        follow = {
            "route": follow_route,
            "text": question["turns"][1].strip(),
            "source": source,
            "split": "question",
            "licence": LICENCE,
            "id": f"{qid} turn 2",
            "history": [first],
        }
        if follow_route != route:
            follow["history_route"] = route
        rows.append(follow)
    return rows, left_out


def build(*, mt_bench: Path, vicuna: Path, training: Iterable[Path]) -> tuple[list[dict], list[str]]:
    """The blind set's rows, and what was left out (between routes, duplicates, near-repeats of training lines)."""
    mt_rows, left_out = question_rows("mt-bench", _read_jsonl(mt_bench))
    vicuna_rows, vicuna_left = question_rows("vicuna-bench", _read_jsonl(vicuna))
    left_out += vicuna_left
    seen = {normalized(row["text"]) for row in mt_rows}
    rows = list(mt_rows)
    for row in vicuna_rows:
        if normalized(row["text"]) in seen:
            left_out.append(f"vicuna-bench {row['id']}: the same prompt as an MT-Bench first turn")
            continue
        seen.add(normalized(row["text"]))
        rows.append(row)
    trained = training_words(training)
    kept = []
    for row in rows:
        repeated = [t for t in [row["text"], *row.get("history", [])] if nearly_repeats(t, trained)]
        if repeated:
            left_out.append(f"{row['source']} {row['id']}: a training line nearly repeats {repeated[0][:60]!r}")
            continue
        kept.append(row)
    # A follow-up whose first turn was left out as a near-repeat went with it above, via its history.
    return kept, left_out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data.build_blind", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mt-bench", type=Path, required=True, help="FastChat's mt_bench/question.jsonl")
    parser.add_argument("--vicuna", type=Path, required=True, help="FastChat's vicuna_bench/question.jsonl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows, left_out = build(
        mt_bench=args.mt_bench,
        vicuna=args.vicuna,
        training=[TRAINING / "examples.jsonl", TRAINING / "public_examples.jsonl"],
    )
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    for line in left_out:
        print(f"left out: {line}")
    print(f"wrote {len(rows)} prompts to {args.out} ({sum(1 for r in rows if r.get('history'))} follow-ups)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
