"""The scheduling policy: in which order waiting requests should start, given what the GPUs hold.

Pure functions over a snapshot (no Django, no I/O), so the policy is tested
directly; ``pipeline.queue`` builds the snapshot from the database and
Ollama's ``/api/ps`` and claims in the order returned here.

Cheapest to start first (the "class" of a request, lowest first):

0. **overdue**: it has waited more than ``aging`` seconds beyond its
   first-in-first-out turn (``fifo_turn``: when arrival order would have
   started it). Overdue requests go before everything else: among them, the
   cheapest to start first (by the classes below), then the model whose
   oldest request is oldest, a model's requests together. They are not held
   back for long: one whose model's slots are all busy (it could not start
   sooner for being claimed) goes after the requests that can start at once,
   before the other busy ones. An overdue swap (a guess, or an eviction of a
   model in use or waited for) waits while another model is loading on that
   host, and yields to the requests of the models loaded there that were
   waiting when the first swap there became overdue, for one more ``aging``
   period at most: pushed out with those still waiting, a model is loaded
   again for them, and the next overdue swap pushes out the one just loaded
   (a burst over more models than fit made nine loads where four do).
1. **loaded**: its model is loaded on a host that has a free parallel slot.
2. **unknown**: its model is not known before routing (the classifier decides).
3. **fits**: its model is not loaded but fits in the host's free memory.
4. **might fit**: with no VRAM budget set, nobody knows yet whether it fits
   (more than the host was ever seen to hold, less than what once made Ollama
   evict): it is tried, one load at a time per host, since a worker left idle
   costs as much as the swap it might cause, and what happens is learned.
   Held back, though, when it could only fit by pushing out a model in use or
   waited for while the models in use already have a slot with work (running
   or waiting) for every worker, and while a model others wait for is loaded
   and one in use that nobody waits for is finishing (its memory is there to
   take once it is done, where a guess now could push out the wanted one).
5. **busy**: its model is loaded, every slot busy (Ollama queues it behind them).
6. **evict idle**: it needs memory that only models nobody waits for hold.
7. **evict wanted**: it would push out a model that others wait for or use.
   When the host's memory is known to be too small for it (a VRAM budget set
   by the operator, or an eviction seen at that much memory or that many
   models) and work still runs there, it is held back (not claimed) until
   memory frees or it is overdue: a swap the queue does not need costs a load
   now and another when the pushed-out model's requests come back.

A model that a claimed request is loading counts as loaded (its memory is
spoken for) although ``/api/ps`` does not show it yet, and while one is
loading on a host nothing else that is not known to fit starts loading there:
Ollama loads one model at a time, and a second guess taken on a view a load
is about to change is how several workers swap out each other's models.

Within a class, models with more waiting requests come first, then the larger
model (its answers are the slowest: generating reads every weight once per
token, so its queue left for last is what ends a burst), then the oldest
request; and within a model users take turns: a user's n-th waiting request
for a model ranks after every other user's (n-1)-th.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

OVERDUE, LOADED, UNKNOWN, FITS, MIGHT_FIT, BUSY, EVICT_IDLE, EVICT_WANTED = range(8)
CLASS_NAMES = {
    OVERDUE: "overdue",
    LOADED: "model loaded, slot free",
    UNKNOWN: "model chosen when it starts",
    FITS: "model fits in free memory",
    MIGHT_FIT: "model might fit (memory not known yet)",
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
    loaded: dict[str, int]  # model -> bytes it holds (or is loading for a claimed request)
    known: bool = True  # False when /api/ps could not be read: nothing is known about this host
    # Learned when no budget is set: the least memory, and the fewest models, whose loading made Ollama
    # evict a model it still had a use for (None: never seen).
    too_much: int | None = None
    too_many: int | None = None
    loading: frozenset[str] = frozenset()  # models claimed requests are loading (not in /api/ps yet)

    def capacity(self) -> int | None:
        """The most memory models may take here: the budget, else just under what was seen not to fit."""
        if self.budget is not None:
            return self.budget
        if self.too_much is not None:
            return max(self.too_much - 1, self.learned_budget)
        return self.learned_budget or None

    def fit(self, *, used: int, models: int) -> bool | None:
        """Whether ``models`` models holding ``used`` bytes fit here: True, False, or None when not known."""
        if self.too_many is not None and models >= self.too_many:
            return False
        if self.budget is not None:
            return used <= self.budget
        if self.too_much is not None and used >= self.too_much:
            return False
        if models <= 1 or used <= self.learned_budget:
            return True  # one model alone always loads (Ollama spills what does not fit onto the CPU)
        return None


@dataclass(frozen=True)
class Snapshot:
    waiting: Sequence[Waiting]
    hosts: Sequence[HostState]
    running: dict[tuple[int, str], int]  # (host_id, model) -> requests running
    sizes: dict[str, int]  # model -> bytes (what it held when last loaded, else its size on disk)
    # model -> the hosts that have it; a model missing here may run on any host.
    hosts_for: dict[str, tuple[int, ...]] = field(default_factory=dict)
    keep: frozenset[str] = frozenset()  # models the pipeline itself needs (router, embeddings)
    workers: int = 0  # requests the workers run at once (0: not known)


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


def _classify(
    snapshot: Snapshot, model: str, wanted: set[str], waiting_for: Counter[str], *, know_gpu: bool
) -> tuple[int, int | None, bool]:
    """(class, host, held) for starting one request of ``model`` now."""
    if not model:
        return UNKNOWN, None, False
    hosts = _candidate_hosts(snapshot, model)
    if not know_gpu or not hosts:
        return UNKNOWN, None, False
    options: list[tuple[int, int | None, bool]] = []
    for host in hosts:
        option: tuple[int, int | None, bool]
        if model in host.loaded:
            running = snapshot.running.get((host.host_id, model), 0)
            option = (LOADED if running < host.num_parallel else BUSY, host.host_id, False)
        else:
            option = _classify_load(snapshot, host, model, wanted, waiting_for)
        options.append(option)
    # The cheapest host; between equals, one where it need not be held back.
    return min(options, key=lambda o: (o[0], o[2]))


def _classify_load(
    snapshot: Snapshot, host: HostState, model: str, wanted: set[str], waiting_for: Counter[str]
) -> tuple[int, int | None, bool]:
    """(class, host, held) for loading ``model`` on ``host``, where it is not loaded."""
    size = snapshot.sizes.get(model, 0)
    used = sum(host.loaded.values())
    count = len(host.loaded)
    in_use = {name for name in host.loaded if snapshot.running.get((host.host_id, name), 0)}
    idle = {name: b for name, b in host.loaded.items() if name not in in_use and name not in wanted}
    busy_host = _running_on(snapshot, host.host_id) > 0
    fits = host.fit(used=used + size, models=count + 1)
    if fits:
        return FITS, host.host_id, False
    after_release = host.fit(used=used - sum(idle.values()) + size, models=count - len(idle) + 1)
    if fits is None:
        # Nobody knows: try it, one load at a time per host. Should it not fit, Ollama evicts idle models first;
        # when those would not make room, it pushes out a model in use or waited for, a risk worth taking only
        # while the models in use leave workers without work: fewer slots with work for them (running or
        # waiting, at most ``num_parallel`` per model) than workers. A slot nobody waits for keeps no worker
        # busy: one heavy user's model with its two slots full leaves the other workers free to load another.
        work_slots = sum(
            min(host.num_parallel, snapshot.running.get((host.host_id, name), 0) + waiting_for[name])
            for name in host.loaded
            if name in in_use or name in wanted
        )
        crowded = not after_release and busy_host and 0 < snapshot.workers <= work_slots
        # A model in use that nobody waits for is finishing: once its last answers end it is idle, and the
        # guess can take its memory, where now Ollama could push out (whichever is idle for a moment between
        # two answers) a model others still wait for. So while one is loaded that others wait for, the guess
        # waits for the finishing ones.
        finishing = {name: b for name, b in host.loaded.items() if name in in_use and name not in wanted}
        soon = host.fit(
            used=used - sum(idle.values()) - sum(finishing.values()) + size,
            models=count - len(idle) - len(finishing) + 1,
        )
        others_wait = any(name in wanted for name in host.loaded)
        wait_for_finish = not after_release and others_wait and bool(finishing) and soon is not False
        return MIGHT_FIT, host.host_id, bool(host.loading) or crowded or wait_for_finish
    if after_release:
        return EVICT_IDLE, host.host_id, False
    # Known not to fit without pushing out a model in use or waited for: wait for memory while work runs.
    return EVICT_WANTED, host.host_id, busy_host


def rank(snapshot: Snapshot, *, now: float, aging: float) -> list[Ranked]:
    """Every waiting request, the one to start first first. Held requests come last, in the same order."""
    know_gpu = bool(snapshot.hosts) and all(host.known for host in snapshot.hosts)
    waiting_for = Counter(w.model for w in snapshot.waiting if w.model)
    wanted = set(waiting_for) | set(snapshot.keep)
    oldest: dict[str, float] = {}
    for w in snapshot.waiting:
        oldest[w.model] = min(oldest.get(w.model, math.inf), w.queued_at)
    classes = {
        model: _classify(snapshot, model, wanted, waiting_for, know_gpu=know_gpu)
        for model in {w.model for w in snapshot.waiting}
    }

    turns = _turns(snapshot.waiting)
    loading_hosts = {host.host_id for host in snapshot.hosts if host.loading}
    # Per host, when the first overdue request that might push out a model in use or waited for there became
    # overdue, and which loaded models had requests waiting by then: such a swap yields to those (see below).
    swap_since: dict[int | None, float] = {}
    for w in snapshot.waiting:
        cls, host, _ = classes[w.model]
        if cls in (MIGHT_FIT, EVICT_WANTED) and w.fifo_turn is not None and now - w.fifo_turn > aging:
            swap_since[host] = min(swap_since.get(host, math.inf), w.fifo_turn + aging)
    loaded_on: dict[int | None, dict[str, int]] = {host.host_id: host.loaded for host in snapshot.hosts}
    drained_first: dict[int | None, set[str]] = defaultdict(set)
    for w in snapshot.waiting:
        _, host, _ = classes[w.model]
        if host in swap_since and w.model in loaded_on.get(host, {}) and w.queued_at <= swap_since[host]:
            drained_first[host].add(w.model)
    keyed = []
    for w in snapshot.waiting:
        cls, host, held = classes[w.model]
        key: tuple[float, ...]
        overdue = w.fifo_turn is not None and now - w.fifo_turn > aging
        if overdue:
            # Before everything else, but the cheapest to start among them first and a model's together:
            # overdue requests in plain arrival order would swap models at every claim. One whose model's
            # slots are all busy cannot start sooner for being claimed now (it would queue in Ollama and
            # hold a worker another model could use), so it goes after what can start at once.
            first: float = BUSY - 0.5 if cls == BUSY else OVERDUE
            key = (first, cls, oldest[w.model], 0, w.queued_at, w.request_id)
            if cls in (MIGHT_FIT, EVICT_WANTED):
                assert w.fifo_turn is not None
                # Never held back for long, but a guess or a swap waits while another model loads there (Ollama
                # loads one at a time, and one overdue swap claimed behind another is how four models get asked
                # for at once), and, for one more aging period at most, while a model loaded there still has
                # requests that were waiting when the first swap there became overdue: pushed out with them
                # still waiting, that model would be loaded again for them, and the next overdue swap would
                # push out this one the same way.
                yields = bool(drained_first[host] - {w.model}) and now - w.fifo_turn <= 2 * aging
                held = host in loading_hosts or yields
            else:
                held = False
            cls = OVERDUE
        elif not know_gpu:
            # A host did not answer /api/ps: first in, first out (overdue requests still go first).
            key = (cls, 0, 0, 0, w.queued_at, w.request_id)
        else:
            size = snapshot.sizes.get(w.model, 0)  # as many waiting: the larger (slower) model's first
            key = (cls, -waiting_for[w.model], -size, oldest[w.model], turns[w.request_id], w.queued_at, w.request_id)
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
    """Idle models to unload on ``host_id`` before loading ``model`` there, largest first.

    Only when ``model`` is known not to fit beside what is loaded (a budget, or
    an eviction seen at that much memory or that many models), and only as many
    as it takes. Models someone waits for, that run, or that the pipeline keeps
    are never chosen; an empty list when ``model`` fits already (or might) or
    nothing idle helps.
    """
    host = next((h for h in snapshot.hosts if h.host_id == host_id), None)
    if host is None:
        return []
    wanted = {w.model for w in snapshot.waiting if w.model} | set(snapshot.keep)
    others = {name: size for name, size in host.loaded.items() if name != model}
    size = snapshot.sizes.get(model, host.loaded.get(model, 0))
    if host.fit(used=sum(others.values()) + size, models=len(others) + 1) is not False:
        return []
    chosen: list[str] = []
    for name in sorted(others, key=lambda name: -others[name]):
        if name in wanted or snapshot.running.get((host_id, name), 0):
            continue
        chosen.append(name)
        left = {n: b for n, b in others.items() if n not in chosen}
        if host.fit(used=sum(left.values()) + size, models=len(left) + 1) is not False:
            return chosen
    return []


def estimate_waits(order: Sequence[Ranked], *, slots: int, service_seconds: float) -> dict[int, float]:
    """Rough seconds until each request in ``order`` starts: the answers ahead of it, ``slots`` at a time."""
    slots = max(slots, 1)
    # The first ``slots`` wait, on average, for half an answer already running.
    return {ranked.request_id: (index // slots + 0.5) * service_seconds for index, ranked in enumerate(order)}
