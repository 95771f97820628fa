"""Route examples from public corpora: built from training splits only, each traceable, loaded by a migration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.data import build
from routing.models import RouteExample

DATA = Path(build.__file__).resolve().parent
BENCH = DATA.parent.parent / "bench" / "routing_messages.jsonl"


def shipped() -> list[dict[str, str]]:
    return [json.loads(line) for line in build.OUT.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


class BuildTests:
    def test_mbpp_test_and_prompt_tasks_are_never_examples_and_the_split_comes_from_the_task_id(self, tmp_path):
        tasks = [
            {"task_id": task, "text": f"Write a function number {task}."} for task in (3, 11, 510, 511, 600, 601, 974)
        ]
        # A mislabelled split field in a copy of the file must not let a test task through.
        tasks[1]["split"] = "train"

        found = build.mbpp_examples(tasks)

        assert [(row["id"], row["split"]) for row in found] == [
            ("511", "validation"),
            ("600", "validation"),
            ("601", "train"),
            ("974", "train"),
        ]
        assert {row["route"] for row in found} == {"simple_code"}
        assert {row["licence"] for row in found} == {"CC-BY-4.0"}

    def test_the_gsm8k_draw_is_seeded_so_the_same_file_gives_the_same_examples(self, tmp_path):
        rows = [{"question": f"Question  {i}\nhow many?", "answer": "#### 1"} for i in range(50)]

        first = build.gsm8k_examples(rows, count=10)
        again = build.gsm8k_examples(rows, count=10)

        assert first == again and len(first) == 10
        assert all(row["split"] == "train" and row["source"] == "gsm8k" for row in first)
        assert first[0]["text"] == f"Question {first[0]['id']} how many?"  # whitespace folded, id is the line

    def test_situatedqa_time_dependent_questions_are_research_and_the_others_general(self):
        rows = [
            {"question": f"who holds record  {i}", "is_dependent": "yes" if i % 3 else "no", "id": 1000 + i}
            for i in range(30)
        ]

        found = build.situated_examples(rows, research=5, general=3)

        assert found == build.situated_examples(rows, research=5, general=3)  # seeded
        assert [row["route"] for row in found] == ["research"] * 5 + ["general"] * 3
        by_id = {str(row["id"]): row for row in rows}
        for row in found:
            assert (by_id[row["id"]]["is_dependent"] == "yes") == (row["route"] == "research")
            assert (row["source"], row["split"], row["licence"]) == ("situatedqa", "train", "CC-BY-SA-3.0")
        assert found[0]["text"] == " ".join(by_id[found[0]["id"]]["question"].split())

    def test_gpteacher_role_play_requests_are_general_with_their_scene_and_never_the_response(self):
        rows = [
            {"instruction": f"You are  pirate {i}.\nSpeak.", "input": "A storm." if i % 2 else "", "response": "Arr!"}
            for i in range(20)
        ]

        found = build.roleplay_examples(rows, count=6)

        assert found == build.roleplay_examples(rows, count=6)  # seeded
        assert len(found) == 6 and {row["route"] for row in found} == {"general"}
        for row in found:
            assert (row["source"], row["split"], row["licence"]) == ("gpteacher-roleplay", "train", "MIT")
            i = int(row["id"])
            scene = "\n\nA storm." if i % 2 else ""
            assert row["text"] == f"You are pirate {i}. Speak.{scene}"
            assert "Arr" not in row["text"]

    def test_the_command_refuses_test_splits_and_writes_the_file(self, tmp_path, capsys):
        train = write_jsonl(tmp_path / "train.jsonl", [{"question": "2 apples and 3 more?", "answer": "5"}])
        mbpp = write_jsonl(tmp_path / "mbpp.jsonl", [{"task_id": 700, "text": "Write a function to add."}])
        situated = write_jsonl(
            tmp_path / "temp.train.jsonl", [{"question": "who is the mayor of paris", "is_dependent": "yes", "id": 7}]
        )
        situated_test = write_jsonl(tmp_path / "temp.test.jsonl", [])
        roleplay = tmp_path / "roleplay.json"
        roleplay.write_text(json.dumps([{"instruction": "You are a knight. Greet me.", "input": ""}]), encoding="utf-8")
        out = tmp_path / "out.jsonl"
        common = ["--mbpp", str(mbpp), "--gpteacher-roleplay", str(roleplay), "--out", str(out)]

        assert build.main(["--gsm8k-train", str(train), "--situatedqa-train", str(situated), *common]) == 0

        assert [json.loads(line)["route"] for line in out.read_text().splitlines()] == [
            "math",
            "simple_code",
            "research",
            "general",
        ]
        with pytest.raises(SystemExit):
            build.main(["--gsm8k-train", str(tmp_path / "test.jsonl"), "--situatedqa-train", str(situated), *common])
        with pytest.raises(SystemExit):
            build.main(["--gsm8k-train", str(train), "--situatedqa-train", str(situated_test), *common])


class ShippedFileTests:
    def test_every_line_names_its_corpus_training_split_licence_and_id(self):
        rows = shipped()
        assert len(rows) > 1000
        allowed = {
            ("gsm8k", "train", "MIT"),
            ("mbpp", "train", "CC-BY-4.0"),
            ("mbpp", "validation", "CC-BY-4.0"),
            ("situatedqa", "train", "CC-BY-SA-3.0"),
            ("gpteacher-roleplay", "train", "MIT"),
        }
        for row in rows:
            assert (row["source"], row["split"], row["licence"]) in allowed
            assert row["id"] and row["text"].strip()
            if row["source"] == "mbpp":
                assert 511 <= int(row["id"]) <= 974  # never MBPP's test tasks (11 to 510)

    def test_no_public_example_is_a_benchmark_message(self):
        bench = {json.loads(line)["text"] for line in BENCH.read_text().splitlines() if line.strip()}
        assert not bench & {row["text"] for row in shipped()}


@pytest.mark.django_db
def test_the_migration_loaded_them_with_their_provenance():
    row = shipped()[0]
    stored = RouteExample.objects.get(route__slug=row["route"], text=row["text"])
    assert stored.source == f"{row['source']} {row['split']} #{row['id']}"
    assert stored.licence == row["licence"]
    assert RouteExample.objects.filter(source__startswith="mbpp validation #").count() == 90
    situated = [row for row in shipped() if row["source"] == "situatedqa"]
    stored = RouteExample.objects.filter(source__startswith="situatedqa train #")
    assert stored.count() == len(situated) == build.SITUATED_RESEARCH + build.SITUATED_GENERAL
    assert stored.filter(route__slug="research").count() == build.SITUATED_RESEARCH
    roleplay = RouteExample.objects.filter(source__startswith="gpteacher-roleplay train #")
    assert roleplay.count() == build.ROLEPLAY_GENERAL
    assert set(roleplay.values_list("route__slug", flat=True)) == {"general"}
