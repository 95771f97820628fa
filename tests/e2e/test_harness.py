"""The harness itself: a killed test run leaves none of the processes it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.e2e.harness import PYTHON, ROOT

STARTER = textwrap.dedent(
    """
    import subprocess, sys
    from tests.e2e.harness import die_with_the_tests
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True,
        preexec_fn=die_with_the_tests,
    )
    print(child.pid, flush=True)
    child.wait()
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended, only its parent (init) has not reaped it yet
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_a_process_in_a_session_of_its_own_ends_when_the_test_process_that_started_it_is_killed():
    starter = subprocess.Popen([PYTHON, "-c", STARTER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    child = int(starter.stdout.readline())
    assert alive(child)

    starter.send_signal(signal.SIGKILL)  # no cleanup runs: as when pytest itself is killed
    starter.wait()

    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
