"""Rebuilding the fast path's classifier from the labelled examples.

The examples are the ``RouteExample`` rows (seeded from ``routing/data``, added
in the admin or with ``manage.py retrainrouter --load``) plus every route's own
example messages. Their vectors come from the embedding cache, so a retrain
after one edit embeds one text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from routing import embeddings, hosts
from routing.models import Route, RouteClassifier, RouteExample, RouterSettings

logger = logging.getLogger(__name__)

VISION_ROUTE = "vision"  # decided by attachments, never by text
SHIPPED_EXAMPLES = Path(__file__).resolve().parent / "data" / "examples.jsonl"
TRAIN_TIMEOUT = 300.0


class TrainingUnavailable(Exception):
    """Retraining cannot run now; ``str()`` says why and what to do, for an operator."""


def training_examples() -> list[tuple[str, str]]:
    """(route slug, text) pairs of every enabled route but vision, without duplicates."""
    routes = {route.pk: route for route in Route.objects.filter(enabled=True).exclude(slug=VISION_ROUTE)}
    pairs: dict[tuple[str, str], None] = {}
    for route in routes.values():
        for text in route.example_list:
            pairs[(route.slug, text)] = None
    for route_id, text in RouteExample.objects.filter(enabled=True, route_id__in=routes).values_list(
        "route_id", "text"
    ):
        if text.strip():
            pairs[(routes[route_id].slug, text.strip())] = None
    return sorted(pairs)


def examples_digest(pairs: Iterable[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(list(pairs)).encode()).hexdigest()


@dataclass(frozen=True)
class Retrained:
    classifier: RouteClassifier
    embedded: int  # examples whose vectors were not cached yet


def retrain() -> Retrained:
    """Embed the examples with the configured model, fit, calibrate and store the classifier.

    Raises ``TrainingUnavailable`` when no embedding model is set, no host can
    run it, or there are too few examples.
    """
    from routing import learning  # numpy: loaded only where training runs

    config = RouterSettings.current()
    model = config.embedding_model
    if not model:
        raise TrainingUnavailable("No embedding model is set (admin: Routing → Router settings), so nothing to train.")
    pairs = training_examples()
    if len({slug for slug, _ in pairs}) < 2:
        raise TrainingUnavailable("Training needs examples of at least two enabled routes.")
    choice = hosts.choose_host(model)
    if choice is None:
        raise TrainingUnavailable("Every Ollama host is disabled or skipped by its circuit breaker.")
    before = len(embeddings._vectors)
    try:
        vectors = embeddings.example_vectors(
            host=choice.url, model=model, texts=[text for _, text in pairs], timeout=TRAIN_TIMEOUT
        )
    except Exception as exc:
        raise TrainingUnavailable(
            f"Could not embed the examples with {model} on {choice.url} ({exc}). "
            f"If the model is missing, run `ollama pull {model}` there."
        ) from exc
    fitted = learning.fit(
        [vectors[text] for _, text in pairs],
        [slug for slug, _ in pairs],
        precision=config.calibration_precision,
    )
    found = fitted.classifier
    with transaction.atomic():
        row, _ = RouteClassifier.objects.update_or_create(
            embedding_model=model,
            defaults={
                "labels": list(found.labels),
                "weights": [list(row) for row in found.weights],
                "bias": list(found.bias),
                "thresholds": dict(found.thresholds),
                "report": fitted.report,
                "examples": len(pairs),
                "examples_digest": examples_digest(pairs),
                "trained_at": timezone.now(),
            },
        )
    logger.info("Retrained the router's classifier for %s on %d examples", model, len(pairs))
    return Retrained(row, embedded=max(0, len(embeddings._vectors) - before))


def retrain_if_stale() -> RouteClassifier | None:
    """Retrain when the examples changed since the last training (or none exists); None when nothing ran."""
    model = RouterSettings.current().embedding_model
    if not model:
        return None
    current = RouteClassifier.objects.filter(embedding_model=model).first()
    if current is not None and current.examples_digest == examples_digest(training_examples()):
        return None
    try:
        return retrain().classifier
    except TrainingUnavailable as exc:
        logger.warning("Router classifier not retrained: %s", exc)
        return None


@dataclass(frozen=True)
class Loaded:
    added: int
    skipped: int


def load_examples(*, path: Path, source: str = "", licence: str = "") -> Loaded:
    """Add examples from a JSON Lines file: ``{"route": slug, "text": ..., "source": ..., "licence": ...}`` a line.

    Lines whose route does not exist (or is vision) are skipped; so are duplicates.
    """
    routes = {route.slug: route for route in Route.objects.exclude(slug=VISION_ROUTE)}
    added = skipped = 0
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        route = routes.get(data.get("route", ""))
        text = str(data.get("text", "")).strip()
        if route is None or not text:
            skipped += 1
            continue
        rows.append(
            RouteExample(
                route=route,
                text=text,
                source=str(data.get("source") or source or "file")[:100],
                licence=str(data.get("licence") or licence)[:100],
            )
        )
    with transaction.atomic():
        before = RouteExample.objects.count()
        RouteExample.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        added = RouteExample.objects.count() - before
    return Loaded(added=added, skipped=skipped + len(rows) - added)


def schedule_retrain() -> None:
    """After an edit of the examples: retrain in a worker once the edit is committed."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task("routing.tasks.retrain_router"))
