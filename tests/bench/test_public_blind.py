"""The shipped blind public set: labelled by the README's rule, disjoint from every training example."""

from __future__ import annotations

import json
from pathlib import Path

from bench import routing as bench_routing
from bench.data import build_blind
from routing.data import build

DATA = Path(build.__file__).resolve().parent
ROUTES = {"math", "simple_code", "complex_code", "reasoning", "research", "general"}


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def training() -> list[dict]:
    return read(DATA / "examples.jsonl") + read(DATA / "public_examples.jsonl")


def blind() -> list[dict]:
    return read(build_blind.OUT)


class BlindFileTests:
    def test_no_training_line_nearly_repeats_a_blind_prompt_or_first_turn(self):
        trained = [build_blind.words(row["text"]) for row in training()]
        texts = [row["text"] for row in blind()] + [turn for row in blind() for turn in row.get("history", [])]

        repeated = [text for text in texts if build_blind.nearly_repeats(text, trained)]

        assert not repeated, repeated[:5]

    def test_a_reworded_prompt_counts_as_a_near_repeat_and_another_topic_does_not(self):
        trained = [build_blind.words("Explain the basics of quantum computing.")]

        assert build_blind.nearly_repeats("Can you explain the basics of quantum computing?", trained)
        assert not build_blind.nearly_repeats("Can you explain the basics of climate change?", trained)

    def test_no_corpus_split_is_both_trained_and_measured_on(self):
        trained = {(row["source"], row["split"]) for row in read(DATA / "public_examples.jsonl")}
        trained |= {(row.get("source", ""), row.get("split", "")) for row in read(DATA / "examples.jsonl")}
        measured = {(row["source"], row["split"]) for row in blind()}

        assert not trained & measured
        assert measured == {("mt-bench", "question"), ("vicuna-bench", "question")}

    def test_every_row_names_its_source_split_licence_id_and_a_route(self):
        rows = blind()
        assert len(rows) == 205
        for row in rows:
            assert row["route"] in ROUTES and row["text"].strip()
            assert row["source"] and row["split"] and row["licence"] == "Apache-2.0" and row["id"]
            if row.get("history_route"):
                assert row["history_route"] != row["route"]
        assert sum(1 for row in rows if row.get("history")) == 67

    def test_the_blind_and_held_out_sets_share_no_prompt(self):
        from bench.data import build_heldout

        heldout = {build_blind.normalized(row["text"]) for row in read(build_heldout.OUT)}
        assert not heldout & {build_blind.normalized(row["text"]) for row in blind()}


class BuildTests:
    def test_categories_take_their_route_and_second_turns_follow_the_first(self):
        questions = [
            {"question_id": 111, "category": "math", "turns": ["Area of the triangle?", "And the circle?"]},
            {"question_id": 126, "category": "coding", "turns": ["Median in O(n).", "Better?"]},
            {"question_id": 121, "category": "coding", "turns": ["Top-5 words.", "Can you parallelize it?"]},
        ]

        rows, left_out = build_blind.question_rows("mt-bench", questions)

        assert [(row["id"], row["route"], row.get("history")) for row in rows] == [
            ("111", "math", None),
            ("111 turn 2", "math", ["Area of the triangle?"]),
            ("121", "simple_code", None),
        ]
        assert left_out == ["mt-bench 126 (coding): between two routes", "mt-bench 121 turn 2: between two routes"]

    def test_a_fermi_estimate_is_left_out_and_a_near_repeat_of_training_too(self, tmp_path):
        mt = tmp_path / "mt.jsonl"
        mt.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["Write a poem!"]}) + "\n")
        vicuna = tmp_path / "vicuna.jsonl"
        vicuna.write_text(
            json.dumps({"question_id": 41, "category": "fermi", "turns": ["How many blinks?"]})
            + "\n"
            + json.dumps({"question_id": 1, "category": "generic", "turns": ["Improve my time management?"]})
            + "\n"
        )
        train = tmp_path / "train.jsonl"
        train.write_text(json.dumps({"route": "general", "text": "write a  POEM"}) + "\n")

        rows, left_out = build_blind.build(mt_bench=mt, vicuna=vicuna, training=[train])

        assert [(row["source"], row["id"]) for row in rows] == [("vicuna-bench", "1")]
        assert "vicuna-bench 41 (fermi): between two routes" in left_out
        assert any(line.startswith("mt-bench 81: a training line nearly repeats") for line in left_out)


def test_the_benchmark_reads_the_shipped_blind_set_by_default():
    assert bench_routing.BLIND == build_blind.OUT and bench_routing.BLIND.exists()
