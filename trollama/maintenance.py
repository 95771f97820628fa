"""Reading the maintenance state: one row every floor reads (is it on, its message).

Switching it lives in ``ops.maintenance``; releasing held requests in ``pipeline.holds``.
"""

from __future__ import annotations

from trollama import events
from trollama.models import Maintenance


def current_maintenance() -> Maintenance:
    """The maintenance state as stored now; an unsaved ``off`` row when never set."""
    return Maintenance.objects.filter(pk=Maintenance.SINGLETON_ID).first() or Maintenance(pk=Maintenance.SINGLETON_ID)


def maintenance_snapshot(maintenance: Maintenance | None = None) -> dict[str, str]:
    """The state as listeners see it, in ``system.maintenance`` events and ``sync`` snapshots."""
    maintenance = maintenance or current_maintenance()
    return {
        "mode": maintenance.mode,
        "message": maintenance.user_message,
        "changed_by": maintenance.changed_by,
        "changed_at": maintenance.changed_at.isoformat(),
    }


def maintenance_event(maintenance: Maintenance, *, released: int = 0) -> events.Event:
    return {"type": "system.maintenance", **maintenance_snapshot(maintenance), "released": released}
