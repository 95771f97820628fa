"""Crash recovery when attempts run out, maintenance across processes, and command exit statuses.

Resuming an answer after a crash, a stop or a web restart is in
``test_delivery.py``. Here the workers are killed while an answer streams on
its last attempt, so the reaper must fail it with a reason. Maintenance is
switched by one process (``manage.py maintenance``) and seen by others
(``manage.py chat``, workers).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.harness import System, read_unbuffered, running_system

pytestmark = pytest.mark.e2e

SLOW = "slow " * 80  # 4 s at 20 tokens/s: long enough to be killed mid-stream

SWEEP_NOW = "from pipeline.tasks import requeue_abandoned_requests\nresult = requeue_abandoned_requests()"


def kill_workers_mid_stream(system: System, fake) -> int:
    """Start a chat whose answer streams slowly, SIGKILL the workers mid-answer; returns the request id."""
    chat = system.spawn_chat("tell me a long story", "--user", "erin")
    assert chat.stdout is not None
    assert read_unbuffered(chat.stdout, 10) == b"slow slow "  # the answer is streaming through web to the terminal
    system.kill("worker")
    chat.kill()
    chat.wait(timeout=10)
    request_id = system.latest_request_id()
    assert request_id is not None
    return request_id


def status_line(chat, prefix: str, limit: int = 10) -> str:
    """The first line ``manage.py chat`` wrote to stderr that starts with ``prefix``."""
    for _ in range(limit):
        line = chat.stderr.readline().decode()
        if line.startswith(prefix) or not line:
            return line
    return ""


def recovery_system(server, tmp_path_factory, *, max_attempts: int, **env: str):
    """One worker process, so requests run in queue order."""
    with running_system(
        tmp_path_factory.mktemp(f"recovery-{max_attempts}"),
        ollama_url=server.url,
        MAX_ATTEMPTS=str(max_attempts),
        Q_WORKERS="1",
        **env,
    ) as system:
        yield system


@pytest.fixture(scope="module")
def system(_fake_ollama_server, tmp_path_factory):
    yield from recovery_system(_fake_ollama_server, tmp_path_factory, max_attempts=2)


class MaintenanceAcrossProcessesTests:
    def test_soft_holds_then_off_releases_in_order(self, system, fake):
        fake.script("Answered after maintenance.")
        system.manage("maintenance", "soft", "--message", "Swapping the GPU.")
        chats = []
        try:
            for text, user in (("first in line", "fay"), ("second in line", "gus")):
                chats.append(system.spawn_chat(text, "--user", user))
                assert status_line(chats[-1], "Held: ").startswith("Held: Swapping the GPU.")
            time.sleep(1.0)
            assert not [r for r in fake.requests if r.path == "/api/chat"]  # nothing ran while held
            assert "Held:             2" in system.manage("queue").stdout

            switched = system.manage("maintenance", "off")
        except BaseException:
            system.manage("maintenance", "off")
            for chat in chats:
                chat.kill()
            raise

        assert "Maintenance is off" in switched.stdout
        for chat in chats:
            out, err = chat.communicate(timeout=60)
            assert chat.returncode == 0, err.decode() + system.logs()
            assert out.decode().startswith("Answered after maintenance.")
        asked = [r.body["messages"][-1]["content"] for r in fake.requests if r.path == "/api/chat"]
        assert asked == ["first in line", "second in line"]

    def test_hard_refuses_with_the_message_in_another_process(self, system, fake):
        system.manage("maintenance", "hard", "--message", "Down until 18:00 UTC.")
        try:
            result = system.chat("anyone there?")
        finally:
            system.manage("maintenance", "off")

        assert result.returncode == 2
        assert "Down until 18:00 UTC." in result.stderr
        assert not [r for r in fake.requests if r.path == "/api/chat"]


# Only so that this test waits 5 s rather than 21 for the lease to run out; the
# default lease is what test_delivery.py runs with.
SHORT_LEASE = "4"


@pytest.fixture(scope="module")
def one_attempt_system(_fake_ollama_server, tmp_path_factory):
    yield from recovery_system(_fake_ollama_server, tmp_path_factory, max_attempts=1, REQUEST_LEASE=SHORT_LEASE)


class WorkerCrashOutOfAttemptsTests:
    def test_the_sweeper_fails_it_with_a_reason_and_no_message(self, one_attempt_system, fake):
        system = one_attempt_system
        fake.script(SLOW, tokens_per_second=20)
        request_id = kill_workers_mid_stream(system, fake)
        time.sleep(int(SHORT_LEASE) + 1)  # the lease runs out, and no cluster is left to notice

        counts = system.query(SWEEP_NOW)  # what the reaper (or the minute's schedule) runs

        assert counts == {"requeued": 0, "settled": 1, "released": 0}
        final = system.request_state(request_id)
        assert final["status"] == "failed"
        assert "stopped unexpectedly" in final["error"]
        assert final["assistant_messages"] == []


class CommandExitStatusTests:
    """Exit statuses as a shell script sees them, from real ``manage.py`` processes."""

    def test_bad_input_exits_non_zero_with_the_reason_and_no_traceback(self, system, fake):
        unknown = system.manage("retry", "999999", check=False)
        not_a_number = system.manage("retry", "abc", check=False)
        bad_action = system.manage("maintenance", "sideways", check=False)

        assert (unknown.returncode, not_a_number.returncode, bad_action.returncode) == (1, 2, 2)
        assert "There is no request 999999." in unknown.stderr
        assert "invalid int value: 'abc'" in not_a_number.stderr
        assert "invalid choice: 'sideways'" in bad_action.stderr
        assert all("Traceback" not in r.stderr for r in (unknown, not_a_number, bad_action))

    def test_queue_and_doctor_report_on_the_running_system(self, system, fake):
        queue = system.manage("queue", "--json")
        doctor = system.manage("doctor", check=False)

        assert queue.returncode == 0
        assert '"maintenance": "off"' in queue.stdout
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "model gpt-oss:20b is on" in doctor.stdout
