from __future__ import annotations

import numpy as np
import pytest

from knowledge.vectors import PIECE_WEIGHT, GuildIndex, Row, clauses, from_bytes, to_bytes

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


class ExactnessTests:
    def test_a_newer_message_just_below_the_kth_similarity_still_wins_on_score(self):
        index = GuildIndex()
        old = [Row(i, 10, NOW - 900 * DAY, vec(1.0, 0.1 + 0.001 * i)) for i in range(5)]
        newer = Row(99, 10, NOW, vec(1.0, 0.16))  # a little less similar, but from today
        index.apply([*old, newer])

        hits = index.search([1, 0], channel_ids=[10], now=NOW, limit=1, min_similarity=0.0)

        assert hits[0].message_id == 99

    def test_it_matches_a_brute_force_ranking_on_random_data(self):
        rng = np.random.default_rng(11)
        rows = [Row(i, 10 + i % 2, NOW - rng.uniform(0, 200) * DAY, to_bytes(rng.normal(size=16))) for i in range(2000)]
        index = GuildIndex()
        index.apply(rows)
        query = rng.normal(size=16)
        q = query / np.linalg.norm(query)

        def score(row: Row) -> float:
            age = (NOW - row.created) / DAY
            return float(from_bytes(row.vector or b"") @ q) + 0.05 * 0.5 ** (age / 30)

        expected = sorted((r for r in rows if r.channel_id == 10), key=score, reverse=True)[:7]
        found = index.search(query.tolist(), channel_ids=[10], now=NOW, limit=7, min_similarity=-1.0)

        assert [h.message_id for h in found] == [r.message_id for r in expected]


class HybridTests:
    def test_a_rare_word_of_the_question_lifts_the_message_that_holds_it(self):
        index = GuildIndex()
        index.apply(
            [
                Row(1, 10, NOW, vec(1.0, 0.30), "Ivo: the build took forever"),
                Row(2, 10, NOW, vec(1.0, 0.36), "Dmitri: staging password rotates every Monday"),
            ]
        )
        query = [1.0, 0.2]

        by_vector = index.search(query, channel_ids=[10], now=NOW, limit=2, min_similarity=0.3)
        hybrid = index.search(
            query,
            channel_ids=[10],
            now=NOW,
            limit=2,
            min_similarity=0.3,
            query_text="when does the staging password change?",
        )

        assert [h.message_id for h in by_vector] == [1, 2]
        assert [h.message_id for h in hybrid] == [2, 1]

    def test_copies_of_one_text_count_once(self):
        index = GuildIndex()
        index.apply([Row(i, 10, NOW - i, vec(1, 0), "Bob: gg") for i in range(1, 6)])
        index.apply([Row(9, 10, NOW, vec(0.9, 0.43), "Ann: good game everyone")])

        hits = index.search([1, 0], channel_ids=[10], now=NOW, limit=3, min_similarity=0.3, query_text="gg")

        assert [h.message_id for h in hits] == [1, 9]

    def test_a_shared_common_word_alone_does_not_make_an_unrelated_message_relevant(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW, vec(0.2, 1.0), "Bob: the capital letters look odd")])

        hits = index.search(
            [1, 0],
            channel_ids=[10],
            now=NOW,
            limit=3,
            min_similarity=0.3,
            query_text="what is the capital of Mongolia?",
        )

        assert hits == []

    def test_the_questions_rarer_words_count_toward_the_similarity_threshold(self):
        index = GuildIndex()
        index.apply(
            [Row(1, 10, NOW, vec(0.95, 0.31), "Jun: I'm moving to Lisbon in March")]
        )  # 0.95 similar: just under the threshold below
        index.apply([Row(i, 10, NOW, vec(0, 1), f"Bob: chatter {i}") for i in range(2, 40)])
        query = [1.0, 0.0]
        question = "which city is Jun relocating to?"

        hits = index.search(query, channel_ids=[10], now=NOW, limit=3, min_similarity=0.96, query_text=question)
        plain = index.search(query, channel_ids=[10], now=NOW, limit=3, min_similarity=0.96)

        assert [h.message_id for h in hits] == [1]
        assert plain == []


class ClauseTests:
    def test_a_message_is_split_at_clause_punctuation_and_spaced_dashes(self):
        assert clauses("Code freeze starts Wednesday noon, only hotfixes after that") == [
            "Code freeze starts Wednesday noon,",
            "only hotfixes after that",
        ]
        assert clauses("the build is red - CI runners are down") == ["the build is red", "CI runners are down"]
        assert clauses("v2.0 ships on the 30th; 1,200 people signed up") == [
            "v2.0 ships on the 30th;",
            "1,200 people signed up",
        ]

    def test_a_message_of_one_clause_has_no_pieces(self):
        assert clauses("the build took forever") == []
        assert clauses("gg, lol") == []  # one-word pieces do not count

    def test_a_message_is_lifted_toward_its_best_clause(self):
        index = GuildIndex()
        whole = Row(1, 10, NOW, vec(0.5, 0.866), "Alice: freeze at noon, hotfixes after")
        index.apply([whole, Row(2, 10, NOW, vec(0.6, 0.8), "Bob: something closer on the whole")])

        before = index.search([1, 0], channel_ids=[10], now=NOW, limit=2, min_similarity=0.3)
        index.apply([Row(1, 10, NOW, whole.vector, whole.text, vec(1, 0) + vec(0, 1))])
        after = index.search([1, 0], channel_ids=[10], now=NOW, limit=2, min_similarity=0.3)

        assert [h.message_id for h in before] == [2, 1]
        assert [h.message_id for h in after] == [1, 2]
        # Its similarity plus PIECE_WEIGHT of what the best clause (1.0) adds to the whole (0.5).
        assert after[0].similarity == pytest.approx(0.5 + PIECE_WEIGHT * 0.5, abs=1e-3)

    def test_an_edit_or_a_deletion_drops_the_old_clauses(self):
        index = GuildIndex()
        index.apply([Row(1, 10, NOW, vec(0.5, 0.866), "Alice: a, b c", vec(1, 0) + vec(0, 1))])

        index.apply([Row(1, 10, NOW, vec(0.5, 0.866), "Alice: edited")])  # the edit has one clause
        [edited] = index.search([1, 0], channel_ids=[10], now=NOW, limit=1, min_similarity=0.3)
        index.apply([Row(1, 10, NOW, None)])
        index.apply([Row(2, 10, NOW, vec(0.5, 0.866), "Bob: new in the freed slot")])
        [other] = index.search([1, 0], channel_ids=[10], now=NOW, limit=1, min_similarity=0.3)

        assert edited.message_id == 1 and edited.similarity == pytest.approx(0.5, abs=1e-3)
        assert other.message_id == 2 and other.similarity == pytest.approx(0.5, abs=1e-3)
