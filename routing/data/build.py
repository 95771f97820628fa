"""Build ``public_examples.jsonl``: route examples drawn from public corpora's training splits.

    python -m routing.data.build --gsm8k-train GSM8K_TRAIN.jsonl --mbpp MBPP.jsonl \
        --situatedqa-train SITUATEDQA_TEMP_TRAIN.jsonl --gpteacher-roleplay ROLEPLAY.json [--out FILE]

Seeded and reproducible: the same input files give the same output, line for line.

- GSM8K (github.com/openai/grade-school-math, MIT), ``grade_school_math/data/train.jsonl``:
  ``GSM8K_PER_ROUTE`` questions drawn at random (seed ``SEED``) from the train split → ``math``.
- MBPP (github.com/google-research/google-research ``mbpp/mbpp.jsonl``, CC-BY-4.0): every task of the
  train split (task ids 601 to 974) and the validation split (511 to 600) → ``simple_code``. The test split
  (11 to 510) and the prompt split (1 to 10) are never read, whatever the input file holds.
- SituatedQA (github.com/mikejqzhang/SituatedQA ``data/id_data/temp.train.jsonl``; its questions are Natural
  Questions', WebQuestions' and MS MARCO's): questions of the *train* split labelled by its annotators as
  depending on when they are asked ("who has the most gold medals at the olympics", ``is_dependent: yes``):
  ``SITUATED_RESEARCH`` of them → ``research``; ``SITUATED_GENERAL`` of those that do not ("who made the bomb that
  was dropped on hiroshima") → ``general``, which teaches the fast path what is *not* research. Both drawn at
  random (seed ``SEED``); the dev and test splits are never read (the test split is measured on).
- GPTeacher Roleplay (github.com/teknium1/GPTeacher, MIT), ``Roleplay/roleplay-simple-deduped-roleplay-instruct.json``:
  ``ROLEPLAY_GENERAL`` role-play requests ("You are a pirate captain…", "As a historian, describe…") drawn at random
  (seed ``SEED``) → ``general``. An instruction-tuning set: all of it is training data, it has no test split.

Nothing from a test or evaluation-only set is read: GSM8K's ``test.jsonl`` and MBPP's test split are
what outside checks measure on. Each line records ``source``, ``split``, ``licence`` and the corpus's
own ``id``, so any example can be traced back.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

SEED = 16
GSM8K_PER_ROUTE = 600
OUT = Path(__file__).resolve().parent / "public_examples.jsonl"
MBPP_TRAIN = range(601, 975)
MBPP_VALIDATION = range(511, 601)
SITUATED_RESEARCH = 300
SITUATED_GENERAL = 150
# Natural Questions' licence, which its questions carry; SituatedQA's repository names no licence of its own.
SITUATED_LICENCE = "CC-BY-SA-3.0"
ROLEPLAY_GENERAL = 250


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gsm8k_examples(rows: Sequence[dict], *, count: int = GSM8K_PER_ROUTE, seed: int = SEED) -> list[dict]:
    """``count`` GSM8K train questions; ``id`` is the line number in train.jsonl (0-based)."""
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(count, len(rows))))
    return [
        {
            "route": "math",
            "text": " ".join(rows[i]["question"].split()),
            "source": "gsm8k",
            "split": "train",
            "licence": "MIT",
            "id": str(i),
        }
        for i in picked
    ]


def _mbpp_id(row: dict) -> int:
    return int(str(row["task_id"]).rsplit("/", 1)[-1])


def mbpp_examples(rows: Iterable[dict]) -> list[dict]:
    """MBPP train and validation tasks by task id (the split is told by the id, as MBPP defines it)."""
    found = []
    for row in sorted(rows, key=_mbpp_id):
        task = _mbpp_id(row)
        split = "train" if task in MBPP_TRAIN else "validation" if task in MBPP_VALIDATION else None
        if split is None:
            continue  # test and prompt tasks: never an example
        found.append(
            {
                "route": "simple_code",
                "text": " ".join(row["text"].split()),
                "source": "mbpp",
                "split": split,
                "licence": "CC-BY-4.0",
                "id": str(task),
            }
        )
    return found


def situated_examples(
    rows: Sequence[dict], *, research: int = SITUATED_RESEARCH, general: int = SITUATED_GENERAL, seed: int = SEED
) -> list[dict]:
    """SituatedQA train questions; ``id`` is the question's own id (a Natural Questions id for most)."""
    rng = random.Random(seed)
    found = []
    for label, route, count in (("yes", "research", research), ("no", "general", general)):
        mine = [row for row in rows if row["is_dependent"] == label]
        for i in sorted(rng.sample(range(len(mine)), min(count, len(mine)))):
            found.append(
                {
                    "route": route,
                    "text": " ".join(mine[i]["question"].split()),
                    "source": "situatedqa",
                    "split": "train",
                    "licence": SITUATED_LICENCE,
                    "id": str(mine[i]["id"]),
                }
            )
    return found


def roleplay_examples(rows: Sequence[dict], *, count: int = ROLEPLAY_GENERAL, seed: int = SEED) -> list[dict]:
    """GPTeacher role-play requests; ``id`` is the request's index in the file (0-based).

    The text is the instruction, then its input (the scene it sets) after a blank line when it has one,
    as a member would paste both. The model's response is never read.
    """
    found = []
    for i in sorted(random.Random(seed).sample(range(len(rows)), min(count, len(rows)))):
        scene = (rows[i].get("input") or "").strip()
        text = " ".join(rows[i]["instruction"].split()) + (f"\n\n{scene}" if scene else "")
        found.append(
            {
                "route": "general",
                "text": text,
                "source": "gpteacher-roleplay",
                "split": "train",
                "licence": "MIT",
                "id": str(i),
            }
        )
    return found


def build(*, gsm8k_train: Path, mbpp: Path, situatedqa_train: Path, gpteacher_roleplay: Path) -> list[dict]:
    lines = (
        gsm8k_examples(_read_jsonl(gsm8k_train))
        + mbpp_examples(_read_jsonl(mbpp))
        + situated_examples(_read_jsonl(situatedqa_train))
        + roleplay_examples(json.loads(gpteacher_roleplay.read_text(encoding="utf-8")))
    )
    seen: set[tuple[str, str]] = set()
    unique = []
    for line in lines:
        key = (line["route"], line["text"])
        if key not in seen:
            seen.add(key)
            unique.append(line)
    return unique


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routing.data.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k-train", type=Path, required=True, help="GSM8K's train.jsonl (never test.jsonl)")
    parser.add_argument("--mbpp", type=Path, required=True, help="MBPP's mbpp.jsonl (only train/validation are read)")
    parser.add_argument(
        "--situatedqa-train", type=Path, required=True, help="SituatedQA's id_data/temp.train.jsonl (never test)"
    )
    parser.add_argument(
        "--gpteacher-roleplay",
        type=Path,
        required=True,
        help="GPTeacher's roleplay-simple-deduped-roleplay-instruct.json",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if "test" in args.gsm8k_train.name:
        parser.error("GSM8K's test split is for measuring only")
    if "train" not in args.situatedqa_train.name:
        parser.error("only SituatedQA's train split is training data (dev and test are for measuring)")
    lines = build(
        gsm8k_train=args.gsm8k_train,
        mbpp=args.mbpp,
        situatedqa_train=args.situatedqa_train,
        gpteacher_roleplay=args.gpteacher_roleplay,
    )
    args.out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {len(lines)} examples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
