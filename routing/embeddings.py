"""Embeddings for the pre-router, with route examples cached in the database.

A vector depends only on the model and the text, so rows are keyed by both
and never go stale: editing an example simply misses the cache once. The
process also keeps the vectors it has read, for the same reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from routing.clients import shared_sync_client
from routing.decisions import unit
from routing.models import ExampleEmbedding

_vectors: dict[tuple[str, str], list[float]] = {}
EMBED_BATCH = 64


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    prompt_tokens: int
    total_duration: int | None = None  # nanoseconds, as the server reports it


def embed(*, host: str, model: str, texts: Sequence[str], timeout: float) -> Embedded:
    """One ``/api/embed`` call; raises what the ollama client raises."""
    response = shared_sync_client(host, read_timeout=timeout).embed(model=model, input=list(texts))
    return Embedded(
        [list(vector) for vector in response.embeddings], response.prompt_eval_count or 0, response.total_duration
    )


def example_vectors(*, host: str, model: str, texts: Sequence[str], timeout: float) -> dict[str, list[float]]:
    """Unit vectors of ``texts`` from the process cache, then the table, embedding only the missing ones."""
    wanted = {text: text_hash(text) for text in dict.fromkeys(texts)}
    found = {text: _vectors[(model, digest)] for text, digest in wanted.items() if (model, digest) in _vectors}
    missing = {text: digest for text, digest in wanted.items() if text not in found}
    if missing:
        stored: dict[str, list[float]] = {}
        digests = list(missing.values())
        for start in range(0, len(digests), 500):  # SQLite limits the parameters of one query
            stored.update(
                ExampleEmbedding.objects.filter(model=model, text_hash__in=digests[start : start + 500]).values_list(
                    "text_hash", "vector"
                )
            )
        for text, digest in list(missing.items()):
            if digest in stored:
                found[text] = _vectors[(model, digest)] = unit(stored[digest])
                del missing[text]
    pending = list(missing.items())
    # Batches keep each call well inside the timeout when a retrain embeds thousands of examples.
    for start in range(0, len(pending), EMBED_BATCH):
        batch = pending[start : start + EMBED_BATCH]
        new = embed(host=host, model=model, texts=[text for text, _ in batch], timeout=timeout)
        rows = []
        for (text, digest), vector in zip(batch, new.vectors, strict=True):
            found[text] = _vectors[(model, digest)] = unit(vector)
            rows.append(ExampleEmbedding(model=model, text_hash=digest, vector=vector))
        ExampleEmbedding.objects.bulk_create(rows, ignore_conflicts=True)
    return found


def forget_cached_vectors() -> None:
    """Drop the process cache (tests and the benchmark measure cold starts with it)."""
    _vectors.clear()
