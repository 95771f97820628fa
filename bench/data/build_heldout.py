"""Build ``routing_public_heldout.jsonl``: public prompts the router is measured on and never fitted on.

    python -m bench.data.build_heldout --gsm8k-test test.jsonl --mbpp mbpp.jsonl --humaneval HumanEval.jsonl.gz \
        --primer README.md --bbh BBH_DIR --self-instruct seed_tasks.jsonl --situatedqa-test temp.test.jsonl [--out FILE]

Seeded and reproducible: the same input files give the same output, line for line. Every line has
``route``, ``text``, ``source``, ``split``, ``licence`` and ``id`` (the corpus's own id); a follow-up also has
``history`` (the earlier user turn, itself a public prompt) and, when it leaves that turn's route,
``history_route``. Only test and evaluation splits are read here, the ones ``routing/data/build.py`` refuses:

- GSM8K test (github.com/openai/grade-school-math ``grade_school_math/data/test.jsonl``, MIT) → ``math``;
- MBPP test, task ids 11 to 510 (google-research ``mbpp/mbpp.jsonl``, CC-BY-4.0) → ``simple_code``;
- HumanEval (github.com/openai/human-eval ``data/HumanEval.jsonl.gz``, MIT), the prompt → ``simple_code``;
- system-design-primer's design questions (github.com/donnemartin/system-design-primer README, CC-BY-4.0)
  → ``complex_code``;
- BIG-Bench Hard logic tasks (github.com/suzgunmirac/BIG-Bench-Hard ``bbh/*.json``, MIT) → ``reasoning``;
- self-instruct's 175 seed tasks (github.com/yizhongw/self-instruct ``data/seed_tasks.jsonl``, Apache-2.0),
  labelled by hand below (``SEED_LABELS``; unlisted ones are ``general``, ``SEED_SKIPPED`` are left out);
- SituatedQA temporal *test* split (github.com/mikejqzhang/SituatedQA ``data/id_data/temp.test.jsonl``;
  questions from Natural Questions, WebQuestions and MS MARCO): questions whose answer depends on when they
  are asked (``is_dependent: yes``) → ``research``, the others → ``general``;
- follow-ups written for this set (``FOLLOW_UPS``) after one of the prompts above.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

SEED = 16
OUT = Path(__file__).resolve().parent / "routing_public_heldout.jsonl"
GSM8K_COUNT = 70
MBPP_COUNT = 45
MBPP_TEST = range(11, 511)
HUMANEVAL_COUNT = 25
BBH_TASKS = {  # task file → prompts drawn
    "logical_deduction_three_objects": 8,
    "logical_deduction_five_objects": 10,
    "logical_deduction_seven_objects": 8,
    "web_of_lies": 8,
    "navigate": 8,
    "formal_fallacies": 8,
}
SITUATED_DEPENDENT = 50  # → research
SITUATED_STATIC = 20  # → general
# One data structure is ``simple_code`` by the routes' descriptions, not a design: those are left out.
PRIMER_SKIPPED = {
    "Design a circular array",
    "Design a hash map",
    "Design a least recently used cache",
    "Add a system design question",
    "Add an object-oriented design question",
}

# self-instruct seed tasks by hand: anything not listed is general (writing, advice, explanation, extraction, chat).
SEED_LABELS = {
    **{f"seed_task_{n}": "math" for n in (25, 35, 45, 58, 83, 109, 110, 136, 144)},
    **{f"seed_task_{n}": "simple_code" for n in (28, 31, 37, 41, 50, 69, 72, 138, 139, 140, 141, 158)},
    **{f"seed_task_{n}": "reasoning" for n in (130, 155)},
    **{f"seed_task_{n}": "research" for n in (142, 143, 174)},
}
# Ambiguous between routes (analogies, "create a math question", subset sums, sorting a given list, ranking
# universities, HTML masks, chess puzzles) or refusals (an address, an SSN): not labelled, not measured.
SEED_SKIPPED = {f"seed_task_{n}" for n in (1, 15, 21, 22, 61, 106, 115, 120, 132, 146, 152, 164)}

# (source, id of the first turn, follow-up text, follow-up's route). The follow-up keeps the first turn's
# route unless its route differs, in which case it records ``history_route``.
FOLLOW_UPS: list[tuple[str, str, str, str]] = [
    ("gsm8k", "0", "and what if she sold them for $3 each instead?", "math"),
    ("gsm8k", "1", "what if it took twice as much white fiber?", "math"),
    ("gsm8k", "2", "now do the same with a 200% increase", "math"),
    ("gsm8k", "3", "can you show that step by step?", "math"),
    ("self-instruct", "seed_task_35", "and if it were 10X + 5 = 25?", "math"),
    ("self-instruct", "seed_task_144", "now solve it by substitution instead", "math"),
    ("mbpp", "11", "now make it work for a list of characters too", "simple_code"),
    ("mbpp", "12", "can you add type hints and a docstring?", "simple_code"),
    ("humaneval", "HumanEval/0", "make it O(n log n)", "simple_code"),
    ("humaneval", "HumanEval/2", "now write pytest unit tests for it", "simple_code"),
    ("self-instruct", "seed_task_72", "do it without using sorted()", "simple_code"),
    ("self-instruct", "seed_task_69", "and in JavaScript?", "simple_code"),
    ("system-design-primer", "Design a web crawler", "how would you shard it across regions?", "complex_code"),
    (
        "system-design-primer",
        "Design Pastebin.com (or Bit.ly)",
        "what changes if we need 10x the write throughput?",
        "complex_code",
    ),
    (
        "system-design-primer",
        "Design an API rate limiter",
        "now make it work across several data centers",
        "complex_code",
    ),
    (
        "system-design-primer",
        "Design a key-value store like Redis",
        "how do we handle a node crashing in the middle of a write?",
        "complex_code",
    ),
    ("system-design-primer", "Design a chat server", "what would the database schema look like?", "complex_code"),
    ("bbh", "navigate #0", "explain your reasoning step by step", "reasoning"),
    ("bbh", "web_of_lies #0", "what if the second person was lying instead?", "reasoning"),
    ("bbh", "logical_deduction_three_objects #0", "and if we added a fourth one, which would be last?", "reasoning"),
    ("self-instruct", "seed_task_155", "is it still sound if 'some' becomes 'all'?", "reasoning"),
    ("self-instruct", "seed_task_23", "can you make it less spicy?", "general"),
    ("self-instruct", "seed_task_8", "make it about winter instead", "general"),
    ("self-instruct", "seed_task_40", "add a day trip to Mount Rainier", "general"),
    ("self-instruct", "seed_task_34", "thanks. what could I do this weekend to take my mind off it?", "general"),
    ("situatedqa", "dependent #0", "and the time before that?", "research"),
    ("situatedqa", "dependent #1", "can you check that against a current source?", "research"),
    # Four that leave the first turn's route.
    ("humaneval", "HumanEval/0", "thanks! now write me a poem about autumn", "general"),
    ("gsm8k", "0", "unrelated: who is the prime minister of the UK right now?", "research"),
    ("system-design-primer", "Design a web crawler", "by the way, can you recommend a good sci-fi novel?", "general"),
    (
        "self-instruct",
        "seed_task_23",
        "ok, different question: write a python function that reverses a string",
        "simple_code",
    ),
]


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _row(route: str, text: str, source: str, split: str, licence: str, id_: str) -> dict:
    return {"route": route, "text": text.strip(), "source": source, "split": split, "licence": licence, "id": id_}


def _sample(items: Sequence, count: int, rng: random.Random) -> list:
    return sorted(rng.sample(range(len(items)), min(count, len(items))))


def gsm8k_rows(rows: Sequence[dict], rng: random.Random) -> list[dict]:
    return [
        _row("math", " ".join(rows[i]["question"].split()), "gsm8k", "test", "MIT", str(i))
        for i in _sample(rows, GSM8K_COUNT, rng)
    ]


def mbpp_rows(rows: Sequence[dict], rng: random.Random) -> list[dict]:
    test = sorted(
        (r for r in rows if int(str(r["task_id"]).rsplit("/", 1)[-1]) in MBPP_TEST),
        key=lambda r: int(str(r["task_id"]).rsplit("/", 1)[-1]),
    )
    return [
        _row(
            "simple_code",
            " ".join(test[i]["text"].split()),
            "mbpp",
            "test",
            "CC-BY-4.0",
            str(test[i]["task_id"]).rsplit("/", 1)[-1],
        )
        for i in _sample(test, MBPP_COUNT, rng)
    ]


def humaneval_rows(rows: Sequence[dict], rng: random.Random) -> list[dict]:
    return [
        _row("simple_code", rows[i]["prompt"], "humaneval", "test", "MIT", rows[i]["task_id"])
        for i in _sample(rows, HUMANEVAL_COUNT, rng)
    ]


def primer_questions(readme: str) -> list[str]:
    """The question column of the README's three tables of design questions, in order."""
    questions = []
    for line in readme.splitlines():
        match = re.match(r"^\|\s*((?:Design|Return) [^|]+?)\s*\|", line)
        if match and match.group(1) not in PRIMER_SKIPPED and match.group(1) not in questions:
            questions.append(match.group(1))
    return questions


def primer_rows(readme: str) -> list[dict]:
    return [
        _row("complex_code", q, "system-design-primer", "questions", "CC-BY-4.0", q) for q in primer_questions(readme)
    ]


def bbh_rows(directory: Path, rng: random.Random) -> list[dict]:
    found = []
    for task, count in BBH_TASKS.items():
        examples = json.loads((directory / f"{task}.json").read_text(encoding="utf-8"))["examples"]
        for i in _sample(examples, count, rng):
            found.append(_row("reasoning", examples[i]["input"], "bbh", "test", "MIT", f"{task} #{i}"))
    return found


def seed_text(task: dict) -> str:
    given = task["instances"][0]["input"].strip()
    return f"{task['instruction'].strip()}\n\n{given}" if given else task["instruction"].strip()


def self_instruct_rows(tasks: Sequence[dict]) -> list[dict]:
    return [
        _row(SEED_LABELS.get(t["id"], "general"), seed_text(t), "self-instruct", "seed", "Apache-2.0", t["id"])
        for t in tasks
        if t["id"] not in SEED_SKIPPED
    ]


def situated_rows(rows: Sequence[dict], rng: random.Random) -> list[dict]:
    dependent = [r for r in rows if r["is_dependent"] == "yes"]
    static = [r for r in rows if r["is_dependent"] == "no"]
    licence = "CC-BY-SA-3.0"  # Natural Questions' licence; SituatedQA's repository names none
    return [
        _row("research", dependent[i]["question"], "situatedqa", "test", licence, str(dependent[i]["id"]))
        for i in _sample(dependent, SITUATED_DEPENDENT, rng)
    ] + [
        _row("general", static[i]["question"], "situatedqa", "test", licence, str(static[i]["id"]))
        for i in _sample(static, SITUATED_STATIC, rng)
    ]


def follow_up_rows(first_turns: dict[tuple[str, str], dict]) -> list[dict]:
    found = []
    for index, (source, first_id, text, route) in enumerate(FOLLOW_UPS):
        first = first_turns[(source, first_id)]
        row = {
            "route": route,
            "text": text,
            "history": [first["text"]],
            "source": "follow-up",
            "split": "written",
            "licence": "same as Trollama",
            "id": f"follow-up #{index} after {source} {first_id}",
        }
        if first["route"] != route:
            row["history_route"] = first["route"]
        found.append(row)
    return found


def build(
    *,
    gsm8k_test: Path,
    mbpp: Path,
    humaneval: Path,
    primer: Path,
    bbh: Path,
    self_instruct: Path,
    situatedqa_test: Path,
) -> list[dict]:
    rng = random.Random(SEED)
    gsm8k = _read_jsonl(gsm8k_test)
    humaneval_all = _read_jsonl(humaneval)
    readme = primer.read_text(encoding="utf-8")
    seeds = _read_jsonl(self_instruct)
    situated = _read_jsonl(situatedqa_test)
    rows = (
        gsm8k_rows(gsm8k, rng)
        + mbpp_rows(_read_jsonl(mbpp), rng)
        + humaneval_rows(humaneval_all, rng)
        + primer_rows(readme)
        + bbh_rows(bbh, rng)
        + self_instruct_rows(seeds)
        + situated_rows(situated, rng)
    )
    # First turns of the follow-ups, looked up in the corpora whether or not the sample drew them.
    first_turns: dict[tuple[str, str], dict] = {(r["source"], r["id"]): r for r in rows}
    for i in (0, 1, 2, 3):
        first_turns[("gsm8k", str(i))] = _row("math", " ".join(gsm8k[i]["question"].split()), "gsm8k", "", "", "")
    for row in _read_jsonl(mbpp):
        task = str(row["task_id"]).rsplit("/", 1)[-1]
        if task in ("11", "12"):
            first_turns[("mbpp", task)] = _row("simple_code", " ".join(row["text"].split()), "mbpp", "", "", "")
    for row in humaneval_all:
        first_turns[("humaneval", row["task_id"])] = _row("simple_code", row["prompt"], "humaneval", "", "", "")
    for task in ("navigate", "web_of_lies", "logical_deduction_three_objects"):
        first = json.loads((bbh / f"{task}.json").read_text(encoding="utf-8"))["examples"][0]
        first_turns[("bbh", f"{task} #0")] = _row("reasoning", first["input"], "bbh", "", "", "")
    dependent = [r for r in situated if r["is_dependent"] == "yes"]
    for i in (0, 1):
        first_turns[("situatedqa", f"dependent #{i}")] = _row("research", dependent[i]["question"], "", "", "", "")
    return rows + follow_up_rows(first_turns)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data.build_heldout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k-test", type=Path, required=True, help="GSM8K's test.jsonl")
    parser.add_argument("--mbpp", type=Path, required=True, help="MBPP's mbpp.jsonl (only tasks 11 to 510 are read)")
    parser.add_argument("--humaneval", type=Path, required=True, help="HumanEval.jsonl or HumanEval.jsonl.gz")
    parser.add_argument("--primer", type=Path, required=True, help="system-design-primer's README.md")
    parser.add_argument("--bbh", type=Path, required=True, help="BIG-Bench Hard's bbh/ directory")
    parser.add_argument("--self-instruct", type=Path, required=True, help="self-instruct's seed_tasks.jsonl")
    parser.add_argument("--situatedqa-test", type=Path, required=True, help="SituatedQA's id_data/temp.test.jsonl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = build(
        gsm8k_test=args.gsm8k_test,
        mbpp=args.mbpp,
        humaneval=args.humaneval,
        primer=args.primer,
        bbh=args.bbh,
        self_instruct=args.self_instruct,
        situatedqa_test=args.situatedqa_test,
    )
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} prompts to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
