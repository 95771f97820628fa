"""Maintenance mode: reading it, switching it, and what intake does under it.

* **off**: everything runs.
* **soft**: new requests are stored as ``held`` (not enqueued); running ones finish.
* **hard**: new requests are refused with the operator's message; held ones stay held.
* switching to **off** releases held requests, oldest first.

The state is one database row read at every intake (a primary-key lookup), so
a switch made by any process — ``manage.py maintenance``, the admin, the
console — takes effect at once in every other process.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from conversations import selectors
from conversations.models import Request
from trollama import events
from trollama.models import Maintenance

logger = logging.getLogger(__name__)

RUN_REQUEST_TASK = "conversations.tasks.run_request"
MODES = tuple(Maintenance.Mode.values)


class InvalidMaintenanceMode(ValueError):
    pass


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


@transaction.atomic
def set_maintenance(*, mode: str, message: str = "", changed_by: str) -> Maintenance:
    """Switch maintenance mode and tell every listener (``system.maintenance``, after commit).

    Switching to ``off`` releases every held request in queue order. Raises
    ``InvalidMaintenanceMode`` for a mode other than off, soft or hard.
    """
    if mode not in MODES:
        raise InvalidMaintenanceMode(f"Unknown maintenance mode {mode!r}: use one of {', '.join(MODES)}.")
    max_length = Maintenance._meta.get_field("message").max_length or 0
    if len(message) > max_length:
        raise InvalidMaintenanceMode(f"The message is {len(message)} characters long; the limit is {max_length}.")
    Maintenance.objects.get_or_create(pk=Maintenance.SINGLETON_ID)
    # The lock makes concurrent switches (and their releases) happen one after the other.
    maintenance = Maintenance.objects.select_for_update().get(pk=Maintenance.SINGLETON_ID)
    previous = maintenance.mode
    maintenance.mode = mode
    maintenance.message = message.strip() if mode != Maintenance.Mode.OFF else ""
    maintenance.changed_by = changed_by[:150]
    maintenance.changed_at = timezone.now()
    maintenance.save()
    released = release_held_requests() if mode == Maintenance.Mode.OFF else 0
    logger.info("Maintenance %s -> %s by %s; %d held request(s) released", previous, mode, changed_by, released)
    events.publish(maintenance_event(maintenance, released=released))
    return maintenance


def release_held_requests() -> int:
    """Queue every held request, oldest first, and hand each to a worker after commit.

    Call only while maintenance is off (``set_maintenance`` does, and the
    sweeper does for a request that was held during the switch itself).
    """
    held = list(
        Request.objects.select_for_update(of=("self",))
        .filter(status=Request.Status.HELD)
        .select_related("user", "thread", "route")
        .order_by("queued_at", "pk")
    )
    for request in held:
        Request.objects.filter(pk=request.pk, status=Request.Status.HELD).update(status=Request.Status.QUEUED)
        request.status = Request.Status.QUEUED
        _enqueue_on_commit(request.pk)
        events.publish(
            {
                "type": "request.queued",
                "request_id": request.pk,
                "status": request.status,
                "position": selectors.queue_position(request) or 1,
                "request": selectors.request_summary(request),
            },
            request_id=request.pk,
        )
    return len(held)


def _enqueue_on_commit(request_id: int) -> None:
    transaction.on_commit(lambda: async_task(RUN_REQUEST_TASK, request_id, task_name=f"request-{request_id}"))


def release_if_maintenance_ended() -> int:
    """Release held requests when maintenance is off; 0 when it is on.

    Closes the one gap in the switch: a request held by an intake whose
    transaction committed just after ``set_maintenance(mode="off")`` ran its
    release. Intake calls this after its commit and the sweeper calls it
    every minute.
    """
    if current_maintenance().is_on:
        return 0
    with transaction.atomic():
        if not Request.objects.filter(status=Request.Status.HELD).exists():
            return 0
        maintenance = Maintenance.objects.select_for_update().filter(pk=Maintenance.SINGLETON_ID).first()
        if maintenance is not None and maintenance.is_on:
            return 0
        return release_held_requests()
