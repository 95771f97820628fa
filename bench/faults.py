"""Faults through real processes, with the settings a fresh install has: is every answer still delivered once?

    python -m bench.faults [--config embedded|production] [--requests N] [--seed N] [--quick]

Starts a real system (web under Daphne, a django-q2 ``qcluster`` with its
default four workers, and ``manage.py runbot`` against the Discord stand-in)
with the fake Ollama server in this process, and changes none of the
timeouts, leases or intervals a user gets.

**The delivery suite** (``run_suite``, also the test ``tests/e2e/test_faults.py``)
asks N questions (default 30), half from terminals (``manage.py chat``,
following web's websocket) and half as Discord mentions (the bot, following
the same websocket), each answered with its own text at 20 tokens/s. While
answers stream it breaks something at random moments, twice each:

- ``kill -9 worker``: SIGKILL to the worker process of a streaming answer (its
  cluster survives and must notice through the lease);
- ``SIGTERM cluster``: SIGTERM to the cluster, which must hand its answers
  back and exit by itself; it is then started again, as a process manager would;
- ``kill -9 web``: SIGKILL to web, started again at once; every listener must
  reconnect and resync;
- ``restart bot``: SIGKILL to the bot, started again; it must take over the
  answers it was writing, in the same messages.

Then it checks every answer where the user sees it: the database holds it
once, the terminal printed it exactly once (after the broken attempt's words
and a note, where one broke), and Discord shows exactly it, split as the bot
splits, with ✅ on the question. It counts lost and duplicated answers and
prints, for each fault, the recovery time of each answer it hit (p50, p95,
max):

- worker faults: from the fault until the answer's next attempt wrote its
  first token (or the answer was done);
- web and bot faults: from the fault until the user's screen moved on again
  (new text in the terminal, an edit in Discord).

The baseline, measured in the same run before any fault: how long the same
kind of answer takes to arrive with nothing broken. Targets (for the
benchmark, not the tests): 0 lost, 0 duplicated; recovery p95 ≤ 60 s after
kill -9 of a worker, ≤ 10 s after SIGTERM, ≤ 5 s after a web restart.

**Ollama faults** (the earlier part of this benchmark): Ollama answers 500
once, drops the connection mid-stream once, answers 500 every time. Each must
end in one stored answer (or a clear failure where that is what the fault
calls for). ``--with-hang`` adds "Ollama hangs once", which waits out
OLLAMA_READ_TIMEOUT (300 s by default) before retrying.

Nothing here asserts: it prints PASS/MISS and exits non-zero only when it
could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pipeline import verdict
from bench.reporting import report_main

FAULTS = ("kill -9 worker", "SIGTERM cluster", "kill -9 web", "restart bot")
TARGETS = {"kill -9 worker": 60.0, "SIGTERM cluster": 10.0, "kill -9 web": 5.0}
TOKENS_PER_SECOND = 20.0
SETTLE_TIMEOUT = 300.0  # every answer must have arrived by then
BASELINE_FIRST = 1000  # the baseline's questions are numbered from here, apart from the suite's


def answer_for(index: int) -> str:
    """A distinct answer per question, with the indentation and brackets that must arrive byte for byte."""
    words = " ".join(f"w{index}.{n}" for n in range(50))
    return f"Answer {index}: {words}\n```python\ndef f{index}():\n\treturn [{index}, {{'k': ({index},)}}]\n```\n"


# -- Watching from outside ------------------------------------------------------


class Pipe(threading.Thread):
    """Reads one pipe of a process as it arrives, keeping when each chunk came."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.chunks: list[tuple[float, bytes]] = []
        self.start()

    def run(self) -> None:
        fd = self.stream.fileno()
        while chunk := os.read(fd, 65536):
            self.chunks.append((time.monotonic(), chunk))

    def text(self) -> str:
        return b"".join(chunk for _, chunk in self.chunks).decode(errors="replace")

    def first_after(self, moment: float) -> float | None:
        return next((at for at, _ in self.chunks if at > moment), None)


class Database:
    """Read-only SQL on the system's own database, from this process, without Django."""

    def __init__(self, system: Any) -> None:
        self.url = system.env.get("DATABASE_URL", "")
        self.path = Path(system.env["DATA_DIR"]) / "trollama.sqlite3"

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.url.startswith(("postgres", "pgsql")):
            import psycopg

            with psycopg.connect(self.url.replace("pgsql://", "postgresql://"), autocommit=True) as postgres:
                yield postgres.cursor()
        else:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=20)
            try:
                yield conn.cursor()
            finally:
                conn.close()

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.url.startswith(("postgres", "pgsql")):
            sql = sql.replace("%s", "?")
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def requests(self) -> dict[str, dict[str, Any]]:
        """Every request by its question: status, attempts, worker, when its current attempt's first token came."""
        rows = self.fetch(
            "SELECT m.content, r.id, r.status, r.attempts, r.worker, r.first_token_at, r.finished_at, r.thread_id "
            "FROM conversations_request r JOIN conversations_message m ON r.message_id = m.id"
        )
        return {
            row[0]: {
                "id": row[1],
                "status": row[2],
                "attempts": row[3],
                "worker": row[4],
                "first_token_at": _moment(row[5]),
                "finished_at": _moment(row[6]),
                "thread_id": row[7],
            }
            for row in rows
        }

    def answers(self, thread_id: int) -> list[str]:
        rows = self.fetch(
            "SELECT content FROM conversations_message WHERE thread_id = %s AND role = 'assistant'", (thread_id,)
        )
        return [row[0] for row in rows]


def _moment(value: Any) -> float | None:
    """A stored timestamp as seconds since the epoch (SQLite keeps text, PostgreSQL a datetime)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# -- Asking -----------------------------------------------------------------------


@dataclass
class Ask:
    index: int
    via: str  # "terminal" or "discord"
    question: str
    answer: str
    chat: subprocess.Popen[bytes] | None = None
    out: Pipe | None = None
    err: Pipe | None = None
    asked_id: int | None = None  # the Discord message that asked
    asked_at: float = 0.0  # time.time()

    def start(self, system: Any, fake: Any, discord: Any) -> None:
        fake.script(self.answer, match=f"{re.escape(self.question)}$", tokens_per_second=TOKENS_PER_SECOND)
        self.asked_at = time.time()
        if self.via == "terminal":
            self.chat = system.spawn_chat(self.question, "--user", f"faults-t{self.index}")
            self.out, self.err = Pipe(self.chat.stdout), Pipe(self.chat.stderr)
        else:
            user = discord.add_user(f"faults-d{self.index}")
            self.asked_id = discord.send_message(user, "general", self.question, mention_bot=True).id

    def bot_messages(self, discord: Any) -> list[Any]:
        thread = discord.thread_of(self.asked_id) if self.asked_id else None
        return discord.bot_messages(thread) if thread else []

    def first_screen_change_after(self, moment: float, discord: Any) -> float | None:
        """When (monotonic) the user next saw this answer move, after ``moment``."""
        if self.out is not None:
            return self.out.first_after(moment)
        times = [edit.at for message in self.bot_messages(discord) for edit in message.history if edit.at > moment]
        return min(times) if times else None

    def finished_for_the_user(self, discord: Any) -> bool:
        if self.chat is not None:
            return self.chat.poll() is not None
        reactions = discord.message(self.asked_id).reactions
        return bool(reactions.get("✅") or reactions.get("❌"))


@dataclass
class Fault:
    name: str
    at: float  # time.monotonic()
    wall: float  # time.time()
    hit: list[Ask] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)  # request id → attempts when it struck
    recovery: list[float] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class SuiteResult:
    asks: list[Ask]
    faults: list[Fault]
    lost: list[str]
    duplicated: list[str]
    baseline: list[float]

    def recovery(self, name: str) -> list[float]:
        return [seconds for fault in self.faults if fault.name == name for seconds in fault.recovery]


class Suite:
    """Asks questions, breaks things while they are answered, and checks what arrived."""

    def __init__(self, system: Any, fake: Any, discord: Any, *, seed: int, log: Any = None) -> None:
        from tests.e2e.bot import start_bot

        self.system, self.fake, self.discord = system, fake, discord
        self.rng = random.Random(seed)
        self.db = Database(system)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.start_bot = start_bot
        self.faults: list[Fault] = []

    def streaming(self, asks: list[Ask]) -> list[tuple[Ask, dict[str, Any]]]:
        states = self.db.requests()
        return [
            (ask, states[ask.question])
            for ask in asks
            if ask.question in states
            and states[ask.question]["status"] == "generating"
            and states[ask.question]["first_token_at"] is not None
        ]

    def still_recovering(self, ask: Ask, state: dict[str, Any]) -> bool:
        """Whether an earlier fault hit ``ask`` and it has not moved on since (its figure would count twice)."""
        for fault in self.faults:
            if ask not in fault.hit:
                continue
            if fault.name in ("kill -9 worker", "SIGTERM cluster"):
                if state["attempts"] <= fault.attempts.get(state["id"], state["attempts"]):
                    return True
            elif ask.first_screen_change_after(fault.at, self.discord) is None:
                return True
        return False

    def inject(self, name: str, asks: list[Ask]) -> Fault | None:
        """Break ``name`` while something streams; None when nothing suitable is streaming."""
        live = [(ask, state) for ask, state in self.streaming(asks) if not self.still_recovering(ask, state)]
        if name == "restart bot":
            live = [(ask, state) for ask, state in live if ask.via == "discord"]
        if not live:
            return None
        fault = Fault(name, time.monotonic(), time.time())
        if name == "kill -9 worker":
            ask, state = self.rng.choice(live)
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(state["worker"].rsplit("/", 1)[1]), signal.SIGKILL)
            fault.hit = [ask]
            fault.attempts = {state["id"]: state["attempts"]}
        elif name == "SIGTERM cluster":
            cluster = self.system.processes["worker"]
            os.kill(cluster.pid, signal.SIGTERM)
            try:
                cluster.wait(timeout=30)
                fault.note = f"exited {cluster.returncode} after {time.monotonic() - fault.at:.1f} s"
            except subprocess.TimeoutExpired:
                fault.note = "did not exit within 30 s; killed"
                self.system.kill("worker")
            self.system.start_workers()
            fault.hit = [ask for ask, _ in live]
            fault.attempts = {state["id"]: state["attempts"] for _, state in live}
        elif name == "kill -9 web":
            self.system.kill("web")
            self.system.start_web()
            fault.hit = [ask for ask, _ in live]
        else:
            self.system.kill("bot")
            self.start_bot(self.system, self.discord)
            fault.hit = [ask for ask, _ in live]
        self.log(f"  … {name} hit {len(fault.hit)} answer(s) {fault.note}")
        return fault

    def measure(self, fault: Fault, faults: list[Fault]) -> None:
        """Each answer's recovery from ``fault``, unless a later fault hit it before it had recovered."""

        def overlapped(ask: Ask, until: float) -> bool:
            later = [f for f in faults if fault.at < f.at < until and ask in f.hit]
            if later:
                fault.details.append(f"q{ask.index}: not counted, {later[0].name} hit it before it recovered")
            return bool(later)

        if fault.name in ("kill -9 worker", "SIGTERM cluster"):
            states = self.db.requests()
            for ask in fault.hit:
                state = states[ask.question]
                resumed = state["first_token_at"] if state["attempts"] > fault.attempts[state["id"]] else None
                moment = resumed or state["finished_at"]
                if moment is not None and not overlapped(ask, fault.at + (moment - fault.wall)):
                    fault.recovery.append(max(0.0, moment - fault.wall))
        else:
            for ask in fault.hit:
                moved = ask.first_screen_change_after(fault.at, self.discord)
                if moved is not None and not overlapped(ask, moved):
                    fault.recovery.append(moved - fault.at)
                    fault.details.append(f"q{ask.index} {ask.via} {moved - fault.at:.1f} s")
                    if ask.err is not None and moved - fault.at > TARGETS["kill -9 web"]:
                        said = [
                            f"{at - fault.at:+.1f} {text.decode(errors='replace').strip()[:60]}"
                            for at, text in ask.err.chunks
                        ]
                        fault.details.append(f"(q{ask.index} said: {' | '.join(said)})")

    def wait_until_settled(self, asks: list[Ask]) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if all(ask.finished_for_the_user(self.discord) for ask in asks):
                return
            time.sleep(0.5)
        for ask in asks:
            if ask.chat is not None and ask.chat.poll() is None:
                ask.chat.kill()

    def check(self, ask: Ask) -> tuple[bool, bool, str]:
        """(complete once, duplicated, what went wrong) for one answer, from the database and the user's screen."""
        state = self.db.requests().get(ask.question)
        if state is None:
            return False, False, "no request was stored"
        stored = self.db.answers(state["thread_id"])
        problems = []
        if state["status"] != "done" or ask.answer not in stored:
            problems.append(f"stored as {state['status']} with {len(stored)} answer(s)")
        duplicated = len(stored) > 1
        if ask.chat is not None:
            out, err = ask.out.text(), ask.err.text()  # type: ignore[union-attr]
            shown = out.count(ask.answer)
            duplicated = duplicated or shown > 1
            if shown != 1 or ask.chat.returncode != 0 or "Traceback" in err:
                problems.append(f"terminal showed it {shown} time(s), exit {ask.chat.returncode}")
        else:
            from bots.render import split_message

            contents = [message.content for message in ask.bot_messages(self.discord)]
            duplicated = duplicated or "".join(contents).count(ask.answer[:40]) > 1
            if contents != split_message(ask.answer):
                problems.append(f"Discord shows {len(contents)} message(s) that are not exactly the answer")
            if not self.discord.message(ask.asked_id).reactions.get("✅"):
                problems.append("no ✅ on the question")
        return not problems, duplicated, "; ".join(problems)

    def baseline(self, count: int) -> list[float]:
        """Seconds from asking to the whole answer, with nothing broken, alternating terminal and Discord."""
        asks = [self.ask(BASELINE_FIRST + n) for n in range(count)]
        for ask in asks:
            ask.start(self.system, self.fake, self.discord)
        self.wait_until_settled(asks)
        states = self.db.requests()
        return [
            states[ask.question]["finished_at"] - ask.asked_at
            for ask in asks
            if ask.question in states and states[ask.question]["finished_at"]
        ]

    def ask(self, index: int) -> Ask:
        via = "terminal" if index % 2 == 0 else "discord"
        return Ask(index, via, f"fault suite question {index}", answer_for(index))

    def run(self, requests: int, *, rounds: int = 2, baseline: int = 4) -> SuiteResult:
        base = self.baseline(baseline) if baseline else []
        asks = [self.ask(n) for n in range(requests)]
        plan = [name for name in FAULTS for _ in range(rounds)]
        self.rng.shuffle(plan)
        faults = self.faults
        waiting = list(asks)
        started: list[Ask] = []
        while waiting or plan:
            for _ in range(2):
                if waiting:
                    ask = waiting.pop(0)
                    ask.start(self.system, self.fake, self.discord)
                    started.append(ask)
            time.sleep(self.rng.uniform(1.0, 2.5))
            if plan and (not waiting or self.rng.random() < len(plan) / max(len(waiting) / 2, 1)):
                fault = self.inject(plan[0], started)
                if fault is not None:
                    faults.append(fault)
                    plan.pop(0)
                elif not waiting and not self.streaming(started):
                    self.log(f"  … nothing streams for {plan[0]}; asking once more")
                    extra = self.ask(len(asks))
                    asks.append(extra)
                    waiting.append(extra)
        self.wait_until_settled(asks)
        for fault in faults:
            self.measure(fault, faults)
        lost, duplicated = [], []
        for ask in asks:
            complete, dup, why = self.check(ask)
            if not complete:
                lost.append(f"question {ask.index} ({ask.via}): {why}")
            if dup:
                duplicated.append(f"question {ask.index} ({ask.via})")
        return SuiteResult(asks, faults, lost, duplicated, base)


def run_suite(
    system: Any, fake: Any, discord: Any, *, requests: int = 30, seed: int = 0, **options: Any
) -> SuiteResult:
    return Suite(system, fake, discord, seed=seed).run(requests, **options)


# -- Ollama faults ----------------------------------------------------------------

MAX_ATTEMPTS = 3  # the default
ANSWER = "The answer, told once."
SLOW = "slow " * 80


@dataclass
class OllamaOutcome:
    fault: str
    expected: str
    observed: str
    ok: bool
    seconds: float


def chat_request(system: Any, text: str) -> tuple[Any, dict[str, Any]]:
    result = system.chat(text, "--user", "faults", timeout=400)
    return result, system.request_state(system.latest_request_id())


def describe(state: dict[str, Any]) -> str:
    answers = len(state["assistant_messages"])
    text = f"{state['status']} after {state['attempts']} attempt(s), {answers} answer(s) stored"
    error = state["error"] if len(state["error"]) <= 120 else state["error"][:119] + "…"
    return text + (f"; reason: “{error}”" if error else "")


def ollama_once(system: Any, fake: Any, text: str, **fault: Any) -> tuple[bool, str]:
    fake.script(ANSWER, match=f"^{text}$")
    fake.script(match=f"^{text}$", times=1, **fault)
    result, state = chat_request(system, text)
    ok = (
        state["status"] == "done"
        and state["assistant_messages"] == [ANSWER]
        and state["attempts"] == 2
        and result.returncode == 0
        and ANSWER in result.stdout
    )
    return ok, describe(state) + f"; chat exit {result.returncode}"


def ollama_always_500(system: Any, fake: Any, text: str) -> tuple[bool, str]:
    fake.script(match=f"^{text}$", error=(500, "llama runner process has terminated"))
    result, state = chat_request(system, text)
    ok = (
        state["status"] == "failed"
        and state["attempts"] == MAX_ATTEMPTS
        and not state["assistant_messages"]
        and result.returncode == 1
        and "try again later" in state["error"]
    )
    return ok, describe(state) + f"; chat exit {result.returncode}"


def ollama_faults(system: Any, fake: Any, *, repeat: int, with_hang: bool) -> list[OllamaOutcome]:
    scenarios: list[tuple[str, str, Any]] = [
        (
            "Ollama answers 500 once",
            "retried, answered once",
            lambda t: ollama_once(system, fake, t, error=(500, "oom")),
        ),
        (
            "Ollama drops the connection",
            "retried, answered once",
            lambda t: ollama_once(system, fake, t, reply=SLOW, break_after=3),
        ),
    ]
    if with_hang:
        scenarios.append(
            (
                "Ollama hangs once",
                "read timeout (OLLAMA_READ_TIMEOUT), retried, answered once",
                lambda t: ollama_once(system, fake, t, hang=True),
            )
        )
    outcomes = []
    for number, (name, expected, run) in enumerate(scenarios):
        for attempt in range(repeat):
            began = time.monotonic()
            ok, observed = run(f"ollama fault {number} try {attempt}")
            outcomes.append(OllamaOutcome(name, expected, observed, ok, time.monotonic() - began))
    # Last: a request that fails every time must not take the host away from the next one.
    began = time.monotonic()
    ok, observed = ollama_always_500(system, fake, "ollama fault always")
    outcomes.append(
        OllamaOutcome(
            "Ollama answers 500 every time",
            f"failed after {MAX_ATTEMPTS} attempts with a reason",
            observed,
            ok,
            time.monotonic() - began,
        )
    )
    began = time.monotonic()
    ok, observed = ollama_once(system, fake, "after the bad one", error=(500, "once more"))
    outcomes.append(
        OllamaOutcome(
            "the next request after it",
            "the host is still used: answered",
            observed,
            ok,
            time.monotonic() - began,
        )
    )
    return outcomes


# -- Running it -------------------------------------------------------------------


@contextlib.contextmanager
def fault_system(config: str, fake: Any, discord: Any, *, keep: bool = False) -> Iterator[Any]:
    """Web, the default four workers and the bot pointed at ``discord``, all with default settings."""
    from bench.pipeline import started_system
    from tests.e2e.bot import bot_environment, start_bot

    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-faults-{config}-"))
    if keep:
        print(f"  … logs and data in {data_dir}", file=sys.stderr, flush=True)
    try:
        with started_system(config, fake, data_dir, **bot_environment(discord)) as system:
            start_bot(system, discord)
            yield system
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def figures(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {statistics.median(values):5.1f} s · p95 {percentile(values, 0.95):5.1f} s · "
        f"max {max(values):5.1f} s · n={len(values)}"
    )


def render(config: str, suite: SuiteResult, ollama: list[OllamaOutcome], *, verbose: bool = False) -> str:
    answered = len(suite.asks) - len(suite.lost)
    lines = [
        f"Trollama faults — {config}, default settings",
        "",
        f"Delivery suite: {len(suite.asks)} questions ({sum(a.via == 'terminal' for a in suite.asks)} terminal, "
        f"{sum(a.via == 'discord' for a in suite.asks)} Discord), {len(suite.faults)} faults",
        f"  answered complete once  {answered}/{len(suite.asks)}",
        f"  lost                    {len(suite.lost)}  {verdict(not suite.lost)}  (target 0)",
        f"  duplicated              {len(suite.duplicated)}  {verdict(not suite.duplicated)}  (target 0)",
        f"  baseline: an answer with nothing broken takes {figures(suite.baseline)}",
        "  recovery per answer hit:",
    ]
    for name in FAULTS:
        values = suite.recovery(name)
        target = TARGETS.get(name)
        judged = (
            f"  {verdict(bool(values) and percentile(values, 0.95) <= target)} (p95 ≤ {target:g} s)" if target else ""
        )
        lines.append(f"    {name:<16} {figures(values)}{judged}")
    for fault in suite.faults:
        if fault.note:
            lines.append(f"    {fault.name}: {fault.note}")
        if verbose and fault.details:
            lines.append(f"    {fault.name}: " + ", ".join(fault.details))
    for problem in suite.lost + [f"duplicated: {d}" for d in suite.duplicated]:
        lines.append(f"    ! {problem}")
    lines += ["", "Ollama faults:"]
    for outcome in ollama:
        lines.append(
            f"  {outcome.fault:<32} {verdict(outcome.ok)}  {outcome.seconds:5.1f} s  expected: {outcome.expected}"
        )
        lines.append(f"  {'':<32}       observed: {outcome.observed}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> str:
    from tests.fake_discord import FakeDiscord
    from tests.fake_ollama import FakeOllama

    with (
        FakeOllama() as fake,
        FakeDiscord() as discord,
        fault_system(args.config, fake, discord, keep=args.keep) as system,
    ):
        print("  … delivery suite", file=sys.stderr, flush=True)
        suite = run_suite(system, fake, discord, requests=args.requests, seed=args.seed)
        print("  … Ollama faults", file=sys.stderr, flush=True)
        ollama = [] if args.no_ollama else ollama_faults(system, fake, repeat=args.repeat, with_hang=args.with_hang)
    return render(args.config, suite, ollama, verbose=args.keep)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("embedded", "production"), default="embedded")
    parser.add_argument("--requests", type=int, default=30, help="questions in the delivery suite")
    parser.add_argument("--seed", type=int, default=1, help="where the faults fall")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each Ollama fault")
    parser.add_argument("--with-hang", action="store_true", help="also wait out Ollama's read timeout once")
    parser.add_argument("--quick", action="store_true", help="each Ollama fault once")
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs and data, and print details")
    parser.add_argument("--no-ollama", action="store_true", help="the delivery suite only")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    if args.repeat < 1 or args.requests < 8:
        parser.error("--repeat must be at least 1 and --requests at least 8")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return report_main(f"Trollama faults — {args.config}", f"faults-{args.config}", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
