"""The delivery contract through real processes, with the settings a fresh install has.

A worker killed with SIGKILL, the whole cluster stopped with SIGTERM or
killed, web killed and restarted: each time the answer the user waits for
arrives once, complete, in the terminal that asked for it.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.harness import System, read_unbuffered, read_until, running_system

pytestmark = pytest.mark.e2e

ANSWER = "The whole story, told once.\n```python\ndef f():\n\treturn {'a': [1, (2, 3)]}\n```\n"
SLOW = "".join(f"word{i} " for i in range(160))  # 8 s at 20 tokens/s
# 20 s at 20 tokens/s: an attempt that is still streaming when the test breaks it, however loaded the machine.
BROKEN = "".join(f"word{i} " for i in range(400))


@pytest.fixture(scope="module")
def system(_fake_ollama_server, tmp_path_factory):
    with running_system(tmp_path_factory.mktemp("delivery"), ollama_url=_fake_ollama_server.url) as system:
        yield system


@pytest.fixture(autouse=True)
def processes_restored(system: System):
    """Start again whatever a test stopped and, failing, left down: the module's next test would otherwise
    wait for an answer from a cluster that is not there."""
    yield
    down = [name for name in ("web", "worker") if system.processes[name].poll() is not None]
    if "web" in down:
        system.start_web()
    if "worker" in down:
        system.start_workers()
    if down:
        system.wait_until_ready(workers=True, timeout=60)


def start_slow_chat(system: System, fake, text: str, *, then: str = ANSWER):
    """A chat whose first attempt streams slowly (and whose next attempt answers ``then``), once text flows.

    Returns the chat, its request's id and worker (read in one query, while the first attempt still
    streams: on a loaded machine each query is a Django start of a few seconds), and the words read.
    """
    fake.script(then, match=f"^{text}$")
    fake.script(BROKEN, match=f"^{text}$", tokens_per_second=20, times=1)
    chat = system.spawn_chat(text, "--user", "erin")
    assert read_unbuffered(chat.stdout, 6) == b"word0 "
    latest = system.query(
        "from conversations.models import Request\n"
        "result = list(Request.objects.order_by('-pk').values_list('pk', 'worker').first())"
    )
    assert isinstance(latest, list)
    request_id, worker = latest
    return chat, request_id, worker, b"word0 "


def left_in_group(pgid: int) -> list[int]:
    """Processes still alive in a process group (zombies waiting to be reaped do not count)."""
    import psutil

    deadline = time.monotonic() + 5  # SIGKILLed processes take a moment to go
    while True:
        left = []
        for process in psutil.process_iter(["status"]):
            try:
                if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                    left.append(process.pid)
            except (OSError, psutil.Error):
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def finish_chat(chat, first: bytes) -> tuple[str, str]:
    out, err = chat.communicate(timeout=120)
    return (first + out).decode(), err.decode()


class WorkerKilledTests:
    def test_a_worker_killed_mid_answer_is_resumed_by_the_cluster_and_answered_once(self, system, fake):
        chat, request_id, worker, first = start_slow_chat(system, fake, "killed worker")
        assert worker  # host:cluster pid/worker pid

        os.kill(int(worker.rsplit("/", 1)[1]), signal.SIGKILL)

        final = system.wait_for_state(request_id, "done", timeout=120)
        out, err = finish_chat(chat, first)
        assert chat.returncode == 0, err + system.logs()
        assert final["assistant_messages"] == [ANSWER]
        assert final["attempts"] == 2
        assert out.count(ANSWER) == 1  # the broken attempt's words, then the whole answer once
        assert "[The answer broke off; starting it again.]" in err
        assert "Traceback" not in err

    def test_a_cluster_killed_mid_answer_is_resumed_by_the_next_one(self, system, fake):
        chat, request_id, _, first = start_slow_chat(system, fake, "killed cluster")

        system.kill("worker")
        system.start_workers()

        final = system.wait_for_state(request_id, "done", timeout=120)
        out, err = finish_chat(chat, first)
        assert chat.returncode == 0, err + system.logs()
        assert final["assistant_messages"] == [ANSWER] and final["attempts"] == 2
        assert out.count(ANSWER) == 1


class GracefulStopTests:
    def test_sigterm_hands_the_answer_back_and_the_cluster_exits_by_itself(self, system, fake):
        chat, request_id, _, first = start_slow_chat(system, fake, "stopped cluster")
        cluster = system.processes["worker"]

        os.kill(cluster.pid, signal.SIGTERM)  # the main process only, as `kill PID` or systemd's main PID does

        assert cluster.wait(timeout=30) == 0  # exited on its own, so no process manager needed SIGKILL
        handed = system.query(
            f"from conversations.models import Request\nr = Request.objects.get(pk={request_id})\n"
            "result = [r.status, r.attempts, r.handbacks, r.partial_content[:6]]"
        )
        assert handed == ["queued", 1, 1, "word0 "]
        assert "Cluster" in system.log("worker") and "stopped" in system.log("worker")
        assert "Traceback" not in system.log("worker")

        system.start_workers()
        final = system.wait_for_state(request_id, "done", timeout=60)
        out, err = finish_chat(chat, first)
        assert chat.returncode == 0, err + system.logs()
        assert final["assistant_messages"] == [ANSWER]
        assert out.count(ANSWER) == 1

    @pytest.mark.parametrize(
        "signum",
        [
            pytest.param(signal.SIGTERM, id="SIGTERM"),  # what honcho and systemd's default KillMode send
            pytest.param(signal.SIGINT, id="SIGINT"),  # Ctrl-C on `manage.py qcluster` in a terminal
        ],
    )
    def test_a_signal_to_the_whole_process_group_loses_nothing_either(self, system, fake, signum):
        chat, request_id, _, first = start_slow_chat(system, fake, f"stopped group {signum}")
        cluster = system.processes["worker"]

        os.killpg(cluster.pid, signum)

        assert cluster.wait(timeout=30) == 0
        assert left_in_group(cluster.pid) == []  # no orphaned worker keeps a process manager waiting
        assert system.request_state(request_id)["status"] == "queued"
        system.start_workers()
        final = system.wait_for_state(request_id, "done", timeout=60)
        out, err = finish_chat(chat, first)
        assert chat.returncode == 0, err + system.logs()
        assert final["assistant_messages"] == [ANSWER] and out.count(ANSWER) == 1


class NoWorkerTests:
    def test_a_question_asked_while_no_cluster_runs_says_so_and_is_answered_once_one_starts(self, system, fake):
        fake.script(ANSWER, match="^nobody to answer$")
        cluster = system.processes["worker"]
        os.kill(cluster.pid, signal.SIGTERM)
        assert cluster.wait(timeout=30) == 0

        chat = system.spawn_chat("nobody to answer", "--user", "erin")
        told = read_until(chat.stderr, b"Is `python manage.py qcluster` running?", timeout=60)
        system.start_workers()

        out, err = chat.communicate(timeout=120)
        assert chat.returncode == 0, (told + err).decode() + system.logs()
        assert out.decode().startswith(ANSWER)
        assert b"No worker has picked this up yet." in told


class WebRestartTests:
    def test_the_terminal_survives_web_being_killed_and_prints_the_whole_answer_once(self, system, fake):
        text = "web restarts"
        fake.script(SLOW, match=f"^{text}$", tokens_per_second=20)
        chat = system.spawn_chat(text, "--user", "erin")
        first = read_unbuffered(chat.stdout, 6)

        system.kill("web")
        system.start_web()

        out, err = finish_chat(chat, first)
        assert chat.returncode == 0, err + system.logs()
        assert out.startswith(SLOW + "\n\n[")  # every word once, in order, nothing spliced
        assert "Lost the connection to web; reconnecting" in err
        assert "Traceback" not in err
        system.wait_until_ready(workers=True, timeout=60)
