"""django-q2 entry points for routing; thin wrappers around services."""

from __future__ import annotations

from routing import services, training


def sync_models() -> dict[str, int]:
    """Scheduled: refresh the model table from every host, warm the routes that ask for it, and train the
    fast path's classifier if its examples changed (or it was never trained, e.g. the embedding model was
    only just pulled)."""
    reports = services.sync_and_warm()
    retrained = training.retrain_if_stale()
    return {
        "hosts": len(reports),
        "unreachable": sum(not report.reachable for report in reports),
        "retrained": int(retrained is not None),
    }


def retrain_router() -> dict[str, int]:
    """After an admin edit of the examples: rebuild the classifier the fast path uses."""
    retrained = training.retrain_if_stale()
    return {"examples": retrained.examples if retrained else 0}
