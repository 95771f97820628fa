"""Switching maintenance mode from the console's health page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from conversations.models import Request
from ops.maintenance import set_maintenance
from pipeline.services import Refusal, submit_request
from tests import personas
from trollama.maintenance import current_maintenance

URL = reverse("console:maintenance")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MaintenanceToggleTests:
    def test_the_health_page_shows_the_state_and_a_form_with_a_csrf_token(self, staff_client, fake_ollama):
        set_maintenance(mode="soft", message="Swapping models.", changed_by="ops")

        html = staff_client.get(reverse("console:health")).content.decode()

        assert 'data-maintenance="soft"' in html and "Swapping models." in html and "set by ops" in html
        assert f'action="{URL}"' in html and "csrfmiddlewaretoken" in html

    def test_hard_maintenance_from_the_console_refuses_the_next_request_with_its_message(self, staff_client):
        response = staff_client.post(URL, {"mode": "hard", "message": "Back at 18:00."})

        assert response.status_code == 302 and response["Location"] == reverse("console:health")
        state = current_maintenance()
        assert (state.mode, state.message, state.changed_by) == ("hard", "Back at 18:00.", "ada")  # the staff persona
        user = personas.discord_user()
        with pytest.raises(Refusal, match=r"Back at 18:00\."):
            submit_request(user=user, thread=personas.thread_of(user), content="hello", enqueue=False)

    def test_off_from_the_console_releases_held_requests(self, staff_client):
        set_maintenance(mode="soft", changed_by="ops")
        user = personas.discord_user()
        held = submit_request(user=user, thread=personas.thread_of(user), content="hi", enqueue=False).request
        assert held.status == Request.Status.HELD

        staff_client.post(URL, {"mode": "off", "message": ""})

        held.refresh_from_db()
        assert current_maintenance().mode == "off" and held.status == Request.Status.QUEUED

    def test_an_unknown_mode_is_a_400_with_the_form_error_and_nothing_changes(self, staff_client, fake_ollama):
        response = staff_client.post(URL, {"mode": "sideways", "message": ""})

        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
        assert current_maintenance().mode == "off"

    def test_it_only_answers_post_and_only_to_staff(self, staff_client, outsider_client):
        assert staff_client.get(URL).status_code == 405
        assert outsider_client.post(URL, {"mode": "hard"}).status_code == 403
        anonymous = Client().post(URL, {"mode": "hard"})
        assert anonymous.status_code == 302 and reverse("console:login") in anonymous["Location"]
        assert current_maintenance().mode == "off"

    def test_without_a_csrf_token_it_is_refused(self):
        client = Client(enforce_csrf_checks=True)
        client.force_login(personas.staff_admin())

        assert client.post(URL, {"mode": "hard"}).status_code == 403
        assert current_maintenance().mode == "off"
