"""The shipped held-out public set: traceable rows, disjoint from every training example, read by default."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench import routing as bench_routing
from bench.data import build_heldout
from routing.data import build

DATA = Path(build.__file__).resolve().parent
ROUTES = {"math", "simple_code", "complex_code", "reasoning", "research", "general"}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def heldout() -> list[dict]:
    return read(build_heldout.OUT)


class HeldOutFileTests:
    def test_no_training_example_is_a_held_out_prompt(self):
        training = {
            normalized(row["text"]) for row in read(DATA / "examples.jsonl") + read(DATA / "public_examples.jsonl")
        }
        texts = [normalized(row["text"]) for row in heldout()]
        texts += [normalized(turn) for row in heldout() for turn in row.get("history", [])]

        leaked = sorted(set(texts) & training)

        assert not leaked, leaked[:5]

    def test_every_row_names_its_source_split_licence_and_id_and_a_route(self):
        rows = heldout()
        assert len(rows) > 400
        for row in rows:
            assert row["route"] in ROUTES and row["text"].strip()
            assert row["source"] and row["split"] and row["licence"] and row["id"]
            if row["source"] == "mbpp":
                assert 11 <= int(row["id"]) <= 510  # MBPP's test tasks, never its training ones
            if row.get("history_route"):
                assert row["history_route"] != row["route"]
        assert {row["route"] for row in rows} == ROUTES
        assert sum(1 for row in rows if row.get("history")) >= 30

    def test_training_corpora_and_held_out_corpora_share_no_split(self):
        trained = {(row["source"], row["split"]) for row in read(DATA / "public_examples.jsonl")}
        measured = {(row["source"], row["split"]) for row in heldout()}
        assert not trained & measured


class BuildTests:
    def test_self_instruct_seeds_take_the_hand_label_and_skipped_ones_are_left_out(self):
        tasks = [
            {"id": "seed_task_35", "instruction": "Solve it.", "instances": [{"input": "10X + 5 = 10", "output": ""}]},
            {"id": "seed_task_1", "instruction": "Relation?", "instances": [{"input": "Night : Day", "output": ""}]},
            {"id": "seed_task_8", "instruction": "Write a haiku.", "instances": [{"input": "", "output": ""}]},
        ]

        rows = build_heldout.self_instruct_rows(tasks)

        assert [(row["id"], row["route"], row["text"]) for row in rows] == [
            ("seed_task_35", "math", "Solve it.\n\n10X + 5 = 10"),
            ("seed_task_8", "general", "Write a haiku."),
        ]

    def test_the_primer_questions_come_from_its_tables_without_single_data_structures(self):
        readme = "| Design a web crawler | [Solution](x) |\n| Design a hash map | [S](y) |\n| Question | Ref |\n"
        assert build_heldout.primer_questions(readme) == ["Design a web crawler"]


def test_the_benchmark_reads_the_shipped_held_out_set_by_default():
    assert bench_routing.PUBLIC == build_heldout.OUT and bench_routing.PUBLIC.exists()
