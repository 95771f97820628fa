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

from pipeline.holds import release_held_requests
from trollama import events
from trollama.maintenance import maintenance_event
from trollama.models import Maintenance

logger = logging.getLogger(__name__)

MODES = tuple(Maintenance.Mode.values)


class InvalidMaintenanceMode(ValueError):
    pass


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
