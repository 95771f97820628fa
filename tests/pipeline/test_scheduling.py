"""The scheduling policy as a pure function over a snapshot (pipeline.scheduling)."""

from __future__ import annotations

from pipeline.scheduling import (
    BUSY,
    EVICT_IDLE,
    EVICT_WANTED,
    FITS,
    LOADED,
    MIGHT_FIT,
    OVERDUE,
    UNKNOWN,
    HostState,
    Snapshot,
    Waiting,
    estimate_waits,
    fifo,
    fifo_turn,
    rank,
    to_release,
)

GB = 1_000_000_000
NOW = 1000.0


def host(
    host_id: int = 1,
    *,
    loaded: dict[str, int] | None = None,
    budget: int | None = 24 * GB,
    parallel: int = 2,
    known: bool = True,
) -> HostState:
    return HostState(host_id, budget, 0, parallel, loaded or {}, known=known)


def waiting(request_id: int, model: str, *, user: int = 1, at: float | None = None, turn: float | None = None):
    return Waiting(request_id, user, model, at if at is not None else float(request_id), turn)


def ids(snapshot: Snapshot, *, aging: float = 30.0) -> list[int]:
    return [ranked.request_id for ranked in rank(snapshot, now=NOW, aging=aging)]


SIZES = {"big:15b": 15 * GB, "mid:8b": 6 * GB, "small:3b": 3 * GB, "other:7b": 5 * GB}


class RankTests:
    def test_a_loaded_model_with_a_free_slot_starts_before_an_older_request_for_another_model(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b")],
            hosts=[host(loaded={"mid:8b": 6 * GB})],
            running={},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [r.request_id for r in ranked] == [2, 1]
        assert ranked[0].rank == LOADED and ranked[0].host_id == 1
        assert ranked[1].rank == FITS

    def test_every_slot_busy_ranks_after_a_model_that_fits_in_free_memory(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "mid:8b"), waiting(2, "small:3b")],
            hosts=[host(loaded={"mid:8b": 6 * GB}, parallel=1)],
            running={(1, "mid:8b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(2, FITS), (1, BUSY)]

    def test_among_models_that_fit_the_one_with_most_waiting_goes_first(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "small:3b"), waiting(2, "mid:8b"), waiting(3, "mid:8b")],
            hosts=[host()],
            running={},
            sizes=SIZES,
        )
        assert ids(snapshot) == [2, 3, 1]

    def test_between_models_with_as_many_waiting_the_larger_one_goes_first(self) -> None:
        # Its answers are the slowest: left for last, its queue is what ends a burst.
        snapshot = Snapshot(
            waiting=[waiting(1, "mid:8b"), waiting(2, "big:15b"), waiting(3, "mid:8b"), waiting(4, "big:15b")],
            hosts=[host(budget=40 * GB)],
            running={},
            sizes=SIZES,
        )
        assert ids(snapshot) == [2, 4, 1, 3]

    def test_within_a_model_users_take_turns(self) -> None:
        heavy = [waiting(n, "mid:8b", user=1) for n in range(1, 6)]
        light = waiting(6, "mid:8b", user=2)
        snapshot = Snapshot(waiting=[*heavy, light], hosts=[host(loaded={"mid:8b": 6 * GB})], running={}, sizes=SIZES)
        assert ids(snapshot) == [1, 6, 2, 3, 4, 5]

    def test_a_request_past_its_fifo_turn_by_more_than_the_aging_bound_goes_first(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b", turn=NOW - 31), waiting(2, "mid:8b")],
            hosts=[host(loaded={"mid:8b": 6 * GB})],
            running={},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(1, OVERDUE), (2, LOADED)]

    def test_a_request_within_the_aging_bound_of_its_fifo_turn_keeps_its_place(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b", turn=NOW - 29), waiting(2, "mid:8b")],
            hosts=[host(loaded={"mid:8b": 6 * GB})],
            running={},
            sizes=SIZES,
        )
        assert ids(snapshot) == [2, 1]

    def test_a_model_that_needs_memory_others_use_is_held_back_while_work_runs_under_a_set_budget(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b")],
            hosts=[host(loaded={"mid:8b": 6 * GB, "other:7b": 5 * GB}, budget=20 * GB)],
            running={(1, "mid:8b"): 2, (1, "other:7b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank, r.held) for r in ranked] == [(2, BUSY, False), (1, EVICT_WANTED, True)]

    def test_without_a_budget_a_model_beyond_what_was_seen_might_fit_and_is_tried(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b")],
            hosts=[HostState(1, None, 12 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB})],
            running={(1, "mid:8b"): 1, (1, "other:7b"): 1},
            sizes=SIZES,
        )
        (ranked,) = rank(snapshot, now=NOW, aging=30)
        assert ranked.rank == MIGHT_FIT and not ranked.held

    def test_a_model_that_might_fit_ranks_before_queueing_behind_busy_slots(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "mid:8b"), waiting(2, "small:3b")],
            hosts=[HostState(1, None, 6 * GB, 1, {"mid:8b": 6 * GB})],
            running={(1, "mid:8b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(2, MIGHT_FIT), (1, BUSY)]

    def test_while_a_claimed_request_loads_its_model_no_other_guess_is_loaded_on_that_host(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "small:3b"), waiting(2, "other:7b")],
            # mid:8b is loading for a claimed request (the DB knows; /api/ps may not show it yet).
            hosts=[
                HostState(1, None, 6 * GB, 2, {"big:15b": 15 * GB, "mid:8b": 6 * GB}, loading=frozenset({"mid:8b"}))
            ],
            running={(1, "big:15b"): 2, (1, "mid:8b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert {(r.rank, r.held) for r in ranked} == {(MIGHT_FIT, True)}

    def test_a_request_claimed_but_not_yet_in_api_ps_fills_its_models_second_slot(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b")],
            hosts=[
                HostState(1, None, 15 * GB, 2, {"big:15b": 15 * GB, "mid:8b": 6 * GB}, loading=frozenset({"mid:8b"}))
            ],
            running={(1, "big:15b"): 2, (1, "mid:8b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(2, LOADED), (1, BUSY)]

    def test_memory_seen_to_make_ollama_evict_is_not_tried_again_while_work_runs(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b"), waiting(3, "other:7b")],
            hosts=[HostState(1, None, 12 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB}, too_much=26 * GB)],
            running={(1, "mid:8b"): 2, (1, "other:7b"): 2},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank, r.held) for r in ranked] == [
            (2, BUSY, False),
            (3, BUSY, False),
            (1, EVICT_WANTED, True),
        ]

    def test_a_model_count_seen_to_make_ollama_evict_is_not_tried_again_while_work_runs(self) -> None:
        loaded = {"mid:8b": 6 * GB, "other:7b": 5 * GB}
        snapshot = Snapshot(
            waiting=[waiting(1, "small:3b"), waiting(2, "mid:8b"), waiting(3, "other:7b")],
            hosts=[HostState(1, None, 20 * GB, 2, loaded, too_many=3)],
            running={(1, "mid:8b"): 2, (1, "other:7b"): 2},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert ranked[-1].request_id == 1 and ranked[-1].rank == EVICT_WANTED and ranked[-1].held

    def test_a_held_back_request_that_becomes_overdue_goes_first(self) -> None:
        # Overdue by more than twice the aging bound: past yielding to mid's request that waited before it.
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b", turn=NOW - 61), waiting(2, "mid:8b")],
            hosts=[HostState(1, None, 12 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB}, too_much=26 * GB)],
            running={(1, "mid:8b"): 2, (1, "other:7b"): 2},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank, r.held) for r in ranked] == [(1, OVERDUE, False), (2, BUSY, False)]

    def test_with_nothing_running_a_model_known_not_to_fit_is_not_held(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b")],
            hosts=[HostState(1, None, 12 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB}, too_much=26 * GB)],
            running={},
            sizes=SIZES,
        )
        (ranked,) = rank(snapshot, now=NOW, aging=30)
        # Both loaded models are idle and nobody waits for them: make_room unloads them first.
        assert ranked.rank == EVICT_IDLE and not ranked.held

    def test_memory_of_idle_models_nobody_waits_for_counts_as_free_to_take(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b")],
            hosts=[host(loaded={"mid:8b": 6 * GB, "other:7b": 5 * GB}, budget=20 * GB)],
            running={},
            sizes=SIZES,
        )
        (ranked,) = rank(snapshot, now=NOW, aging=30)
        assert ranked.rank == EVICT_IDLE and not ranked.held

    def test_a_model_pinned_to_one_host_is_judged_by_that_hosts_memory(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "small:3b")],
            hosts=[host(1, loaded={"mid:8b": 6 * GB}, budget=8 * GB), host(2, budget=24 * GB)],
            running={(1, "mid:8b"): 1},
            sizes=SIZES,
            hosts_for={"big:15b": (1,), "small:3b": (2,)},
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank, r.host_id) for r in ranked] == [(2, FITS, 2), (1, EVICT_WANTED, 1)]

    def test_a_model_loaded_on_another_host_than_its_own_does_not_count_as_loaded(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "mid:8b")],
            hosts=[host(1), host(2, loaded={"mid:8b": 6 * GB})],
            running={},
            sizes=SIZES,
            hosts_for={"mid:8b": (1,)},
        )
        (ranked,) = rank(snapshot, now=NOW, aging=30)
        assert (ranked.rank, ranked.host_id) == (FITS, 1)

    def test_a_request_whose_model_only_routing_knows_ranks_between_loaded_and_loading(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, ""), waiting(3, "mid:8b")],
            hosts=[host(loaded={"mid:8b": 6 * GB})],
            running={},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(3, LOADED), (2, UNKNOWN), (1, FITS)]

    def test_when_a_host_did_not_answer_the_order_is_first_in_first_out(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b"), waiting(3, "small:3b")],
            hosts=[host(known=False)],
            running={},
            sizes=SIZES,
        )
        assert ids(snapshot) == [1, 2, 3]


class FifoTurnTests:
    def test_with_free_slots_its_turn_is_its_arrival(self) -> None:
        assert fifo_turn(queued_at=100.0, ahead=3, slots=4, service_seconds=10) == 100.0

    def test_behind_a_full_house_it_waits_one_answer_per_round_of_slots(self) -> None:
        assert fifo_turn(queued_at=100.0, ahead=4, slots=4, service_seconds=10) == 110.0
        assert fifo_turn(queued_at=100.0, ahead=11, slots=4, service_seconds=10) == 120.0
        assert fifo_turn(queued_at=100.0, ahead=12, slots=4, service_seconds=10) == 130.0


class FifoTests:
    def test_it_keeps_arrival_order_whatever_is_loaded(self) -> None:
        order = fifo([waiting(3, "a", at=5.0), waiting(1, "b", at=7.0), waiting(2, "a", at=5.0)])
        assert [r.request_id for r in order] == [2, 3, 1]


class ReleaseTests:
    def test_it_unloads_idle_models_nobody_waits_for_and_never_a_wanted_one(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b")],
            hosts=[host(loaded={"mid:8b": 6 * GB, "other:7b": 5 * GB, "small:3b": 3 * GB}, budget=24 * GB)],
            running={},
            sizes=SIZES,
        )
        assert to_release(snapshot, 1, "big:15b") == ["other:7b"]

    def test_it_keeps_the_pipelines_own_models(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b")],
            hosts=[host(loaded={"other:7b": 5 * GB, "small:3b": 3 * GB}, budget=20 * GB)],
            running={},
            sizes=SIZES,
            keep=frozenset({"other:7b"}),
        )
        assert to_release(snapshot, 1, "big:15b") == ["small:3b"]

    def test_a_model_already_loading_for_its_request_is_counted_once(self) -> None:
        # The snapshot lists a model that is loading for a running request as loaded.
        snapshot = Snapshot(
            waiting=[],
            hosts=[host(loaded={"big:15b": 15 * GB, "other:7b": 5 * GB, "small:3b": 3 * GB}, budget=20 * GB)],
            running={(1, "big:15b"): 1},
            sizes=SIZES,
        )
        assert to_release(snapshot, 1, "big:15b") == ["other:7b"]

    def test_nothing_is_released_when_the_model_fits_or_releasing_would_not_be_enough(self) -> None:
        fits = Snapshot(waiting=[], hosts=[host(loaded={"small:3b": 3 * GB})], running={}, sizes=SIZES)
        assert to_release(fits, 1, "big:15b") == []
        busy = Snapshot(
            waiting=[],
            hosts=[host(loaded={"mid:8b": 6 * GB, "other:7b": 5 * GB}, budget=16 * GB)],
            running={(1, "mid:8b"): 1},
            sizes=SIZES,
        )
        assert to_release(busy, 1, "big:15b") == []


class EstimateTests:
    def test_waits_grow_by_one_answer_per_round_of_slots(self) -> None:
        snapshot = Snapshot(
            waiting=[waiting(n, "mid:8b") for n in range(1, 6)], hosts=[host()], running={}, sizes=SIZES
        )
        waits = estimate_waits(rank(snapshot, now=NOW, aging=30), slots=2, service_seconds=10)
        assert [waits[n] for n in range(1, 6)] == [5, 5, 15, 15, 25]


class LearnedCapacityTests:
    def test_one_model_alone_always_fits_and_what_was_seen_in_use_fits_again(self) -> None:
        host_state = HostState(1, None, 19 * GB, 2, {})
        assert host_state.fit(used=30 * GB, models=1) is True
        assert host_state.fit(used=19 * GB, models=3) is True
        assert host_state.fit(used=20 * GB, models=2) is None

    def test_an_eviction_seen_at_some_memory_or_model_count_means_it_does_not_fit(self) -> None:
        host_state = HostState(1, None, 19 * GB, 2, {}, too_much=28 * GB, too_many=4)
        assert host_state.fit(used=28 * GB, models=2) is False
        assert host_state.fit(used=10 * GB, models=4) is False
        assert host_state.fit(used=25 * GB, models=2) is None

    def test_idle_models_are_released_only_when_the_model_is_known_not_to_fit(self) -> None:
        loaded = {"mid:8b": 6 * GB, "other:7b": 5 * GB}
        unknown = Snapshot(waiting=[], hosts=[HostState(1, None, 11 * GB, 2, loaded)], running={}, sizes=SIZES)
        known = Snapshot(
            waiting=[], hosts=[HostState(1, None, 11 * GB, 2, loaded, too_much=24 * GB)], running={}, sizes=SIZES
        )
        assert to_release(unknown, 1, "big:15b") == []
        assert to_release(known, 1, "big:15b") == ["mid:8b"]

    def test_too_many_models_releases_an_idle_one_though_memory_would_do(self) -> None:
        loaded = {"mid:8b": 6 * GB, "other:7b": 5 * GB}
        snapshot = Snapshot(
            waiting=[waiting(1, "small:3b"), waiting(2, "mid:8b")],
            hosts=[HostState(1, None, 20 * GB, 2, loaded, too_many=3)],
            running={},
            sizes=SIZES,
        )
        assert to_release(snapshot, 1, "small:3b") == ["other:7b"]


class OverdueTests:
    def test_overdue_requests_start_cheapest_first_and_a_models_together(self) -> None:
        late = NOW - 70  # overdue for longer than another aging period: no swap yields any more
        snapshot = Snapshot(
            waiting=[
                waiting(1, "big:15b", at=1.0, turn=late),
                waiting(2, "mid:8b", at=2.0, turn=late),
                waiting(3, "big:15b", at=3.0, turn=late),
                waiting(4, "small:3b", at=4.0),
            ],
            hosts=[host(loaded={"mid:8b": 6 * GB}, budget=20 * GB)],
            running={(1, "mid:8b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(2, OVERDUE), (1, OVERDUE), (3, OVERDUE), (4, FITS)]

    def test_an_overdue_swap_waits_while_another_model_loads_on_its_host(self) -> None:
        late = NOW - 40
        loaded = {"mid:8b": 6 * GB, "other:7b": 5 * GB}
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b", turn=late), waiting(2, "mid:8b", turn=late)],
            hosts=[HostState(1, None, 11 * GB, 2, loaded, too_much=24 * GB, loading=frozenset({"other:7b"}))],
            running={(1, "mid:8b"): 1, (1, "other:7b"): 1},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank, r.held) for r in ranked] == [(2, OVERDUE, False), (1, OVERDUE, True)]

    def test_an_overdue_request_behind_busy_slots_lets_a_model_that_can_start_go_first(self) -> None:
        late = NOW - 40
        snapshot = Snapshot(
            waiting=[waiting(1, "mid:8b", turn=late), waiting(2, "small:3b", at=50.0), waiting(3, "mid:8b", at=60.0)],
            hosts=[host(loaded={"mid:8b": 6 * GB}, budget=20 * GB)],
            running={(1, "mid:8b"): 2},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(2, FITS), (1, OVERDUE), (3, BUSY)]


class MightFitTests:
    def snapshot(self, *, workers: int, waiting_for_both: bool) -> Snapshot:
        queue = [waiting(1, "big:15b"), waiting(2, "mid:8b")]
        if waiting_for_both:
            queue.append(waiting(3, "other:7b"))
        return Snapshot(
            waiting=queue,
            hosts=[HostState(1, None, 11 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB})],
            running={(1, "mid:8b"): 2, (1, "other:7b"): 2},
            sizes=SIZES,
            workers=workers,
        )

    def test_a_guess_that_could_push_out_a_model_in_use_waits_while_those_models_keep_every_worker_busy(self) -> None:
        ranked = rank(self.snapshot(workers=4, waiting_for_both=True), now=NOW, aging=30)
        assert [(r.request_id, r.rank, r.held) for r in ranked][-1] == (1, MIGHT_FIT, True)

    def test_with_more_workers_than_the_loaded_models_slots_the_guess_is_tried(self) -> None:
        ranked = rank(self.snapshot(workers=6, waiting_for_both=True), now=NOW, aging=30)
        assert (ranked[0].request_id, ranked[0].rank, ranked[0].held) == (1, MIGHT_FIT, False)

    def test_a_slot_nobody_waits_for_keeps_no_worker_busy_so_the_guess_is_tried(self) -> None:
        # One model's two slots are full with its queue behind them; the other has one request waiting and
        # none running: three slots have work for four workers, so the fourth may try loading another model.
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b"), waiting(3, "mid:8b"), waiting(4, "other:7b")],
            hosts=[HostState(1, None, 11 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB})],
            running={(1, "mid:8b"): 2},
            sizes=SIZES,
            workers=4,
        )
        guess = next(r for r in rank(snapshot, now=NOW, aging=30) if r.request_id == 1)
        assert (guess.rank, guess.held) == (MIGHT_FIT, False)

    def test_a_guess_waits_for_a_finishing_model_while_another_loaded_one_is_waited_for(self) -> None:
        # mid's slots are full with more waiting; other runs its last answer. Loading big now could push out
        # mid (idle for a moment between two answers); once other is done, its memory is there to take.
        def snapshot(other_running: int) -> Snapshot:
            return Snapshot(
                waiting=[waiting(1, "big:15b"), waiting(2, "mid:8b"), waiting(3, "mid:8b")],
                hosts=[HostState(1, None, 11 * GB, 2, {"mid:8b": 6 * GB, "other:7b": 5 * GB})],
                running={(1, "mid:8b"): 2, (1, "other:7b"): other_running},
                sizes=SIZES,
                workers=4,
            )

        ranked = rank(snapshot(other_running=1), now=NOW, aging=30)
        assert [(r.request_id, r.held) for r in ranked][-1] == (1, True)
        guess = next(r for r in rank(snapshot(other_running=0), now=NOW, aging=30) if r.request_id == 1)
        assert not guess.held


class DrainTests:
    def snapshot(self, *, last_at: float) -> Snapshot:
        late = NOW - 40  # overdue since NOW - 10
        return Snapshot(
            waiting=[waiting(1, "big:15b", at=1.0, turn=late), waiting(2, "mid:8b", at=last_at)],
            hosts=[host(loaded={"mid:8b": 6 * GB, "other:7b": 5 * GB}, budget=20 * GB)],
            running={(1, "mid:8b"): 1, (1, "other:7b"): 1},
            sizes=SIZES,
        )

    def test_a_loaded_models_last_request_goes_before_an_overdue_swap_that_would_push_the_model_out(self) -> None:
        ranked = rank(self.snapshot(last_at=2.0), now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(2, LOADED), (1, OVERDUE)]

    def test_a_request_that_came_after_the_overdue_one_was_overdue_does_not_jump_it(self) -> None:
        ranked = rank(self.snapshot(last_at=NOW - 5), now=NOW, aging=30)
        assert [(r.request_id, r.rank) for r in ranked] == [(1, OVERDUE), (2, LOADED)]

    def test_an_overdue_swap_yields_to_every_request_the_loaded_model_had_waiting_for_one_more_aging_period(
        self,
    ) -> None:
        snapshot = self.snapshot(last_at=2.0)
        more = Snapshot(
            waiting=[*snapshot.waiting, waiting(3, "mid:8b", at=3.0)],
            hosts=snapshot.hosts,
            running=snapshot.running,
            sizes=SIZES,
        )
        # More mid requests than its free slot: still none is pushed out with mid, and big waits, held.
        ranked = rank(more, now=NOW, aging=30)
        assert [(r.request_id, r.held) for r in ranked] == [(2, False), (3, False), (1, True)]
        # Once big has waited another aging period beyond its overdue moment, it goes first whatever waits.
        ranked = rank(more, now=NOW + 21, aging=30)
        assert (ranked[0].request_id, ranked[0].held) == (1, False)

    def test_a_swap_into_memory_only_idle_models_hold_does_not_yield(self) -> None:
        # other:7b runs nothing and nobody waits for it: big takes its memory (mid keeps its own), no swap.
        late = NOW - 40
        snapshot = Snapshot(
            waiting=[waiting(1, "big:15b", at=1.0, turn=late), waiting(2, "mid:8b", at=2.0)],
            hosts=[host(loaded={"mid:8b": 6 * GB, "other:7b": 5 * GB}, budget=22 * GB)],
            running={(1, "mid:8b"): 2},
            sizes=SIZES,
        )
        ranked = rank(snapshot, now=NOW, aging=30)
        assert (ranked[0].request_id, ranked[0].rank, ranked[0].held) == (1, OVERDUE, False)
