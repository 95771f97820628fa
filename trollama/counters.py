"""Monotonic counters for ``/metrics``, stored in ``MetricCounter`` rows."""

from __future__ import annotations

import json

from django.db import IntegrityError, transaction
from django.db.models import F

from trollama.models import MetricCounter

# The counters there are, by their metric name (without Prometheus' _total).
TOKENS = "trollama_tokens"
OLLAMA_ERRORS = "trollama_ollama_errors"  # labels: host, kind (failed_request or retried_attempt)


def label_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


def increment(*, name: str, labels: dict[str, str], amount: int = 1) -> None:
    """Add ``amount`` (ignored unless positive) to the counter ``name`` with ``labels``.

    Safe under concurrency: the first increment of a label set inserts its row,
    and a writer that loses that race (the unique constraint) adds to the row
    the winner made. Call it inside the transaction that records what is
    counted, so the two commit or roll back together.
    """
    if amount <= 0:
        return
    key = label_key(labels)
    rows = MetricCounter.objects.filter(name=name, key=key)
    if rows.update(value=F("value") + amount):
        return
    try:
        with transaction.atomic():  # a savepoint: PostgreSQL aborts the whole transaction on an IntegrityError
            MetricCounter.objects.create(name=name, key=key, labels=labels, value=amount)
    except IntegrityError:
        rows.update(value=F("value") + amount)


def counter_values(name: str) -> list[tuple[dict[str, str], int]]:
    """Every label set of counter ``name`` with its value."""
    return [(row.labels, row.value) for row in MetricCounter.objects.filter(name=name).order_by("key")]
