"""``bench/scheduling.py``: its lower bound, and its accounting on one short run of the real system.

The end-to-end test runs the bench's own harness once (real web and workers,
first in first out, against the GPU simulation at a strong time scale) on a
small workload and checks that what it reports agrees with what happened:
every request answered once, the loads it counts are the simulation's, its
lower bound is not beaten. It checks no timing figure against a target.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from bench.scheduling import (
    ROUTES,
    Arrival,
    analyse,
    burst,
    configure_fake,
    heavy,
    load_trace,
    lower_bound,
    never_together,
    policy_system,
    run_workload,
    scaled_timers,
    stream,
    waves,
    workers_of,
)
from tests.fake_ollama import GB, FakeOllama

SCALE = 0.05


class WorkloadTests:
    def test_the_burst_interleaves_five_routes_from_twelve_users(self) -> None:
        arrivals = burst()
        assert len(arrivals) == 36 and {a.at for a in arrivals} == {0.0}
        assert [a.route for a in arrivals[:10]] == list(ROUTES) * 2
        assert len({a.user for a in arrivals}) == 12

    def test_the_stream_is_steady_and_the_heavy_user_sends_twenty(self) -> None:
        times = [a.at for a in stream()]
        assert len(times) == 40 and {b - a for a, b in itertools.pairwise(times)} == {4.0}
        heavy_user = [a for a in heavy() if a.user == "heavy"]
        assert len(heavy_user) == 20 and len(heavy()) == 28


class LowerBoundTests:
    def test_each_missing_model_loads_once_and_the_work_is_shared_by_every_worker(self) -> None:
        requests = [{"model": m, "arrival": 0.0} for m in ("a", "a", "b", "b")]
        bound = lower_bound(
            requests,
            resident=set(),
            load_seconds={"a": 2.0, "b": 5.0},
            generation={"a": [10.0, 10.0], "b": [10.0, 10.0]},
            concurrency=4,
        )
        assert (bound.loads, bound.load_seconds) == (2, 7.0)
        # work: nothing runs before the first load (2 s), then 40 s over 4 workers;
        # loading: 7 s of loads one after the other, then 10 s; arrival: 0 + 5 + 10;
        # model: b's load, then its 20 s over every worker (no slot limit given).
        assert bound.parts == {"work": 12.0, "loading": 17.0, "arrival": 15.0, "model": 10.0}
        assert bound.makespan == 17.0

    def test_one_models_answers_run_at_most_its_slots_at_once(self) -> None:
        # 8 answers of 10 s for one model with 2 slots: 40 s however many workers wait.
        requests = [{"model": "a", "arrival": 0.0}] * 8
        bound = lower_bound(
            requests, resident=set(), load_seconds={"a": 3.0}, generation={"a": [10.0] * 8}, concurrency=4, slots=2
        )
        assert bound.parts["work"] == 23.0  # 3 s of load, then 80 s over 4 workers
        assert bound.parts["model"] == 43.0  # 3 s of load, then 80 s over its 2 slots
        assert bound.makespan == 43.0

    def test_a_model_already_loaded_costs_no_load_and_lets_work_start_at_once(self) -> None:
        requests = [{"model": "a", "arrival": 0.0}, {"model": "a", "arrival": 30.0}]
        bound = lower_bound(
            requests, resident={"a"}, load_seconds={"a": 9.0}, generation={"a": [4.0, 6.0]}, concurrency=2
        )
        assert (bound.loads, bound.load_seconds) == (0, 0.0)
        assert bound.parts["work"] == 5.0
        assert bound.makespan == 34.0  # the last arrival at 30 s, then at least the shortest answer of its model

    def test_two_models_that_never_fit_together_run_one_after_the_other_with_a_load_between(self) -> None:
        # a (loaded) has 6 answers of 10 s over 2 slots: 30 s; b one answer of 8 s after its 5 s load.
        # a first: 30 + 5 + 8; b first: 5 + 8, then a loaded again (3 s), then 30 s.
        requests = [{"model": "a", "arrival": 0.0}] * 6 + [{"model": "b", "arrival": 0.0}]
        bound = lower_bound(
            requests,
            resident={"a"},
            load_seconds={"a": 3.0, "b": 5.0},
            generation={"a": [10.0] * 6, "b": [8.0]},
            concurrency=4,
            slots=2,
            apart={frozenset({"a", "b"})},
        )
        assert bound.parts["model"] == 30.0
        assert bound.parts["apart"] == 43.0
        assert bound.makespan == 43.0

    def test_models_too_big_to_share_the_gpu_are_found_by_their_sizes(self) -> None:
        models = [SimpleNamespace(name=n, size=s * GB) for n, s in (("a", 14), ("b", 14), ("c", 5))]
        assert never_together(models, vram=24 * GB) == {frozenset({"a", "b"})}


class WavesTests:
    def test_four_waves_of_nine_each_over_three_routes(self) -> None:
        arrivals = waves()
        assert len(arrivals) == 36
        for wave in range(4):
            inside = [a for a in arrivals if 30.0 * wave <= a.at <= 30.0 * wave + 3.0]
            assert len(inside) == 9 and len({a.route for a in inside}) == 3


class ScaledTimerTests:
    def test_the_schedulers_timers_follow_the_time_scale_unless_given(self) -> None:
        assert scaled_timers(0.1, given={}) == {"SCHEDULER_AGING": "3", "SCHEDULER_PS_CACHE": "0.1"}
        assert scaled_timers(0.1, given={"SCHEDULER_AGING": "30"}) == {"SCHEDULER_PS_CACHE": "0.1"}
        assert scaled_timers(1, given={}) == {}


class LoadTraceTests:
    def test_each_load_above_the_bound_is_put_down_to_how_its_model_went(self) -> None:
        from tests.fake_ollama.gpu import Load, Unload

        gpu = SimpleNamespace(
            loads=[Load("a:1b", 1.0, 3.0), Load("b:1b", 4.0, 9.0), Load("a:1b", 10.0, 12.0), Load("c:1b", 12.0, 13.0)],
            unloads=[Unload("a:1b", 4.0, "evicted"), Unload("c:1b", 11.0, "expired")],
        )

        trace = load_trace(gpu, start=0.0, first=0.0, resident={"c:1b"})

        loads = [line for line in trace if " load " in line]
        assert [line.split(": ", 1)[1] for line in loads] == [
            "needed (counted by the bound)",
            "needed (counted by the bound)",
            "EXTRA: it had gone (evicted at 4.0 s)",
            "EXTRA: it had gone (expired at 11.0 s)",
        ]
        assert sum(" unload " in line for line in trace) == 2


@pytest.fixture
def simulated() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        configure_fake(fake, SCALE)
        yield fake


@pytest.mark.e2e
class SchedulingHarnessTests:
    def test_one_fifo_run_is_accounted_for_exactly(self, simulated: FakeOllama) -> None:
        fake = simulated
        gpu = fake.gpu
        assert gpu is not None
        arrivals = [Arrival(0.0, f"u{i % 3}", route) for i, route in enumerate(["math", "reasoning", "vision"] * 3)]
        arrivals.append(Arrival(5.0, "late", "math"))
        config = "production" if os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql")) else "embedded"

        with policy_system(config, fake, "fifo", {}) as system:
            result = run_workload(system, "burst", time_scale=SCALE, timeout=300, arrivals=arrivals)
            figures = analyse("fifo", result, fake, workers=workers_of(system))

        rows = result["requests"]
        # Every request was accepted, answered once, by the route's model.
        assert [row.get("status") for row in rows] == ["done"] * len(arrivals), rows
        assert figures.answered == figures.requests == len(arrivals)
        assert figures.refused == figures.failed == figures.unfinished == 0
        models = {route: info["model"] for route, info in result["routes"].items()}
        assert [row["model"] for row in rows] == [models[row["route"]] for row in rows]
        start = gpu.sim_time(result["started"])
        answered_on_gpu = [b for b in gpu.busy if b.started >= start and b.completed]
        assert len(answered_on_gpu) == len(arrivals)  # the simulation generated each answer exactly once

        # The loads it counts are the simulation's own record of this workload, timed as the simulation timed
        # them. Each took at least its price at the model's size (0.5 s a GB); on a loaded machine the event
        # loop adds to it, magnified by the time scale, so only the lower end is the size's.
        loads = [load for load in gpu.loads if load.started >= start]
        assert figures.loads == len(loads) >= 1
        assert figures.load_seconds == pytest.approx(sum(load.seconds for load in loads))
        sizes = {spec.name: spec.size for spec in fake.models}
        for load in loads:
            assert load.seconds >= sizes[load.model] / GB * 0.5 * 0.99, load
        assert {load.model for load in loads} <= set(models.values())
        assert result["warmed"], "the system's warm-up ran before the clock started"

        # Its figures hang together, and the lower bound is one: nothing beat it.
        assert figures.bound is not None
        assert figures.loads >= figures.bound.loads
        assert figures.makespan >= figures.bound.makespan
        assert max(figures.latencies) <= figures.makespan + 1e-6
        assert sorted(len(w) for w in figures.waits.values()) == sorted(
            [sum(a.user == user for a in arrivals) for user in {a.user for a in arrivals}]
        )
        assert 0.0 < figures.busy_share <= 1.0
