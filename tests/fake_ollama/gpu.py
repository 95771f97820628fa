"""A simulated GPU behind the fake Ollama: memory, model loads, parallel slots, eviction, Ollama's queue.

Off unless asked for (``FakeOllama(gpu=GpuConfig())``, ``fake.simulate_gpu()``,
``POST /_fake/gpu`` or ``python -m tests.fake_ollama --gpu``). With it on, every
chat, generate and embed request goes through one scheduler that behaves like
Ollama's (``server/sched.go``):

- Requests wait in one first-in-first-out queue, and the queue handles one
  request at a time. A request for a loaded model takes that model at once
  (and then waits inside it for one of its ``num_parallel`` slots, like
  Ollama's runner does), so it never holds the queue up.
- A request for a model that is not loaded loads it when fewer than
  ``max_loaded_models`` are loaded and it fits in the free memory. While
  another model is still loading it goes to the back of the queue and tries
  again after ``reschedule_delay`` (Ollama does not load two models on one GPU
  at once).
- Otherwise a loaded model has to go: the least recently used idle one, or,
  when none is idle, the least recently used busy one, once it has finished.
  The queue waits for that unload; **requests behind it wait too**, even for
  models that are loaded (head-of-line blocking), and then it looks again.
- A loaded model asked for with another context size (``num_ctx``) is
  reloaded, as Ollama does when a runner's options change.
- keep_alive: an idle model unloads when its keep_alive runs out; 0 unloads it
  as soon as it is idle; negative keeps it for ever. Each request sets it.

Loading takes ``load_seconds_per_gb`` for every GB of the model's size (its
``/api/tags`` size, which is also what it takes of the ``vram`` budget).
Generating takes ``prompt_tokens / prompt_tokens_per_second +
completion_tokens / tokens_per_second(model)``.

**Time.** Everything inside runs on a simulated clock that goes
``1 / time_scale`` times as fast as the real one (``time_scale=0.05``: a
170 s workload takes 8.5 s). Durations in requests (keep_alive) and every
figure the simulation records or reports (``load_duration``,
``eval_duration``, the records below) are in simulated seconds; ``/api/ps``'s
``expires_at`` is the real wall-clock moment, since clients compare it with
their own clock. ``sim_time(wall)`` turns a ``time.time()`` into the
simulation's clock, so a caller can place database timestamps on it.

**Records** (simulated seconds since ``reset()``): ``loads`` (model, when it
started and finished loading), ``unloads`` (model, when, why), ``busy`` (one
interval per request a model worked on: from taking a slot to its last
byte), and ``busy_share(start, end)``, the share of a window in which at
least one model was working.

Every method is safe to call from any thread; the simulation's own state is
only changed on the fake's event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from .specs import ModelSpec, canonical_name

GB = 10**9

# Simulated tokens per second on one 24 GB consumer GPU (an RTX 3090/4090 class card) for the
# default models; gpt-oss is a mixture of experts with ~3.6B active parameters, hence fast.
DEFAULT_TOKENS_PER_SECOND: dict[str, float] = {
    "gpt-oss:20b": 110.0,
    "rnj-1:8b": 90.0,
    "qwen3-vl:8b": 80.0,
    "deepcoder:14b": 55.0,
    "magistral:24b": 40.0,
}

T = TypeVar("T")


@dataclass(frozen=True)
class GpuConfig:
    """One GPU's worth of Ollama; the defaults are a 24 GB card with Ollama's defaults for it."""

    vram: int = 24 * GB  # bytes
    load_seconds_per_gb: float = 0.5
    num_parallel: int = 2  # OLLAMA_NUM_PARALLEL
    max_loaded_models: int = 3  # OLLAMA_MAX_LOADED_MODELS
    tokens_per_second: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOKENS_PER_SECOND))
    default_tokens_per_second: float = 60.0  # models not in tokens_per_second
    prompt_tokens_per_second: float = 1500.0
    time_scale: float = 1.0  # real seconds per simulated second
    reschedule_delay: float = 0.25  # simulated; Ollama's reschedDelay

    def __post_init__(self) -> None:
        for name in ("vram", "num_parallel", "max_loaded_models"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("default_tokens_per_second", "prompt_tokens_per_second", "time_scale"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("load_seconds_per_gb", "reschedule_delay"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must not be negative")
        rates = {canonical_name(str(k)): float(v) for k, v in dict(self.tokens_per_second).items()}
        if any(not rate > 0 for rate in rates.values()):
            raise ValueError("tokens_per_second values must be positive")
        object.__setattr__(self, "tokens_per_second", rates)

    def rate(self, model: str) -> float:
        return self.tokens_per_second.get(canonical_name(model), self.default_tokens_per_second)

    def load_seconds(self, size: int) -> float:
        return size / GB * self.load_seconds_per_gb

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GpuConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown GPU settings: {sorted(unknown)}; use {sorted(known)}")
        values = dict(data)
        if "tokens_per_second" in values:
            # Given rates add to the defaults rather than replace them all.
            values["tokens_per_second"] = {**DEFAULT_TOKENS_PER_SECOND, **dict(values["tokens_per_second"])}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_second": dict(self.tokens_per_second)}


@dataclass(frozen=True)
class Load:
    model: str
    started: float
    finished: float
    context_length: int = 0

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True)
class Unload:
    model: str
    at: float
    reason: str  # "evicted" (room for another model), "expired" (keep_alive ran out), "keep_alive 0", "reload"


@dataclass(frozen=True)
class Busy:
    model: str
    started: float
    finished: float
    completed: bool  # False when the client went away first


def busy_share(busy: Iterable[Busy], start: float, end: float) -> float:
    """Share of ``[start, end]`` in which at least one of the ``busy`` spans was working."""
    if end <= start:
        return 0.0
    spans = sorted((max(b.started, start), min(b.finished, end)) for b in busy)
    covered, reach = 0.0, start
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered / (end - start)


@dataclass
class _Runner:
    """One loaded (or loading) model; Ollama's runnerRef."""

    model: str
    size: int
    context_length: int
    keep_alive: float | None  # simulated seconds; None keeps it for ever
    num_parallel: int
    ready: asyncio.Event
    idle: asyncio.Event
    slots: asyncio.Semaphore
    loading: bool = True
    refs: int = 0  # requests holding it (queued for a slot or generating)
    generating: int = 0
    last_used: float = 0.0
    expires_at: float | None = None  # simulated; set while idle
    expiry: asyncio.TimerHandle | None = None
    doomed: bool = False  # chosen to make room: unload as soon as it is idle
    unloaded: bool = False


@dataclass
class _Pending:
    spec: ModelSpec
    keep_alive: float | None
    context_length: int
    granted: asyncio.Future[_Runner]
    cancelled: bool = False


@dataclass
class Lease:
    """What ``acquire`` hands a request: its model, and how long it waited to be loaded (simulated)."""

    runner: _Runner
    load_seconds: float
    slot: bool
    started: float = 0.0  # when its slot was taken (simulated)


class GpuSimulation:
    """The scheduler and its records; created by ``FakeOllama.simulate_gpu``."""

    def __init__(self, config: GpuConfig, loop_of: Callable[[], asyncio.AbstractEventLoop | None]) -> None:
        self.config = config
        self._loop_of = loop_of
        self._lock = threading.Lock()  # guards the records, read from other threads
        self._epoch_monotonic = time.monotonic()
        self._epoch_wall = time.time()
        self._runners: dict[str, _Runner] = {}
        self._pending: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._unloaded: asyncio.Event | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._loads: list[Load] = []
        self._unloads: list[Unload] = []
        self._busy: list[Busy] = []

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """The simulated clock: seconds since the last ``reset()``."""
        return (time.monotonic() - self._epoch_monotonic) / self.config.time_scale

    def sim_time(self, wall: float) -> float:
        """A ``time.time()`` moment on the simulated clock."""
        return (wall - self._epoch_wall) / self.config.time_scale

    def wall_time(self, sim: float) -> float:
        return self._epoch_wall + sim * self.config.time_scale

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds * self.config.time_scale

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds) * self.config.time_scale)

    # ------------------------------------------------------------------ records

    @property
    def loads(self) -> list[Load]:
        with self._lock:
            return list(self._loads)

    @property
    def unloads(self) -> list[Unload]:
        with self._lock:
            return list(self._unloads)

    @property
    def busy(self) -> list[Busy]:
        with self._lock:
            return list(self._busy)

    def busy_share(self, start: float, end: float) -> float:
        """Share of ``[start, end]`` (simulated) in which at least one model was working on a request."""
        return busy_share(self.busy, start, end)

    def loaded(self) -> list[dict[str, Any]]:
        """The models in memory now, as ``/api/ps`` describes them (plus what the simulation knows)."""
        now = self.now()
        rows = []
        for runner in list(self._runners.values()):
            if runner.keep_alive is None:
                expires = None
            elif runner.expires_at is not None:
                expires = runner.expires_at
            else:
                expires = now + runner.keep_alive  # busy or loading: Ollama reports now + its keep_alive
            rows.append(
                {
                    "model": runner.model,
                    "size": runner.size,
                    "context_length": runner.context_length,
                    "expires_at": expires,
                    "loading": runner.loading,
                    "in_use": runner.refs,
                    "generating": runner.generating,
                    "free_slots": 0 if runner.loading else max(0, runner.num_parallel - runner.generating),
                }
            )
        return rows

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-able: the control API's ``GET /_fake/gpu``."""
        return {
            "config": self.config.to_json(),
            "now": self.now(),
            "loaded": self.loaded(),
            "waiting": len(self._pending),
            "loads": [asdict(load) | {"seconds": load.seconds} for load in self.loads],
            "unloads": [asdict(unload) for unload in self.unloads],
            "busy": [asdict(busy) for busy in self.busy],
        }

    # ------------------------------------------------------------------ control (any thread)

    def reset(self) -> None:
        """Unload every model, forget the records and restart the clock.

        Meant for an idle server (between workloads); requests still running
        keep their model until they finish, but it no longer counts.
        """
        self._call_on_loop(self._reset)

    def unload(self, name: str | None = None) -> None:
        """Unload ``name`` (every model by default) as soon as it is idle, like ``keep_alive: 0``."""
        self._call_on_loop(lambda: self._unload_when_idle(name))

    def _call_on_loop(self, action: Callable[[], None]) -> None:
        loop = self._loop_of()
        if loop is None or not loop.is_running():
            action()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
            return

        async def run() -> None:
            action()

        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)

    def _reset(self) -> None:
        for pending in self._pending:
            pending.cancelled = True
        self._pending.clear()
        for runner in list(self._runners.values()):
            self._forget(runner)
        with self._lock:
            self._loads.clear()
            self._unloads.clear()
            self._busy.clear()
        self._epoch_monotonic = time.monotonic()
        self._epoch_wall = time.time()

    def _unload_when_idle(self, name: str | None) -> None:
        for runner in list(self._runners.values()):
            if name is None or runner.model == canonical_name(name):
                runner.keep_alive = 0.0
                self._cancel_expiry(runner)
                if runner.refs == 0:
                    self._unload(runner, "keep_alive 0")

    # ------------------------------------------------------------------ requests (event loop)

    async def acquire(
        self,
        spec: ModelSpec,
        *,
        keep_alive: float | None,
        context_length: int,
        alive: Callable[[str], bool],
        slot: bool = True,
    ) -> Lease | None:
        """Queue for ``spec``, wait for it to load, then (``slot``) for a free slot; None if ``alive`` says stop.

        ``alive(phase)`` is polled while waiting ("queue", "load"); the caller
        must ``release`` a lease it got, whatever happens next.
        """
        self._ensure_scheduler()
        assert self._wake is not None
        waited_from = self.now()
        loop = asyncio.get_running_loop()
        pending = _Pending(spec, keep_alive, context_length, loop.create_future())
        self._pending.append(pending)
        self._wake.set()
        # Shielded: the scheduler resolves ``granted`` and must find it still open.
        runner = await self._wait(asyncio.shield(pending.granted), alive, "queue")
        if runner is None:
            pending.cancelled = True
            if pending.granted.done():
                self._release_ref(pending.granted.result())
            return None
        lease = Lease(runner, load_seconds=0.0, slot=False)
        if not runner.ready.is_set() and await self._wait(runner.ready.wait(), alive, "load") is None:
            self._release_ref(runner)
            return None
        # Ollama's load_duration is all the time spent getting a model: the queue included.
        lease.load_seconds = self.now() - waited_from
        if slot:
            if await self._wait(runner.slots.acquire(), alive, "queue") is None:
                self._release_ref(runner)
                return None
            lease.slot = True
            lease.started = self.now()
            runner.generating += 1
            runner.last_used = lease.started
        return lease

    def release(self, lease: Lease, *, completed: bool = True) -> None:
        """The request is over: free its slot, record its busy interval, start the keep_alive countdown."""
        runner = lease.runner
        if lease.slot:
            lease.slot = False
            runner.generating -= 1
            runner.slots.release()
            finished = self.now()
            runner.last_used = finished
            if not runner.unloaded:
                with self._lock:
                    self._busy.append(Busy(runner.model, lease.started, finished, completed))
        self._release_ref(runner)

    def generation_seconds(self, model: str, *, prompt_tokens: int, completion_tokens: int) -> float:
        config = self.config
        return prompt_tokens / config.prompt_tokens_per_second + completion_tokens / config.rate(model)

    def load_only_unload(self, name: str) -> None:
        """``keep_alive: 0`` with nothing to answer: unload now if idle, else once idle (Ollama's expireRunner)."""
        self._unload_when_idle(name)

    def is_loaded(self, name: str) -> bool:
        runner = self._runners.get(canonical_name(name))
        return runner is not None and not runner.loading

    def loaded_names(self) -> list[str]:
        return list(self._runners)

    # ------------------------------------------------------------------ the scheduler (event loop)

    def _ensure_scheduler(self) -> None:
        if self._scheduler is None or self._scheduler.done():
            self._wake = asyncio.Event()
            self._unloaded = asyncio.Event()
            self._scheduler = asyncio.get_running_loop().create_task(self._schedule())

    async def _schedule(self) -> None:
        assert self._wake is not None
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._place(self._pending[0])

    async def _place(self, pending: _Pending) -> None:
        """Ollama's processPending for the request at the head of the queue.

        Returns once it holds a model (or is loading one, or went to the back
        of the queue); waits, holding up everything behind it, while a model
        it needs gone finishes its requests and unloads.
        """
        config = self.config
        name = pending.spec.name
        while True:
            if pending.cancelled:
                self._pop(pending)
                return
            runner = self._runners.get(name)
            victim: _Runner | None = None
            if runner is not None:
                if runner.context_length == pending.context_length:
                    self._pop(pending)
                    self._grant(runner, pending)
                    return
                victim = runner
            elif len(self._runners) >= config.max_loaded_models:
                victim = self._victim()
            elif not self._runners:
                self._pop(pending)
                self._start_load(pending)
                return
            elif any(r.loading for r in self._runners.values()):
                # Ollama: don't measure free memory while another model loads; try again later, from the back.
                self._pop(pending)
                asyncio.get_running_loop().call_later(
                    self.real_seconds(config.reschedule_delay), self._requeue, pending
                )
                return
            elif pending.spec.size <= config.vram - sum(r.size for r in self._runners.values()):
                self._pop(pending)
                self._start_load(pending)
                return
            else:
                victim = self._victim()
            await self._evict(victim, reason="reload" if victim is runner else "evicted")

    def _pop(self, pending: _Pending) -> None:
        if self._pending and self._pending[0] is pending:
            self._pending.popleft()

    def _requeue(self, pending: _Pending) -> None:
        if not pending.cancelled:
            self._pending.append(pending)
            if self._wake is not None:
                self._wake.set()

    def _victim(self) -> _Runner:
        runners = sorted(self._runners.values(), key=lambda r: r.last_used)
        idle = [r for r in runners if r.refs == 0]
        return (idle or runners)[0]

    async def _evict(self, runner: _Runner, *, reason: str) -> None:
        runner.doomed = True
        self._cancel_expiry(runner)
        if runner.refs == 0:
            self._unload(runner, reason)
            return
        await runner.idle.wait()
        if not runner.unloaded:
            self._unload(runner, reason)

    def _grant(self, runner: _Runner, pending: _Pending) -> None:
        if pending.granted.done():
            return
        runner.refs += 1
        runner.idle.clear()
        self._cancel_expiry(runner)
        runner.expires_at = None
        runner.keep_alive = pending.keep_alive
        runner.last_used = self.now()
        pending.granted.set_result(runner)

    def _start_load(self, pending: _Pending) -> None:
        spec = pending.spec
        config = self.config
        runner = _Runner(
            model=spec.name,
            size=spec.size,
            context_length=pending.context_length,
            keep_alive=pending.keep_alive,
            num_parallel=config.num_parallel,
            ready=asyncio.Event(),
            idle=asyncio.Event(),
            slots=asyncio.Semaphore(config.num_parallel),
            last_used=self.now(),
        )
        self._runners[spec.name] = runner
        self._grant(runner, pending)
        asyncio.get_running_loop().create_task(self._load(runner))

    async def _load(self, runner: _Runner) -> None:
        started = self.now()
        await self.sleep(self.config.load_seconds(runner.size))
        if runner.unloaded:
            return
        runner.loading = False
        with self._lock:
            self._loads.append(Load(runner.model, started, self.now(), runner.context_length))
        runner.ready.set()
        if self._wake is not None:
            self._wake.set()

    def _release_ref(self, runner: _Runner) -> None:
        runner.refs -= 1
        if runner.refs > 0 or runner.unloaded:
            return
        runner.idle.set()
        if runner.doomed:
            return  # _evict is waiting for this and unloads it
        if runner.keep_alive == 0:
            self._unload(runner, "keep_alive 0")
        elif runner.keep_alive is not None:
            runner.expires_at = self.now() + runner.keep_alive
            runner.expiry = asyncio.get_running_loop().call_later(
                self.real_seconds(runner.keep_alive), self._expire, runner
            )

    def _expire(self, runner: _Runner) -> None:
        runner.expiry = None
        if runner.refs == 0 and not runner.unloaded:
            self._unload(runner, "expired")

    def _cancel_expiry(self, runner: _Runner) -> None:
        if runner.expiry is not None:
            runner.expiry.cancel()
            runner.expiry = None

    def _unload(self, runner: _Runner, reason: str) -> None:
        self._forget(runner)
        with self._lock:
            self._unloads.append(Unload(runner.model, self.now(), reason))

    def _forget(self, runner: _Runner) -> None:
        runner.unloaded = True
        runner.idle.set()
        self._cancel_expiry(runner)
        if self._runners.get(runner.model) is runner:
            del self._runners[runner.model]
        runner.ready.set()  # a request still waiting for the load goes on (its model is gone, as after a crash)
        if self._unloaded is not None:
            self._unloaded.set()

    async def _wait(self, awaitable: Awaitable[T], alive: Callable[[str], bool], phase: str) -> T | None:
        """``await awaitable``, giving up (None) as soon as ``alive(phase)`` says the client has gone."""
        task = asyncio.ensure_future(awaitable)
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_INTERVAL)
            if done:
                return task.result()
            if not alive(phase):
                task.cancel()
                try:
                    return await task  # it finished after all: the caller sees the hang-up at its next check
                except asyncio.CancelledError:
                    return None


# Hang-ups are noticed by polling, as in the server.
POLL_INTERVAL = 0.01


def parse_rates(values: Iterable[str]) -> dict[str, float]:
    """``["rnj-1:8b=90", ...]`` (the CLI's ``--model-rate``) as a mapping of simulated tokens per second."""
    rates = {}
    for value in values:
        name, sep, rate = value.rpartition("=")
        if not sep or not name:
            raise ValueError(f"expected MODEL=TOKENS_PER_SECOND, got {value!r}")
        rates[name] = float(rate)
    return rates
