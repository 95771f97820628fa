"""Text helpers for the fake Ollama: token-like chunking, token estimates, embeddings.

Everything here is deterministic and dependency free so that tests and
benchmarks get the same numbers on every run and on every machine.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence

Embedder = Callable[[list[str]], list[list[float]]]

# A "word" keeps its trailing whitespace so that concatenating chunks gives the
# original text back; whitespace at the very start becomes a chunk of its own.
_WORD_RE = re.compile(r"\s+|\S+\s*")
_TRAILING_WS_RE = re.compile(r"\s*\Z")
_TERM_RE = re.compile(r"\w+", re.UNICODE)

# Real tokenizers emit roughly four characters per token, so long words are cut
# into pieces of that size to keep the chunk count close to a real stream.
LONG_WORD = 6
PIECE = 4

DEFAULT_EMBEDDING_DIM = 384


def chunk_text(text: str) -> list[str]:
    """Split ``text`` the way a model streams it: roughly one token per chunk.

    ``"".join(chunk_text(t)) == t`` holds for every string (whitespace, tabs,
    newlines and non-ASCII characters included).
    """
    chunks: list[str] = []
    for word in _WORD_RE.findall(text):
        chunks.extend(_split_long(word))
    return chunks


def _split_long(word: str) -> list[str]:
    trailing = _TRAILING_WS_RE.search(word)
    cut = trailing.start() if trailing else len(word)
    core, tail = word[:cut], word[cut:]
    if len(core) <= LONG_WORD:
        return [word]
    pieces = [core[i : i + PIECE] for i in range(0, len(core), PIECE)]
    pieces[-1] += tail
    return pieces


def estimate_tokens(texts: Iterable[str]) -> int:
    """Ollama-ish prompt size: one token per four characters, never zero."""
    return max(1, sum(len(t) for t in texts) // 4)


def _feature_slot(feature: str, dim: int) -> tuple[int, float]:
    # blake2b rather than hash(): Python's str hash is salted per process and
    # embeddings must be identical across runs (and across the fake's process).
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


def hashed_embedding(text: str, dim: int = DEFAULT_EMBEDDING_DIM) -> list[float]:
    """Hashed bag-of-words (plus word bigrams), L2-normalised.

    Texts sharing words get a high cosine similarity; unrelated texts land near
    zero. Cheap enough for thousands of calls in a benchmark.
    """
    terms = [t.lower() for t in _TERM_RE.findall(text)]
    features = [(t, 1.0) for t in terms]
    features += [(f"{a} {b}", 0.5) for a, b in itertools.pairwise(terms)]
    vector = [0.0] * dim
    for feature, weight in features:
        slot, sign = _feature_slot(feature, dim)
        vector[slot] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        # A zero vector would make cosine similarity undefined downstream.
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def default_embedder(texts: Sequence[str]) -> list[list[float]]:
    """The embedder the fake uses unless one is passed to ``FakeOllama``."""
    return [hashed_embedding(t) for t in texts]
