"""The maintenance page in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conversations.models import Request
from ops.maintenance import set_maintenance
from pipeline.services import submit_request
from tests import personas
from trollama.maintenance import current_maintenance

CHANGE_URL = reverse("admin:trollama_maintenance_change", args=[1])


@pytest.fixture
def staff_client(client):
    client.force_login(personas.staff_admin())
    return client


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MaintenanceAdminTests:
    def test_the_list_goes_straight_to_the_one_row(self, staff_client):
        response = staff_client.get(reverse("admin:trollama_maintenance_changelist"))

        assert response.status_code == 302
        assert response["Location"] == CHANGE_URL

    def test_the_form_shows_the_state(self, staff_client):
        set_maintenance(mode="soft", message="Upgrading.", changed_by="ops")

        response = staff_client.get(CHANGE_URL)

        assert response.status_code == 200
        assert b"Upgrading." in response.content
        assert b"ops" in response.content

    def test_saving_switches_through_the_service_and_releases_held_requests(self, staff_client):
        set_maintenance(mode="soft", changed_by="ops")
        user = personas.discord_user()
        request = submit_request(user=user, thread=personas.thread_of(user), content="hi").request

        response = staff_client.post(CHANGE_URL, {"mode": "off", "message": ""})

        assert response.status_code == 302
        maintenance = current_maintenance()
        assert (maintenance.mode, maintenance.changed_by) == ("off", "ada")
        request.refresh_from_db()
        assert request.status == Request.Status.QUEUED

    def test_an_unknown_mode_is_a_form_error_not_a_crash(self, staff_client):
        response = staff_client.post(CHANGE_URL, {"mode": "sideways", "message": ""})

        assert response.status_code == 200
        assert b"Select a valid choice" in response.content
        assert current_maintenance().mode == "off"

    def test_a_too_long_message_is_a_form_error(self, staff_client):
        response = staff_client.post(CHANGE_URL, {"mode": "hard", "message": "x" * 501})

        assert response.status_code == 200
        assert b"at most 500 characters" in response.content
        assert current_maintenance().mode == "off"

    def test_there_is_no_add_or_delete(self, staff_client):
        assert staff_client.get(reverse("admin:trollama_maintenance_add")).status_code == 403
        assert staff_client.get(reverse("admin:trollama_maintenance_delete", args=[1])).status_code == 403

    def test_anonymous_users_are_sent_to_sign_in(self, client):
        response = client.get(CHANGE_URL)

        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]

    def test_non_staff_are_sent_to_sign_in(self, client):
        client.force_login(personas.outsider())

        assert client.get(CHANGE_URL).status_code == 302
