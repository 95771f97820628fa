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
        self._matrix = grown(self._matrix, (new, self.dim))

    def _code(self, channel_id: int) -> int:
        return self._channel_codes.setdefault(channel_id, len(self._channel_codes))

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
                    del self._positions[row.message_id]
                    self._free.append(position)
                continue
            vector = from_bytes(row.vector)
            if self.dim is None:
                self.dim = len(vector)
                self._matrix = np.zeros((0, self.dim), dtype=np.float32)
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
    ) -> list[Hit]:
        """The best ``limit`` messages in ``channel_ids`` whose similarity reaches ``min_similarity``, best first.

        Score: cosine similarity plus ``RECENCY_WEIGHT`` halved every
        ``HALF_LIFE_DAYS`` of age. ``not_before`` (epoch seconds) leaves out
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
        similarity = np.where(mask, self._matrix[:size] @ q, -np.inf)
        k = min(limit * POOL_FACTOR if diversity else limit, int(mask.sum()))
        if k == 0:
            return []
        # Recency adds at most RECENCY_WEIGHT, so the k best scores are among the rows within that of the
        # k-th best similarity: only those are scored, which keeps the search exact and the exp() small.
        kth = np.partition(similarity, size - k)[size - k]
        candidates = np.flatnonzero(similarity >= max(kth - RECENCY_WEIGHT, min_similarity))
        if not len(candidates):
            return []
        similarity = similarity[candidates]
        age_days = np.maximum(now - self._created[candidates], 0.0) / 86_400.0
        score = similarity + RECENCY_WEIGHT * np.exp(-_LN2 * age_days / HALF_LIFE_DAYS)
        k = min(limit * POOL_FACTOR if diversity else limit, len(candidates))
        top = np.argpartition(-score, k - 1)[:k]
        top = top[np.argsort(-score[top])]
        top = top[np.isfinite(score[top])]
        if diversity and len(top) > 1:
            top = self._diverse(candidates[top], score[top], limit, diversity, order=top)
        return [Hit(int(self._ids[candidates[i]]), float(similarity[i]), float(score[i])) for i in top[:limit]]

    def _diverse(
        self, rows: np.ndarray, score: np.ndarray, limit: int, diversity: float, *, order: np.ndarray
    ) -> np.ndarray:
        """Maximal marginal relevance: greedily the best score minus ``diversity`` times the likeness to those already taken.

        Ten near-copies of one complaint ("the build took forever today", "…this
        week") tell the model one thing; MMR (Carbonell & Goldstein, 1998) keeps
        the best of them and makes room for the message that says something else.
        """
        vectors = self._matrix[rows]
        likeness = vectors @ vectors.T
        chosen = [0]
        closest = likeness[0].copy()
        while len(chosen) < min(limit, len(rows)):
            marginal = score - diversity * closest
            marginal[chosen] = -np.inf
            pick = int(np.argmax(marginal))
            chosen.append(pick)
            closest = np.maximum(closest, likeness[pick])
        return order[chosen]
