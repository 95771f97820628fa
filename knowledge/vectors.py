"""The in-memory search over one guild's indexed messages. Pure: numpy, no Django.

Why hand-written rather than a vector library: the store must work on SQLite
and PostgreSQL alike (no pgvector here), and at the sizes a Discord server
reaches (10^5 messages) an exact search is one matrix-vector product, a few
milliseconds with numpy's BLAS; an approximate index (faiss, hnswlib) would add
a native dependency and recall loss for no gain at this scale.

Rows are updated in place (an edit re-embeds a message, a delete clears its
row), so a refresh from the database touches only what changed.

The search is exact: one pass of the float32 matrix (150 MB at 10^5 rows of
384 dimensions, 10-25 ms here) per question. A two-stage search (a 64- or
128-dimension principal projection first, then the best thousands exactly)
was tried and dropped: with MiniLM it lost a planted answer in one question
of six at 100k messages for a saving of ~10 ms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# How much recency adds to the cosine similarity: a message from today gets the
# whole bonus, one HALF_LIFE_DAYS old half of it. Small next to similarity, so
# it breaks ties between equally relevant messages in favour of the newer one
# (the latest decision, the current date) without burying an old exact answer.
RECENCY_WEIGHT = 0.05
HALF_LIFE_DAYS = 30.0
_LN2 = math.log(2)
# How many candidates, per result wanted, maximal marginal relevance chooses among.
POOL_FACTOR = 4
# Hybrid search: what holding all of the question's keyword weight (idf) adds to a message's similarity.
KEYWORD_BOOST = 0.1
# Candidates scored at most (the most similar, with their bonuses), and among them the distinct texts maximal
# marginal relevance picks from: a paraphrase may rank below hundreds of variants of one remark.
CANDIDATE_POOL = 20_000
MMR_POOL = 2_000
# A message found by its words alone (its embedding below the similarity threshold) must carry at least this
# share of the question's keyword weight (idf), so one shared common word ("build", "night") does not count.
KEYWORD_COVERAGE = 0.5
# ... and still be at least this similar: a keyword match on an unrelated message ("capital" letters) stays out.
KEYWORD_SIMILARITY_FLOOR = 0.15

# How much a message's best clause lifts its similarity: its own similarity plus this share of what the best clause
# is more similar than the whole. Measured on the dev questions of bench.knowledge (0.71 → 0.77 recall@5 at 10k;
# 0.75: 0.79, 1.0 (the better of the two): 0.82 but an unanswerable question answered); 0.5 leaves the closest
# unanswerable question as far under the threshold as before.
PIECE_WEIGHT = 0.5
# Clauses: split at sentence and clause punctuation followed by a space, and at a spaced dash.
_CLAUSE_BREAK = re.compile(r"(?<=[.!?;:,])\s+|\s+[-\u2013\u2014]\s+|\n+")
MAX_PIECES = 8
_WORD = re.compile(r"[a-z0-9]+")
# Function words and question words: they say how something is asked, not what about.
_STOP_TEXT = """a about above after again all also am an and any are aren as at be been before being below between both
    but by can could did didn do does doesn doing don down during each few for from further had has have having he
    her here hers him his how i if in into is isn it its itself just let me more most my no nor not now of off on
    once only or other our ours out over own same she should so some such than that the their theirs them then there
    these they this those through to too under until up very was we were what when where which while who whom why
    will with would you your yours s t d ll m re ve y o anyone someone anybody somebody people thing things get got
    going gonna say said tell told know anything something ever"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def _stem(word: str) -> str:
    """A light suffix stripper (plural, -ing, -ed): "builds"/"building"/"built" stay apart, "fixes"/"fixed" meet."""
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 4 and word.endswith("es"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The keywords of a text for the keyword ranking: lower-cased, stop words out, lightly stemmed."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def clauses(text: str) -> list[str]:
    """A message's clauses, embedded besides its whole text; ``[]`` when it has fewer than two.

    A sentence embedding of "Code freeze starts Wednesday noon, only hotfixes
    after that" is an average of both halves, and a question about either half
    ("after which day are only urgent patches allowed?") finds it less similar
    than a short remark about one thing. Each clause of two words or more is
    embedded too, at most ``MAX_PIECES`` (the first ones), and a message is
    lifted toward its best clause (``PIECE_WEIGHT``).
    """
    found = [piece.strip() for piece in _CLAUSE_BREAK.split(text)]
    found = [piece for piece in found if len(_WORD.findall(piece.lower())) >= 2]
    return found[:MAX_PIECES] if len(found) >= 2 else []


def to_bytes(vector: Sequence[float]) -> bytes:
    """A vector as stored: little-endian float32, unit length (so cosine is a dot product)."""
    array = np.asarray(vector, dtype="<f4")
    norm = float(np.linalg.norm(array))
    if norm > 0:
        array = array / norm
    return array.astype("<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


@dataclass(frozen=True)
class Row:
    message_id: int
    channel_id: int  # the indexed channel (a thread's messages count as its parent's)
    created: float  # epoch seconds
    vector: bytes | None  # None: deleted, or not embedded (yet)
    text: str = ""  # what the keyword ranking reads ("author: text")
    pieces: bytes | None = None  # the unit vectors of its clauses, one after another (``clauses``)


@dataclass(frozen=True)
class Hit:
    message_id: int
    similarity: float
    score: float


class GuildIndex:
    """Unit vectors of one guild's messages, with their channel and time, searchable by cosine + recency.

    Not thread-safe on its own: the caller holds a lock around ``apply`` and ``search``.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self._positions: dict[int, int] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        self._codes = np.zeros(0, dtype=np.int32)  # the channel, as an index into _channel_ids
        self._channel_codes: dict[int, int] = {}
        self._created = np.zeros(0, dtype=np.float64)
        self._valid = np.zeros(0, dtype=bool)
        self._matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._size = 0
        self._free: list[int] = []
        # The keyword side: term -> positions holding it, and each position's terms (to undo them on an edit).
        self._postings: dict[str, set[int]] = {}
        self._terms: dict[int, frozenset[str]] = {}
        # A hash of each row's words: copies of one text ("gg", a re-posted announcement) count once in a ranking.
        self._digests = np.zeros(0, dtype=np.int64)
        # The clauses' vectors (``clauses``), each with the position of its message; slots are reused like rows'.
        self._piece_matrix = np.zeros((0, dim or 0), dtype=np.float32)
        self._piece_owner = np.zeros(0, dtype=np.int64)  # -1: a free slot
        self._piece_size = 0
        self._piece_free: list[int] = []
        self._pieces_of: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return int(self._valid[: self._size].sum())

    def _grow(self, needed: int) -> None:
        capacity = len(self._ids)
        if needed <= capacity:
            return
        new = max(needed, capacity * 2, 1024)
        assert self.dim is not None

        def grown(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
            fresh = np.zeros(shape, dtype=array.dtype)
            fresh[: len(array)] = array
            return fresh

        self._ids = grown(self._ids, (new,))
        self._codes = grown(self._codes, (new,))
        self._created = grown(self._created, (new,))
        self._valid = grown(self._valid, (new,))
        self._digests = grown(self._digests, (new,))
        self._matrix = grown(self._matrix, (new, self.dim))

    def _drop_pieces(self, position: int) -> None:
        slots = self._pieces_of.pop(position, [])
        self._piece_owner[slots] = -1  # the search's spare last entry: a freed slot lifts no message
        self._piece_free.extend(slots)

    def _add_pieces(self, position: int, data: bytes) -> None:
        assert self.dim is not None
        vectors = from_bytes(data)
        if not len(vectors) or len(vectors) % self.dim:
            return  # another model's length: the main vector's check already refused such a row
        vectors = vectors.reshape(-1, self.dim)
        slots = []
        for vector in vectors:
            if self._piece_free:
                slot = self._piece_free.pop()
            else:
                slot = self._piece_size
                self._piece_size += 1
                if slot >= len(self._piece_owner):
                    new = max(slot + 1, len(self._piece_owner) * 2, 1024)
                    matrix = np.zeros((new, self.dim), dtype=np.float32)
                    matrix[: len(self._piece_matrix)] = self._piece_matrix
                    owner = np.full(new, -1, dtype=np.int64)
                    owner[: len(self._piece_owner)] = self._piece_owner
                    self._piece_matrix, self._piece_owner = matrix, owner
            self._piece_matrix[slot] = vector
            self._piece_owner[slot] = position
            slots.append(slot)
        self._pieces_of[position] = slots

    def _code(self, channel_id: int) -> int:
        return self._channel_codes.setdefault(channel_id, len(self._channel_codes))

    def _unindex_words(self, position: int) -> None:
        for term in self._terms.pop(position, ()):
            postings = self._postings[term]
            postings.discard(position)
            if not postings:
                del self._postings[term]

    def _index_words(self, position: int, text: str) -> None:
        found = frozenset(terms(text))
        if not found:
            return
        self._terms[position] = found
        for term in found:
            self._postings.setdefault(term, set()).add(position)

    def apply(self, rows: Iterable[Row]) -> None:
        """Add, replace or remove rows; a row without a vector is removed.

        A vector of another length than the index's (the embedding model was
        changed) raises ``ValueError``: the caller rebuilds the index.
        """
        for row in rows:
            position = self._positions.get(row.message_id)
            if row.vector is None:
                if position is not None:
                    self._valid[position] = False
                    self._unindex_words(position)
                    self._drop_pieces(position)
                    del self._positions[row.message_id]
                    self._free.append(position)
                continue
            vector = from_bytes(row.vector)
            if self.dim is None:
                self.dim = len(vector)
                self._matrix = np.zeros((0, self.dim), dtype=np.float32)
                self._piece_matrix = np.zeros((0, self.dim), dtype=np.float32)
            if len(vector) != self.dim:
                raise ValueError(f"a {len(vector)}-dimensional vector in a {self.dim}-dimensional index")
            if position is None:
                if self._free:
                    position = self._free.pop()
                else:
                    self._grow(self._size + 1)
                    position = self._size
                    self._size += 1
                self._positions[row.message_id] = position
            else:
                self._unindex_words(position)
                self._drop_pieces(position)
            self._index_words(position, row.text)
            if row.pieces:
                self._add_pieces(position, row.pieces)
            # Rows without words (tests, old callers) are told apart by their id.
            self._digests[position] = hash(" ".join(row.text.lower().split()) or row.message_id)
            self._ids[position] = row.message_id
            self._codes[position] = self._code(row.channel_id)
            self._created[position] = row.created
            self._valid[position] = True
            self._matrix[position] = vector

    def search(
        self,
        query: Sequence[float],
        *,
        channel_ids: Iterable[int],
        now: float,
        limit: int,
        min_similarity: float,
        not_before: float | None = None,
        diversity: float = 0.0,
        query_text: str = "",
    ) -> list[Hit]:
        """The best ``limit`` messages in ``channel_ids`` that are relevant enough, best first.

        Without ``query_text``: cosine similarity plus ``RECENCY_WEIGHT`` halved
        every ``HALF_LIFE_DAYS`` of age, among the messages whose similarity
        reaches ``min_similarity``. With it (the question's words), hybrid: plus
        a bonus for holding the question's rarer words (``_hybrid``). ``not_before`` (epoch seconds) leaves out
        older messages (retention, between two cleanups). ``diversity`` > 0
        picks among the best ``POOL_FACTOR * limit`` by maximal marginal
        relevance (``_diverse``), so near-duplicates do not crowd out the rest.
        """
        size = self._size
        if not size or self.dim is None:
            return []
        q = np.asarray(query, dtype=np.float32)
        if len(q) != self.dim:
            raise ValueError(f"a {len(q)}-dimensional query for a {self.dim}-dimensional index")
        norm = float(np.linalg.norm(q))
        if norm == 0:
            return []
        q = q / norm
        allowed = np.zeros(len(self._channel_codes) + 1, dtype=bool)
        for channel_id in channel_ids:
            code = self._channel_codes.get(channel_id)
            if code is not None:
                allowed[code] = True
        mask = self._valid[:size] & allowed[self._codes[:size]]
        if not_before is not None:
            mask &= self._created[:size] >= not_before
        similarity = np.where(mask, self._lifted(self._matrix[:size] @ q, q), -np.inf)
        wanted = limit * POOL_FACTOR if diversity else limit
        query_terms = terms(query_text)
        if query_terms:
            return self._hybrid(similarity, mask, query_terms, now, limit, min_similarity, diversity)
        positions, score = self._semantic(similarity, mask, now, wanted, min_similarity)
        return self._hits(positions, score, similarity, limit, diversity)

    def _lifted(self, similarity: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Each message's similarity lifted by ``PIECE_WEIGHT`` of what its best clause adds to it."""
        count = self._piece_size
        if not count:
            return similarity
        # Free slots belong to position -1, the spare entry at the end of ``best``, dropped after.
        best = np.full(len(similarity) + 1, -np.inf, dtype=np.float32)
        np.maximum.at(best, self._piece_owner[:count], self._piece_matrix[:count] @ q)
        lift = best[:-1]
        lift -= similarity
        np.maximum(lift, 0, out=lift)
        lift *= PIECE_WEIGHT
        return similarity + lift

    def _semantic(
        self, similarity: np.ndarray, mask: np.ndarray, now: float, k: int, min_similarity: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best positions by similarity + recency (at least ``min_similarity`` similar), and their scores."""
        size = len(similarity)
        k = min(k, int(mask.sum()))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        # Recency adds at most RECENCY_WEIGHT, so the k best scores are among the rows within that of the
        # k-th best similarity: only those are scored, which keeps the search exact and the exp() small.
        kth = np.partition(similarity, size - k)[size - k]
        candidates = np.flatnonzero(similarity >= max(kth - RECENCY_WEIGHT, min_similarity))
        if not len(candidates):
            return candidates, np.zeros(0)
        score = similarity[candidates] + RECENCY_WEIGHT * self._freshness(candidates, now)
        k = min(k, len(candidates))
        top = np.argpartition(-score, k - 1)[:k]
        top = top[np.argsort(-score[top], kind="stable")]
        top = top[np.isfinite(score[top])]
        return candidates[top], score[top]

    def _freshness(self, positions: np.ndarray, now: float) -> np.ndarray:
        """1 for a message written now, halved every HALF_LIFE_DAYS."""
        age_days = np.maximum(now - self._created[positions], 0.0) / 86_400.0
        return np.exp(-_LN2 * age_days / HALF_LIFE_DAYS)

    def _keyword_coverage(self, query_terms: Sequence[str], size: int) -> np.ndarray:
        """For every position, the share of the question's keyword weight (BM25's idf) its words hold.

        A question word no message holds still counts in the whole, as in BM25: a question about something
        never said is not covered by a message that shares its one common word.
        """
        covered = np.zeros(size, dtype=np.float64)
        documents = max(len(self._terms), 1)
        total = 0.0
        for term in set(query_terms):
            postings = self._postings.get(term)
            df = len(postings) if postings else 0
            idf = math.log(1 + (documents - df + 0.5) / (df + 0.5))
            total += idf
            if postings:
                covered[np.fromiter(postings, dtype=np.int64, count=df)] += idf
        return covered / total if total else covered

    def _hybrid(
        self,
        similarity: np.ndarray,
        mask: np.ndarray,
        query_terms: Sequence[str],
        now: float,
        limit: int,
        min_similarity: float,
        diversity: float,
    ) -> list[Hit]:
        """Similarity + recency + ``KEYWORD_BOOST`` times the share of the question's keyword weight a message holds.

        The keyword side is BM25's idf: a message holding the question's rare
        words ("staging", "Kemal") gains up to KEYWORD_BOOST, one holding only
        its common ones ("build", "night") next to nothing. Relevance gates: a
        message needs ``min_similarity`` counting that bonus (the words are
        evidence too), or else ``KEYWORD_COVERAGE`` of the question's keyword
        weight and ``KEYWORD_SIMILARITY_FLOOR``, so unrelated questions still
        find nothing. Copies of one text count once;
        MMR picks among the best ``MMR_POOL``.

        Reciprocal rank fusion of a BM25 ranking with the embedding ranking
        was measured first (``bench.knowledge``) and lost recall: in a chat
        history, short remarks sharing one common word with the question top
        the BM25 ranking, and RRF rewards being in both lists.
        """
        size = len(similarity)
        covered = self._keyword_coverage(query_terms, size)
        eligible = mask & (
            (similarity + KEYWORD_BOOST * covered >= min_similarity)
            | ((covered >= KEYWORD_COVERAGE) & (similarity >= KEYWORD_SIMILARITY_FLOOR))
        )
        positions = np.flatnonzero(eligible)
        if not len(positions):
            return []
        if len(positions) > CANDIDATE_POOL:  # bound the sort: the best by similarity + the largest bonuses
            bound = similarity[positions] + KEYWORD_BOOST * covered[positions]
            positions = positions[np.argpartition(-bound, CANDIDATE_POOL - 1)[:CANDIDATE_POOL]]
        score = (
            similarity[positions]
            + RECENCY_WEIGHT * self._freshness(positions, now)
            + KEYWORD_BOOST * covered[positions]
        )
        order = np.argsort(-score, kind="stable")
        positions, score = positions[order], score[order]
        _, first = np.unique(self._digests[positions], return_index=True)
        kept = np.sort(first)[: MMR_POOL if diversity else limit]
        positions, score = positions[kept], score[kept]
        return self._hits(positions, score, similarity, limit, diversity)

    def _hits(
        self, positions: np.ndarray, score: np.ndarray, similarity: np.ndarray, limit: int, diversity: float
    ) -> list[Hit]:
        """The best ``limit`` of ``positions`` (ranked by ``score``), made diverse first when ``diversity`` is set."""
        if diversity and len(positions) > 1:
            order = self._diverse(positions, score, limit, diversity, order=np.arange(len(positions)))
            positions, score = positions[order], score[order]
        return [
            Hit(int(self._ids[p]), float(similarity[p]), float(s))
            for p, s in zip(positions[:limit], score[:limit], strict=True)
        ]

    def _diverse(
        self, rows: np.ndarray, score: np.ndarray, limit: int, diversity: float, *, order: np.ndarray
    ) -> np.ndarray:
        """Maximal marginal relevance: greedily the best score minus ``diversity`` times the likeness to those already taken.

        Ten near-copies of one complaint ("the build took forever today", "…this
        week") tell the model one thing; MMR (Carbonell & Goldstein, 1998) keeps
        the best of them and makes room for the message that says something else.
        """
        vectors = self._matrix[rows]
        # Likeness to the chosen ones is computed one pick at a time (limit by pool, not pool by pool), so the
        # pool can hold thousands: a paraphrase may rank below hundreds of variants of one remark.
        chosen = [0]
        closest = vectors @ vectors[0]
        while len(chosen) < min(limit, len(rows)):
            marginal = score - diversity * closest
            marginal[chosen] = -np.inf
            pick = int(np.argmax(marginal))
            chosen.append(pick)
            closest = np.maximum(closest, vectors @ vectors[pick])
        return order[chosen]
