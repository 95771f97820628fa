"""django-q2 entry points for routing; thin wrappers around services."""

from __future__ import annotations

from routing import services


def sync_models() -> dict[str, int]:
    """Scheduled: refresh the model table from every host, then warm the routes that ask for it."""
    reports = services.sync_and_warm()
    return {"hosts": len(reports), "unreachable": sum(not report.reachable for report in reports)}
