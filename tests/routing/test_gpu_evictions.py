"""Seeing Ollama evict a model between two /api/ps reads (routing.gpu.find_eviction, note_eviction)."""

from __future__ import annotations

import pytest

from routing.gpu import EVICTION_READS_APART, Eviction, Loaded, find_eviction, note_eviction
from routing.hosts import default_host

GB = 1_000_000_000
NOW = 1_000_000.0


def read(models: dict[str, int], *, expires: float = NOW + 1800, at: float = 0.0) -> Loaded:
    return Loaded(models, at, {name: expires for name in models})


class FindEvictionTests:
    def test_a_model_kept_alive_that_went_when_another_came_was_evicted(self) -> None:
        before = read({"a:1b": 14 * GB, "b:1b": 5 * GB})
        after = read({"b:1b": 5 * GB, "c:1b": 9 * GB})

        eviction = find_eviction("u", before, after, released=set(), now=NOW)

        assert eviction == Eviction("u", ("a:1b",), ("c:1b",), 28 * GB, 3)

    def test_a_model_whose_keep_alive_ran_out_was_not_evicted(self) -> None:
        before = read({"a:1b": 14 * GB}, expires=NOW - 5)
        assert find_eviction("u", before, read({"c:1b": 9 * GB}), released=set(), now=NOW) is None

    def test_a_model_released_by_the_scheduler_was_not_evicted(self) -> None:
        before = read({"a:1b": 14 * GB})
        assert find_eviction("u", before, read({"c:1b": 9 * GB}), released={"a:1b"}, now=NOW) is None

    def test_a_change_across_a_long_gap_between_reads_teaches_nothing(self) -> None:
        # As the bench's GPU reset (or an Ollama restart) looks to a process that last read the host long before:
        # everything unloaded, then models loaded again, one of them new.
        before = read({"a:1b": 14 * GB, "b:1b": 5 * GB}, at=0.0)
        after = read({"b:1b": 5 * GB, "c:1b": 9 * GB}, at=EVICTION_READS_APART + 1)
        assert find_eviction("u", before, after, released=set(), now=NOW) is None
        soon = read({"b:1b": 5 * GB, "c:1b": 9 * GB}, at=EVICTION_READS_APART)
        assert find_eviction("u", before, soon, released=set(), now=NOW) is not None

    def test_a_model_that_went_with_nothing_new_was_not_evicted(self) -> None:
        before = read({"a:1b": 14 * GB, "b:1b": 5 * GB})
        assert find_eviction("u", before, read({"b:1b": 5 * GB}), released=set(), now=NOW) is None


@pytest.mark.django_db
class NoteEvictionTests:
    def test_more_memory_than_ever_seen_is_learned_as_too_much(self) -> None:
        host = default_host()
        host.vram_seen = 19 * GB
        host.save()

        note_eviction(Eviction(host.base_url, ("a:1b",), ("c:1b",), 28 * GB, 3))
        note_eviction(Eviction(host.base_url, ("a:1b",), ("c:1b",), 30 * GB, 3))

        host.refresh_from_db()
        assert (host.vram_too_much, host.models_too_many) == (28 * GB, None)

    def test_memory_seen_in_use_before_means_the_model_count_ran_out(self) -> None:
        host = default_host()
        host.vram_seen = 22 * GB
        host.save()

        note_eviction(Eviction(host.base_url, ("a:1b",), ("d:1b",), 20 * GB, 4))

        host.refresh_from_db()
        assert (host.vram_too_much, host.models_too_many) == (None, 4)

    def test_models_gone_when_that_many_were_seen_together_teach_nothing(self) -> None:
        # Ollama restarted (or someone unloaded everything), then one model was loaded: two models, 21 GB,
        # on a host seen holding three and 22 GB at once. Neither the count nor the memory ran out.
        host = default_host()
        host.vram_seen = 22 * GB
        host.save()

        note_eviction(Eviction(host.base_url, ("a:1b",), ("b:1b",), 21 * GB, 2), models_seen=3)

        host.refresh_from_db()
        assert (host.vram_too_much, host.models_too_many) == (None, None)
        note_eviction(Eviction(host.base_url, ("a:1b",), ("d:1b",), 20 * GB, 4), models_seen=3)
        host.refresh_from_db()
        assert host.models_too_many == 4

    def test_a_host_seen_holding_what_was_too_much_forgets_that_lesson(self) -> None:
        from routing.gpu import note_memory_seen

        host = default_host()
        host.vram_seen, host.vram_too_much, host.models_too_many = 19 * GB, 28 * GB, 3
        host.save()

        note_memory_seen(host, {"a:1b": 14 * GB, "b:1b": 9 * GB, "c:1b": 6 * GB})

        host.refresh_from_db()
        assert (host.vram_seen, host.vram_too_much, host.models_too_many) == (29 * GB, None, None)
