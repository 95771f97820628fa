from __future__ import annotations

import numpy as np
import pytest

from knowledge.vectors import GuildIndex, Row, from_bytes, to_bytes

NOW = 1_800_000_000.0
DAY = 86_400.0


def vec(*values: float) -> bytes:
    return to_bytes(values)


class GuildIndexTests:
    def test_vectors_are_stored_as_unit_float32(self):
        stored = from_bytes(to_bytes([3.0, 4.0]))

        assert stored.dtype == np.dtype("<f4")
        assert stored.tolist() == pytest.approx([0.6, 0.8])

    def test_it_finds_the_most_similar_messages_first_and_only_in_allowed_channels(self):
        index = GuildIndex()
        index.apply(
            [
                Row(1, 10, NOW, vec(1, 0, 0)),
                Row(2, 10, NOW, vec(0.8, 0.6, 0)),
                Row(3, 20, NOW, vec(1, 0, 0)),  # as good, but in a channel the asker can't read
                Row(4, 10, NOW, vec(0, 0, 1)),
            ]
        )

        hits = index.search([1, 0, 0], channel_ids=[10], now=NOW, limit=5, min_similarity=0.3)

        assert [h.message_id for h in hits] == [1, 2]
        assert hits[0].similarity == pytest.approx(1.0)

    def test_recency_breaks_ties_toward_the_newer_message(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW - 400 * DAY, vec(1, 0)), Row(2, 10, NOW - DAY, vec(1, 0))])

        hits = index.search([1, 0], channel_ids=[10], now=NOW, limit=2, min_similarity=0.0)

        assert [h.message_id for h in hits] == [2, 1]
        assert hits[0].score > hits[1].score

    def test_a_row_without_vector_is_removed_and_its_slot_reused(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW, vec(1, 0)), Row(2, 10, NOW, vec(0, 1))])
        index.apply([Row(1, 10, NOW, None)])

        assert len(index) == 1
        assert index.search([1, 0], channel_ids=[10], now=NOW, limit=5, min_similarity=0.5) == []
        index.apply([Row(3, 10, NOW, vec(1, 0))])
        assert [h.message_id for h in index.search([1, 0], channel_ids=[10], now=NOW, limit=5, min_similarity=0.5)] == [
            3
        ]

    def test_an_edit_replaces_the_vector_in_place(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW, vec(1, 0))])
        index.apply([Row(1, 10, NOW, vec(0, 1))])

        assert len(index) == 1
        assert [h.message_id for h in index.search([0, 1], channel_ids=[10], now=NOW, limit=5, min_similarity=0.9)] == [
            1
        ]

    def test_nothing_below_the_threshold_is_returned(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW, vec(1, 1, 0))])

        assert index.search([0, 0, 1], channel_ids=[10], now=NOW, limit=5, min_similarity=0.3) == []

    def test_messages_before_the_retention_are_left_out(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW - 10 * DAY, vec(1, 0)), Row(2, 10, NOW, vec(1, 0))])

        hits = index.search([1, 0], channel_ids=[10], now=NOW, limit=5, min_similarity=0.1, not_before=NOW - DAY)

        assert [h.message_id for h in hits] == [2]

    def test_a_vector_of_another_length_is_refused(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW, vec(1, 0))])

        with pytest.raises(ValueError):
            index.apply([Row(2, 10, NOW, vec(1, 0, 0))])

    def test_it_grows_past_its_first_capacity(self):
        index = GuildIndex()
        rng = np.random.default_rng(1)
        rows = [Row(i, 10, NOW, to_bytes(rng.normal(size=8))) for i in range(3000)]
        index.apply(rows)
        target = from_bytes(rows[2345].vector or b"")

        hits = index.search(target.tolist(), channel_ids=[10], now=NOW, limit=1, min_similarity=0.0)

        assert len(index) == 3000
        assert hits[0].message_id == 2345


class TwoStageSearchTests:
    def test_past_the_coarse_threshold_it_finds_the_same_best_messages_as_the_exact_search(self, monkeypatch):
        import knowledge.vectors as vectors

        rng = np.random.default_rng(7)
        # Clustered data, like embeddings: a few topics plus noise.
        topics = rng.normal(size=(20, 48))
        rows = [
            Row(i, 10 + i % 3, NOW - (i % 50) * DAY, to_bytes(topics[i % 20] + 0.6 * rng.normal(size=48)))
            for i in range(6000)
        ]
        queries = [topics[t] + 0.3 * rng.normal(size=48) for t in range(20)]
        exact = GuildIndex()
        exact.apply(rows)
        monkeypatch.setattr(vectors, "COARSE_FROM", 1000)
        monkeypatch.setattr(vectors, "COARSE_POOL", 300)
        monkeypatch.setattr(vectors, "COARSE_DIMS", 16)
        staged = GuildIndex()
        staged.apply(rows)
        assert staged._basis is not None and exact._basis is None

        agree = 0
        for query in queries:
            args = {"channel_ids": [10, 11], "now": NOW, "limit": 5, "min_similarity": 0.0}
            expected = [h.message_id for h in exact.search(query.tolist(), **args)]
            found = [h.message_id for h in staged.search(query.tolist(), **args)]
            assert all(m % 3 != 2 for m in found)  # channel 12 is never searched
            agree += len(set(expected) & set(found))
        assert agree >= 0.95 * 5 * len(queries)

    def test_rows_added_after_the_fit_are_found(self, monkeypatch):
        import knowledge.vectors as vectors

        monkeypatch.setattr(vectors, "COARSE_FROM", 100)
        rng = np.random.default_rng(3)
        index = GuildIndex()
        index.apply([Row(i, 10, NOW, to_bytes(rng.normal(size=32))) for i in range(150)])
        target = rng.normal(size=32)
        index.apply([Row(999, 10, NOW, to_bytes(target))])

        assert (
            index.search(target.tolist(), channel_ids=[10], now=NOW, limit=1, min_similarity=0.0)[0].message_id == 999
        )
