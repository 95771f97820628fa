"""Start the real processes (web under Daphne, django-q2 workers) for end-to-end runs.

Used by the end-to-end tests and by the benchmarks in ``bench/``. Each system
gets its own data directory, its own namespace on a shared Redis and, on
PostgreSQL, its own freshly created database, so it never touches the test
database or another run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
REQUEST_STATE = """
from conversations.models import Message, Request
request = Request.objects.select_related("thread").get(pk={pk})
result = {{
    "status": request.status,
    "attempts": request.attempts,
    "error": request.error,
    "assistant_messages": list(
        Message.objects.filter(thread=request.thread, role="assistant").values_list("content", flat=True)
    ),
}}
"""


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_the_tests() -> None:
    """In a started process, before it runs: ask Linux for SIGTERM when the process that started it dies.

    A system's processes run in sessions of their own (so a test can signal one
    process group), which also means nothing stops them when pytest is killed
    instead of finishing: an interrupted run once left web servers and workers
    running beside CI for two hours. Elsewhere than Linux this does nothing.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _read_some(stream: Any, most: int, *, deadline: float, got: bytes) -> bytes:
    """Up to ``most`` bytes from a pipe, unbuffered, once it has some; fails if none come by ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([stream], [], [], left)[0]:
        raise AssertionError(f"nothing more came in time; got {got!r}")
    return os.read(stream.fileno(), most)


def read_unbuffered(stream: Any, size: int, *, timeout: float = 120.0) -> bytes:
    """The first ``size`` bytes from a pipe, read without Python's buffering.

    A buffered ``read(n)`` takes more than ``n`` bytes from the pipe, and
    ``communicate()`` later reads the pipe itself, so that text would be lost.
    Fails after ``timeout`` seconds without them: a process that never writes
    (its request never ran) must fail the test, not hang it.
    """
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size:
        chunk = _read_some(stream, size - len(data), deadline=deadline, got=data)
        if not chunk:
            break
        data += chunk
    return data


def read_until(stream: Any, wanted: bytes, *, timeout: float) -> bytes:
    """What a pipe gives until ``wanted`` appears in it (unbuffered, so ``communicate()`` later gets the rest)."""
    data = b""
    deadline = time.monotonic() + timeout
    while wanted not in data:
        chunk = _read_some(stream, 4096, deadline=deadline, got=data)
        assert chunk, f"the pipe closed before {wanted!r}; got {data!r}"
        data += chunk
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fresh_postgres_database(database_url: str) -> Iterator[str]:
    """A new empty database on the server DATABASE_URL points at, dropped afterwards."""
    import psycopg

    parts = urlsplit(database_url)
    name = f"trollama_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class System:
    """Web and workers as separate OS processes, configured like a real deployment."""

    def __init__(
        self, data_dir: Path, *, ollama_url: str, database_url: str = "", redis_url: str = "", **env: str
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.web_url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
        self.env = {
            **base,
            "DATA_DIR": str(data_dir),
            "WEB_URL": self.web_url,
            "OLLAMA_HOST": ollama_url,
            "INSTANCE_NAME": f"e2e-{uuid.uuid4().hex[:8]}",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ADMIN_PASSWORD": "e2e-password",
            # /health shows its details (workers, hosts) only to staff and to this token.
            "METRICS_TOKEN": "e2e-metrics-token",
            "HEALTH_CACHE_SECONDS": "0.5",  # readiness polls /health; a longer cache only slows start-up
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            # The tests script one answer per request; the router's classifier would take it.
            "ROUTER_CLASSIFIER": "false",
            **env,
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def manage(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, name: str, command: Sequence[str]) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 -- kept open for the process's lifetime; a restart appends
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_the_tests,  # only a prctl call: safe between fork and exec
        )
        self.processes[name] = process
        return process

    def start(self, *, workers: bool = True, timeout: float = 60) -> System:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.manage(
            "bootstrap", "--no-dotenv"
        )  # configured through the environment; the checkout's .env stays as it is
        self.start_web()
        if workers:
            self.start_workers()
        self.wait_until_ready(workers=workers, timeout=timeout)
        return self

    def start_web(self) -> None:
        self.popen(
            "web", [PYTHON, "-m", "trollama.web", "-b", "127.0.0.1", "-p", str(self.port), "trollama.asgi:application"]
        )

    def start_workers(self) -> None:
        self.popen("worker", [PYTHON, "manage.py", "qcluster"])

    def health(self, *, timeout: float = 5) -> httpx.Response:
        """``GET /health`` with the metrics token, so the answer carries every check's details."""
        headers = {"Authorization": f"Bearer {self.env['METRICS_TOKEN']}"}
        return httpx.get(f"{self.web_url}/health", headers=headers, timeout=timeout)

    def wait_until_ready(self, *, workers: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)}")
            try:
                report = self.health(timeout=2).json()
                checks = report["checks"]
                if (
                    checks["database"]["ok"]
                    and checks["channel_layer"]["ok"]
                    and (checks["broker"]["ok"] or not workers)
                ):
                    return
                last = str(report)
            except (httpx.HTTPError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"the system did not become ready: {last}\n{self.logs()}")

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.processes)

    def chat(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.manage("chat", *args, timeout=timeout, check=False)

    def query(self, code: str, timeout: float = 60) -> object:
        """Run Python in a Django shell of this system; ``code`` sets ``result``, returned as JSON."""
        script = f"import json\n{code}\nprint('RESULT ' + json.dumps(result, default=str))"
        output = self.manage("shell", "-c", script, timeout=timeout).stdout
        line = next(line for line in output.splitlines() if line.startswith("RESULT "))
        return json.loads(line.removeprefix("RESULT "))

    def spawn_chat(self, *args: str) -> subprocess.Popen[bytes]:
        """``manage.py chat`` running in the background, its output piped."""
        return subprocess.Popen(
            [PYTHON, "manage.py", "chat", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def request_state(self, request_id: int) -> dict[str, Any]:
        """A request's status, attempts and error, and the assistant messages stored in its thread."""
        return self.query(REQUEST_STATE.format(pk=int(request_id)))  # type: ignore[return-value]

    def latest_request_id(self) -> int | None:
        return self.query(  # type: ignore[return-value]
            "from conversations.models import Request\n"
            "result = Request.objects.order_by('-pk').values_list('pk', flat=True).first()"
        )

    def make_sweeper_due(self) -> None:
        """Make the sweeper schedule due now, so the cluster's scheduler (every 30 s) runs it next time."""
        self.query(
            "from django.utils import timezone\nfrom django_q.models import Schedule\n"
            "result = Schedule.objects.filter(func='pipeline.tasks.requeue_abandoned_requests')"
            ".update(next_run=timezone.now())"
        )

    def wait_for_state(self, request_id: int, status: str, *, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.request_state(request_id)
            if state["status"] == status:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {request_id} is {state['status']}, not {status}\n{self.logs()}")
            time.sleep(0.5)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        process.wait(timeout=10)

    def stop(self) -> None:
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill(name)

    def __enter__(self) -> System:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_system(data_dir: Path, *, ollama_url: str, **env: str) -> Iterator[System]:
    """A started system in the configuration this process runs under (DATABASE_URL / REDIS_URL)."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = settings.REDIS_URL  # under pytest-xdist, this worker's own Redis database
    with contextlib.ExitStack() as stack:
        if database_url.startswith(("postgres", "pgsql")):
            database_url = stack.enter_context(fresh_postgres_database(database_url))
        system = System(data_dir, ollama_url=ollama_url, database_url=database_url, redis_url=redis_url, **env)
        with system:
            yield system
