"""The scheduling policy: in which order waiting requests should start, given what the GPUs hold.

Pure functions over a snapshot (no Django, no I/O), so the policy is tested
directly; ``pipeline.queue`` builds the snapshot from the database and
Ollama's ``/api/ps`` and claims in the order returned here.

Cheapest to start first (the "class" of a request, lowest first):

0. **overdue**: it has waited more than ``aging`` seconds beyond its
   first-in-first-out turn (``fifo_turn``: when arrival order would have
   started it). Overdue requests go in arrival order, before everything else.
1. **loaded**: its model is loaded on a host that has a free parallel slot.
2. **unknown**: its model is not known before routing (the classifier decides).
3. **fits**: its model is not loaded but fits in the host's free memory.
4. **busy**: its model is loaded, every slot busy (Ollama queues it behind them).
5. **evict idle**: it needs memory that only models nobody waits for hold.
6. **evict wanted**: it would push out a model that others wait for or use.
   With a VRAM budget set by the operator and work still running on that host,
   such a request is held back (not claimed) until memory frees or it is overdue.

Within a class, models with more waiting requests come first (then the oldest
request), and within a model users take turns: a user's n-th waiting request
for a model ranks after every other user's (n-1)-th.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

OVERDUE, LOADED, UNKNOWN, FITS, BUSY, EVICT_IDLE, EVICT_WANTED = range(7)
CLASS_NAMES = {
    OVERDUE: "overdue",
    LOADED: "model loaded, slot free",
    UNKNOWN: "model chosen when it starts",
    FITS: "model fits in free memory",
    BUSY: "model loaded, slots busy",
    EVICT_IDLE: "needs memory of idle models",
    EVICT_WANTED: "needs memory that others use",
}


@dataclass(frozen=True)
class Waiting:
    request_id: int
    user_id: int
    model: str  # "" when only routing can tell
    queued_at: float  # seconds (any epoch, the same for every field of a snapshot)
    # When first in, first out would have started it (``fifo_turn``); None: not known.
    fifo_turn: float | None = None


@dataclass(frozen=True)
class HostState:
    host_id: int
    # Bytes the operator allows; None: unknown (the largest total seen loaded is used, never holding back).
    budget: int | None
    learned_budget: int  # the most memory /api/ps ever showed in use at once
    num_parallel: int
    loaded: dict[str, int]  # model -> bytes it holds
    known: bool = True  # False when /api/ps could not be read: nothing is known about this host

    def capacity(self) -> int | None:
        if self.budget is not None:
            return self.budget
        return self.learned_budget or None


@dataclass(frozen=True)
class Snapshot:
    waiting: Sequence[Waiting]
    hosts: Sequence[HostState]
    running: dict[tuple[int, str], int]  # (host_id, model) -> requests running
    sizes: dict[str, int]  # model -> bytes (what it held when last loaded, else its size on disk)
    # model -> the hosts that have it; a model missing here may run on any host.
    hosts_for: dict[str, tuple[int, ...]] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()  # models the pipeline itself needs (router, embeddings)


@dataclass(frozen=True)
class Ranked:
    request_id: int
    model: str
    rank: int  # the class (see the module docstring)
    host_id: int | None  # the host it would start on, when the policy knows
    held: bool = False  # not to be claimed now (see EVICT_WANTED)

    @property
    def reason(self) -> str:
        return CLASS_NAMES[self.rank]


def _candidate_hosts(snapshot: Snapshot, model: str) -> list[HostState]:
    allowed = snapshot.hosts_for.get(model)
    return [host for host in snapshot.hosts if allowed is None or host.host_id in allowed]


def _running_on(snapshot: Snapshot, host_id: int) -> int:
    return sum(count for (host, _), count in snapshot.running.items() if host == host_id)


def _classify(snapshot: Snapshot, model: str, wanted: set[str], *, know_gpu: bool) -> tuple[int, int | None, bool]:
    """(class, host, held) for starting one request of ``model`` now."""
    if not model:
        return UNKNOWN, None, False
    hosts = _candidate_hosts(snapshot, model)
    if not know_gpu or not hosts:
        return UNKNOWN, None, False
    options: list[tuple[int, int | None, bool]] = []
    for host in hosts:
        if model in host.loaded:
            running = snapshot.running.get((host.host_id, model), 0)
            option = (LOADED if running < host.num_parallel else BUSY, host.host_id, False)
        else:
            size = snapshot.sizes.get(model, 0)
            used = sum(host.loaded.values())
            capacity = host.capacity()
            in_use = {name for name in host.loaded if snapshot.running.get((host.host_id, name), 0)}
            idle = sum(b for name, b in host.loaded.items() if name not in in_use and name not in wanted)
            if capacity is None:
                # Nothing known about its memory: loading is fine on an empty host, else worth less than waiting.
                option = (FITS if not host.loaded else EVICT_IDLE, host.host_id, False)
            elif used + size <= capacity:
                option = (FITS, host.host_id, False)
            elif used - idle + size <= capacity:
                option = (EVICT_IDLE, host.host_id, False)
            else:
                hold = host.budget is not None and _running_on(snapshot, host.host_id) > 0
                option = (EVICT_WANTED, host.host_id, hold)
        options.append(option)
    # The cheapest host; between equals, one where it need not be held back.
    return min(options, key=lambda o: (o[0], o[2]))


def rank(snapshot: Snapshot, *, now: float, aging: float) -> list[Ranked]:
    """Every waiting request, the one to start first first. Held requests come last, in the same order."""
    know_gpu = bool(snapshot.hosts) and all(host.known for host in snapshot.hosts)
    waiting_for = Counter(w.model for w in snapshot.waiting if w.model)
    wanted = set(waiting_for) | set(snapshot.keep)
    oldest: dict[str, float] = {}
    for w in snapshot.waiting:
        oldest[w.model] = min(oldest.get(w.model, math.inf), w.queued_at)
    classes = {
        model: _classify(snapshot, model, wanted, know_gpu=know_gpu) for model in {w.model for w in snapshot.waiting}
    }

    turns = _turns(snapshot.waiting)
    keyed = []
    for w in snapshot.waiting:
        cls, host, held = classes[w.model]
        overdue = w.fifo_turn is not None and now - w.fifo_turn > aging
        if overdue:
            cls, held = OVERDUE, False
            key: tuple[float, ...] = (OVERDUE, 0, w.queued_at, 0, w.queued_at, w.request_id)
        elif not know_gpu:
            # A host did not answer /api/ps: first in, first out (overdue requests still go first).
            key = (cls, 0, 0, 0, w.queued_at, w.request_id)
        else:
            key = (cls, -waiting_for[w.model], oldest[w.model], turns[w.request_id], w.queued_at, w.request_id)
        keyed.append((held, key, Ranked(w.request_id, w.model, cls, host, held)))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [ranked for _, _, ranked in keyed]


def _turns(waiting: Iterable[Waiting]) -> dict[int, int]:
    """Each request's turn among its user's waiting requests for the same model (0 for the oldest)."""
    seen: dict[tuple[str, int], int] = defaultdict(int)
    turns = {}
    for w in sorted(waiting, key=lambda w: (w.queued_at, w.request_id)):
        turns[w.request_id] = seen[(w.model, w.user_id)]
        seen[(w.model, w.user_id)] += 1
    return turns


def fifo_turn(*, queued_at: float, ahead: int, slots: int, service_seconds: float) -> float:
    """When arrival order would start a request that found ``ahead`` earlier ones unfinished as it arrived.

    ``slots`` answers run at once, each ``service_seconds`` long: the first
    ``slots`` start at once, then one more each time one of those ends.
    """
    slots = max(slots, 1)
    rounds = max(0, ahead - slots + 1)
    return queued_at + math.ceil(rounds / slots) * service_seconds


def fifo(waiting: Sequence[Waiting]) -> list[Ranked]:
    """Arrival order, for the ``fifo`` scheduler (and for comparison)."""
    ordered = sorted(waiting, key=lambda w: (w.queued_at, w.request_id))
    return [Ranked(w.request_id, w.model, LOADED, None) for w in ordered]


def to_release(snapshot: Snapshot, host_id: int, model: str) -> list[str]:
    """Idle models to unload on ``host_id`` before loading ``model`` there, least wanted first.

    Models someone waits for, that run, or that the pipeline keeps are never
    chosen; an empty list when ``model`` fits already or nothing idle helps.
    """
    host = next((h for h in snapshot.hosts if h.host_id == host_id), None)
    if host is None:
        return []
    capacity = host.capacity()
    if capacity is None:
        return []
    wanted = {w.model for w in snapshot.waiting if w.model} | set(snapshot.keep)
    others = {name: size for name, size in host.loaded.items() if name != model}
    need = sum(others.values()) + snapshot.sizes.get(model, host.loaded.get(model, 0)) - capacity
    chosen: list[str] = []
    for name, size in sorted(others.items(), key=lambda item: -item[1]):
        if need <= 0:
            break
        if name in wanted or snapshot.running.get((host_id, name), 0):
            continue
        chosen.append(name)
        need -= size
    return chosen if need <= 0 else []


def estimate_waits(order: Sequence[Ranked], *, slots: int, service_seconds: float) -> dict[int, float]:
    """Rough seconds until each request in ``order`` starts: the answers ahead of it, ``slots`` at a time."""
    slots = max(slots, 1)
    # The first ``slots`` wait, on average, for half an answer already running.
    return {ranked.request_id: (index // slots + 0.5) * service_seconds for index, ranked in enumerate(order)}
