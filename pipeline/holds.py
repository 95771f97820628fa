"""Releasing held requests when maintenance ends (see ``ops.maintenance`` for the modes)."""

from __future__ import annotations

from django.db import transaction
from django_q.tasks import async_task

from conversations import selectors
from conversations.models import Request
from trollama import events
from trollama.maintenance import current_maintenance
from trollama.models import Maintenance

RUN_REQUEST_TASK = "pipeline.tasks.run_request"


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
