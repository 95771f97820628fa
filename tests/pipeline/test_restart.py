"""Memory survives a full restart: every process stopped and started again, the upload itself expired."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.harness import running_system

pytestmark = pytest.mark.e2e


class RestartTests:
    def test_a_follow_up_after_a_full_restart_sees_the_earlier_turns_and_the_files_text(self, fake, tmp_path):
        notes = tmp_path / "launch.md"
        notes.write_text("# Launch\nThe launch code is 7431.\n")
        fake.script("Noted the launch plan.", times=1)

        with running_system(tmp_path / "system", ollama_url=fake.url) as system:
            first = system.chat("keep this file in mind", "--user", "erin", "--file", str(notes))
            assert first.returncode == 0, first.stderr + system.logs()
            thread = first.stderr.split("--thread ", 1)[1].split()[0]

            system.stop()  # web and workers gone; only the database and files remain
            shutil.rmtree(tmp_path / "system" / "media" / "uploads")  # the upload expired meanwhile
            system.start()

            fake.script("The code is 7431.", times=1)
            second = system.chat("what is the launch code?", "--user", "erin", "--thread", thread)

        assert second.returncode == 0, second.stderr
        assert second.stdout.startswith("The code is 7431.")
        sent = [m["content"] for m in fake.chats[-1].body["messages"] if m["role"] != "system"]
        assert sent[0].startswith("keep this file in mind\n\n[File: launch.md]\n# Launch\nThe launch code is 7431.")
        assert sent[1:] == ["Noted the launch plan.", "what is the launch code?"]
