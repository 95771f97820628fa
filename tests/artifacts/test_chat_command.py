"""manage.py chat: each file's name and link, and --save-artifacts, against the fake Ollama server."""

from __future__ import annotations

import pytest

from artifacts.links import public_url
from artifacts.models import Artifact
from conversations.models import Message
from tests.pipeline.test_chat_command import chat

SCRIPT = "import sys\n\n\tdef main():\n    return [{'a': (1, 2)}]\n"
NOTES = "# Notes\n\n```bash\nrun it\n```\n"
ANSWER = f'Here:\n\n```python title="scraper.py"\n{SCRIPT}```\n\n````markdown title="NOTES.md"\n{NOTES}````\n'


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChatArtifactsTests:
    def test_it_prints_each_files_name_and_link_after_the_answer(self, fake_ollama):
        fake_ollama.script(ANSWER, prompt_tokens=5, completion_tokens=7)

        code, out, err = chat("write a scraper, save it as scraper.py", "--inline")

        assert code == 0, err
        scraper, notes = Artifact.objects.order_by("pk")
        assert out == (
            ANSWER
            + "\n[5 prompt + 7 completion tokens · route general · model gpt-oss:20b]\n"
            + f"[file scraper.py · {len(SCRIPT)} bytes · {public_url(scraper)}]\n"
            + f"[file NOTES.md · {len(NOTES)} bytes · {public_url(notes)}]\n"
        )

    def test_save_artifacts_writes_the_files_byte_for_byte_into_the_directory(self, fake_ollama, tmp_path):
        fake_ollama.script(ANSWER)
        target = tmp_path / "out" / "files"

        code, _, err = chat("save it as scraper.py", "--inline", "--save-artifacts", str(target))

        assert code == 0, err
        assert sorted(path.name for path in target.iterdir()) == ["NOTES.md", "scraper.py"]
        assert (target / "scraper.py").read_bytes() == SCRIPT.encode()
        assert (target / "NOTES.md").read_bytes() == NOTES.encode()
        assert f"Saved scraper.py to {target / 'scraper.py'}" in err

    def test_an_existing_file_is_never_overwritten(self, fake_ollama, tmp_path):
        fake_ollama.script(ANSWER)
        (tmp_path / "scraper.py").write_text("mine")

        code, _, err = chat("save it as scraper.py", "--inline", "--save-artifacts", str(tmp_path))

        assert code == 0, err
        assert (tmp_path / "scraper.py").read_text() == "mine"
        assert (tmp_path / "scraper-2.py").read_bytes() == SCRIPT.encode()

    def test_a_file_in_place_of_the_directory_is_refused_before_anything_is_stored(self, fake_ollama, tmp_path):
        blocker = tmp_path / "taken"
        blocker.write_text("x")

        code, _, err = chat("save it as a.py", "--inline", "--save-artifacts", str(blocker))

        assert code == 2
        assert "is a file, not a directory" in err
        assert not Message.objects.exists()

    def test_notes_about_files_left_out_go_to_stderr(self, fake_ollama, settings):
        settings.ARTIFACT_MAX_BYTES = 20
        fake_ollama.script(ANSWER)

        code, out, err = chat("save it as scraper.py", "--inline")

        assert code == 0, err
        assert "[file" not in out
        assert f"scraper.py is {len(SCRIPT)} bytes, over the 20 bytes limit for a file" in err
        assert "NOTES.md is 28 bytes" in err
