"""Maintenance mode: switching it, intake under it, and releasing held requests in order."""

from __future__ import annotations

import pytest

from conversations.models import Message, Request
from conversations.phases import describe_queued
from ops.maintenance import InvalidMaintenanceMode, set_maintenance
from pipeline.holds import release_if_maintenance_ended
from pipeline.processing import claim_request, requeue_abandoned_requests
from pipeline.services import Refusal, submit_request
from tests import personas
from tests.layer import listening
from tests.ops.queue_helpers import empty_queue, enqueued_request_ids
from trollama import events
from trollama.maintenance import current_maintenance
from trollama.models import Maintenance


@pytest.fixture
def heard():
    """Events sent to the ``requests`` and ``system`` groups, read after the fact."""
    with listening(events.REQUESTS_GROUP, events.SYSTEM_GROUP) as received:
        yield received


def submit(content: str = "hello", *, name: str = "alice", external_id: str = "1001") -> Request:
    user = personas.discord_user(name, external_id)
    thread = personas.thread_of(user, f"thread-of-{name}")
    return submit_request(user=user, thread=thread, content=content).request


@pytest.mark.usefixtures(empty_queue.__name__)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MaintenanceStateTests:
    def test_it_starts_off(self):
        maintenance = current_maintenance()

        assert maintenance.mode == Maintenance.Mode.OFF
        assert not maintenance.is_on

    def test_switching_stores_who_and_when_and_tells_listeners_after_commit(self, heard):
        maintenance = set_maintenance(mode="soft", message="Upgrading the GPU.", changed_by="ada")

        assert maintenance.mode == "soft"
        stored = Maintenance.objects.get()
        assert (stored.mode, stored.message, stored.changed_by) == ("soft", "Upgrading the GPU.", "ada")
        [event] = [e for e in heard() if e["type"] == "system.maintenance"]
        assert event["mode"] == "soft"
        assert event["message"] == "Upgrading the GPU."
        assert event["changed_by"] == "ada"

    def test_an_unknown_mode_is_refused_and_nothing_changes(self):
        with pytest.raises(InvalidMaintenanceMode, match="off, soft, hard"):
            set_maintenance(mode="sideways", changed_by="ada")

        assert current_maintenance().mode == "off"

    def test_a_message_longer_than_the_field_is_refused(self):
        with pytest.raises(InvalidMaintenanceMode, match="limit is 500"):
            set_maintenance(mode="hard", message="x" * 501, changed_by="ada")

        assert current_maintenance().mode == "off"

    def test_without_a_message_users_get_a_standard_one(self):
        assert "down for maintenance" in set_maintenance(mode="hard", changed_by="ada").user_message


@pytest.mark.usefixtures(empty_queue.__name__)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class IntakeUnderMaintenanceTests:
    def test_hard_refuses_with_the_operators_message_and_stores_nothing(self):
        set_maintenance(mode="hard", message="Back at 18:00 UTC.", changed_by="ada")

        with pytest.raises(Refusal) as refusal:
            submit()

        assert refusal.value.code == "maintenance"
        assert refusal.value.message == "Back at 18:00 UTC."
        assert not Request.objects.exists()
        assert not Message.objects.exists()

    def test_hard_maintenance_is_checked_before_the_message_itself(self):
        set_maintenance(mode="hard", message="Back soon.", changed_by="ada")

        with pytest.raises(Refusal) as refusal:
            submit("   ")

        assert refusal.value.code == "maintenance"

    def test_soft_holds_the_request_without_enqueueing_and_says_why(self, heard):
        set_maintenance(mode="soft", message="New model going in.", changed_by="ada")

        request = submit()

        request.refresh_from_db()
        assert request.status == Request.Status.HELD
        assert enqueued_request_ids() == []
        [queued] = [e for e in heard() if e["type"] == "request.queued"]
        assert queued["status"] == "held"
        assert queued["message"] == "New model going in."
        assert describe_queued(queued).startswith("Held: New model going in.")

    def test_a_worker_never_claims_a_held_request(self):
        set_maintenance(mode="soft", changed_by="ada")
        request = submit()

        assert claim_request(request_id=request.pk) is None

        request.refresh_from_db()
        assert (request.status, request.attempts) == (Request.Status.HELD, 0)

    def test_off_releases_held_requests_in_queue_order(self, heard):
        set_maintenance(mode="soft", changed_by="ada")
        held = [submit(f"message {n}", name=f"user{n}", external_id=str(n)) for n in range(3)]

        maintenance = set_maintenance(mode="off", changed_by="ada")

        assert maintenance.mode == "off"
        assert set(Request.objects.values_list("status", flat=True)) == {Request.Status.QUEUED}
        assert enqueued_request_ids() == [request.pk for request in held]
        sent = heard()
        released = [e for e in sent if e["type"] == "request.queued" and e["status"] == "queued"]
        assert [e["request_id"] for e in released] == [request.pk for request in held]
        assert all(e["status"] == "queued" for e in released)
        switches = [(e["mode"], e["released"]) for e in sent if e["type"] == "system.maintenance"]
        assert switches == [("soft", 0), ("off", 3)]

    def test_held_requests_stay_held_under_hard(self):
        set_maintenance(mode="soft", changed_by="ada")
        request = submit()

        set_maintenance(mode="hard", changed_by="ada")
        requeue_abandoned_requests()

        request.refresh_from_db()
        assert request.status == Request.Status.HELD
        assert enqueued_request_ids() == []

    def test_a_request_held_during_the_switch_is_released_by_the_next_check(self):
        set_maintenance(mode="soft", changed_by="ada")
        request = submit()
        # As if its intake read "soft" but committed after the switch released the others.
        Maintenance.objects.update(mode="off")

        assert release_if_maintenance_ended() == 1

        request.refresh_from_db()
        assert request.status == Request.Status.QUEUED
        assert enqueued_request_ids() == [request.pk]

    def test_the_sweeper_releases_held_requests_once_maintenance_is_off(self):
        set_maintenance(mode="soft", changed_by="ada")
        request = submit()
        Maintenance.objects.update(mode="off")

        counts = requeue_abandoned_requests()

        assert counts["released"] == 1
        request.refresh_from_db()
        assert request.status == Request.Status.QUEUED

    def test_the_switch_is_read_from_the_database_at_every_intake(self):
        Maintenance.objects.update(mode="hard", message="Another process switched me.")

        with pytest.raises(Refusal, match=r"Another process switched me\."):
            submit()
