"""End to end: real Daphne, real django-q2 workers, manage.py chat, the fake Ollama server."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.e2e.harness import PYTHON, ROOT, read_unbuffered, running_system

pytestmark = pytest.mark.e2e

REPLY = "Sure:\n\n```python\nfor i in range(3):\n    print(i)  # {[()]}\n```\n\tDone.\n"


@pytest.fixture(scope="module")
def system(_fake_ollama_server, tmp_path_factory):
    with running_system(tmp_path_factory.mktemp("e2e"), ollama_url=_fake_ollama_server.url) as system:
        yield system


class EndToEndTests:
    def test_health_sees_web_workers_and_ollama(self, system, fake):
        response = system.health()

        assert response.status_code == 200, response.text
        assert response.json()["checks"]["broker"]["workers"] >= 1

    def test_chat_streams_an_answer_through_the_queue_and_the_websocket(self, system, fake):
        fake.script(REPLY, tokens_per_second=50, prompt_tokens=21, completion_tokens=43)

        result = system.chat("show me a loop", "--user", "carol")

        assert result.returncode == 0, result.stderr + system.logs()
        assert result.stdout == REPLY + "\n[21 prompt + 43 completion tokens · route general · model gpt-oss:20b]\n"
        assert "Queued (position 1)" in result.stderr

    def test_a_follow_up_in_a_named_thread_sees_the_earlier_turn(self, system, fake):
        fake.script("Your number is noted.", times=1)
        first = system.chat("remember 7", "--user", "dave")
        thread = first.stderr.split("--thread ", 1)[1].split()[0]

        second = system.chat("what was it?", "--user", "dave", "--thread", thread)

        assert second.returncode == 0, second.stderr
        contents = [m["content"] for m in fake.chats[-1].body["messages"] if m["role"] != "system"]
        assert contents == ["remember 7", "Your number is noted.", "what was it?"]

    def test_ctrl_c_cancels_the_request_and_ollama_sees_the_hang_up(self, system, fake):
        fake.script("slow " * 500, tokens_per_second=20)
        process = subprocess.Popen(
            [PYTHON, "manage.py", "chat", "tell me a long story"],
            cwd=ROOT,
            env=system.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        assert read_unbuffered(process.stdout, 10) == b"slow slow "  # the answer is streaming

        process.send_signal(signal.SIGINT)
        interrupted_at = time.time()
        _, stderr = process.communicate(timeout=20)

        assert process.returncode == 130, stderr.decode()
        assert b"Cancelled." in stderr
        hangup = fake.wait_for_hangup(timeout=5)
        assert hangup is not None
        assert hangup.at - interrupted_at < 2.0

    def test_a_refusal_exits_non_zero_with_the_reason(self, system, fake):
        result = system.chat("hi", "--route", "nonexistent")

        assert result.returncode == 2
        assert "no enabled route called 'nonexistent'" in result.stderr
