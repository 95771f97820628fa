"""Each process's in-memory ``GuildIndex`` per guild, loaded from the database and refreshed incrementally.

A refresh reads only rows whose ``changed_at`` moved since the last one (an
index on ``(guild_id, changed_at)``), so an ask costs one small query on top of
the search. Deletions arrive as tombstones; tombstones are purged after
``TOMBSTONE_HOURS`` (``services.cleanup``), so an index that has not refreshed
for longer than that is rebuilt from scratch instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from knowledge.models import IndexedMessage
from knowledge.vectors import GuildIndex, Row

TOMBSTONE_HOURS = 1
# Rows written in the same instant as the last refresh are read again: applying a row twice is harmless.
OVERLAP = timedelta(seconds=2)


@dataclass
class _Cached:
    model: str
    index: GuildIndex = field(default_factory=GuildIndex)
    watermark: datetime | None = None


_indexes: dict[int, _Cached] = {}
_lock = threading.Lock()


def _rows(guild_id: int, model: str, since: datetime | None) -> list[Row]:
    rows = IndexedMessage.objects.filter(guild_id=guild_id)
    if since is not None:
        rows = rows.filter(changed_at__gte=since - OVERLAP)
    else:
        rows = rows.filter(deleted=False, embedding__isnull=False, embedding_model=model)
    found = []
    for message_id, channel_id, created_at, embedding, deleted, embedded_with, author, text, pieces in rows.values_list(
        "message_id",
        "channel_id__channel_id",
        "created_at",
        "embedding",
        "deleted",
        "embedding_model",
        "author_name",
        "text",
        "pieces",
    ).iterator(chunk_size=5000):
        vector = bytes(embedding) if embedding is not None and not deleted and embedded_with == model else None
        words = f"{author}: {text}" if vector is not None else ""
        clauses = bytes(pieces) if pieces is not None and vector is not None else None
        found.append(Row(message_id, channel_id, created_at.timestamp(), vector, words, clauses))
    return found


def guild_index(*, guild_id: int, model: str) -> GuildIndex:
    """The guild's index, brought up to date with the database. Callers search it under ``lock()``."""
    now = timezone.now()
    cached = _indexes.get(guild_id)
    stale = cached is None or cached.model != model or cached.watermark is None
    if cached is not None and cached.watermark is not None:
        stale = stale or now - cached.watermark > timedelta(hours=TOMBSTONE_HOURS) - timedelta(minutes=5)
    if stale or cached is None:
        cached = _Cached(model=model)
        rows = _rows(guild_id, model, None)
    else:
        rows = _rows(guild_id, model, cached.watermark)
    try:
        cached.index.apply(rows)
    except ValueError:  # vectors of another length: the model's output changed; start again
        cached = _Cached(model=model)
        cached.index.apply(_rows(guild_id, model, None))
    cached.watermark = now
    _indexes[guild_id] = cached
    return cached.index


def lock() -> threading.Lock:
    return _lock


def forget_indexes() -> None:
    """Drop every cached index (tests; the benchmark measures a cold load)."""
    with _lock:
        _indexes.clear()
