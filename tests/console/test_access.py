"""Who may open which console page: staff only, the right method, real ids."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from conversations.models import Request

# Every page, with the method it answers. Ids are filled in from a real request.
PAGES = [
    ("console:requests", {}),
    ("console:request", {"request_id": None}),
    ("console:request-facts", {"request_id": None}),
    ("console:health", {}),
    ("console:health-panel", {}),
    ("console:usage", {}),
    ("console:conversations", {}),
    ("console:conversation", {"thread_id": None}),
    ("console:artifacts", {}),
]


def url_of(name: str, kwargs: dict, request: Request) -> str:
    ids = {"request_id": request.pk, "thread_id": request.thread_id}
    return reverse(name, kwargs={key: ids[key] for key in kwargs})


@pytest.mark.django_db
class AccessTests:
    @pytest.mark.parametrize(("name", "kwargs"), PAGES)
    def test_an_anonymous_visitor_is_sent_to_the_login_page(self, name, kwargs, queued_request):
        url = url_of(name, kwargs, queued_request)

        response = Client().get(url)

        assert response.status_code == 302
        assert response["Location"] == f"{reverse('console:login')}?next={url}"

    @pytest.mark.parametrize(("name", "kwargs"), PAGES)
    def test_a_signed_in_non_staff_user_gets_403(self, name, kwargs, queued_request, outsider_client):
        response = outsider_client.get(url_of(name, kwargs, queued_request))

        assert response.status_code == 403
        assert "not a staff account" in response.content.decode()

    @pytest.mark.parametrize(("name", "kwargs"), PAGES)
    def test_staff_can_open_it(self, name, kwargs, queued_request, staff_client, fake_ollama):
        response = staff_client.get(url_of(name, kwargs, queued_request))

        assert response.status_code == 200

    @pytest.mark.parametrize(("name", "kwargs"), PAGES)
    def test_it_only_answers_get(self, name, kwargs, queued_request, staff_client):
        response = staff_client.post(url_of(name, kwargs, queued_request))

        assert response.status_code == 405

    @pytest.mark.parametrize("name", ["console:request", "console:request-facts", "console:request-cancel"])
    def test_an_unknown_request_is_404(self, name, staff_client):
        method = staff_client.post if name.endswith("cancel") else staff_client.get

        response = method(reverse(name, kwargs={"request_id": 999_999}))

        assert response.status_code == 404

    def test_an_unknown_thread_is_404(self, staff_client):
        response = staff_client.get(reverse("console:conversation", kwargs={"thread_id": 999_999}))

        assert response.status_code == 404

    def test_an_inactive_staff_account_gets_no_page(self, queued_request):
        from tests import personas

        admin = personas.staff_admin()
        client = Client()
        client.force_login(admin)
        admin.is_active = False
        admin.save()

        response = client.get(reverse("console:requests"))

        assert response.status_code == 302  # Django signs inactive users out


@pytest.mark.django_db
class CancelAccessTests:
    def test_cancel_only_answers_post(self, queued_request, staff_client):
        response = staff_client.get(reverse("console:request-cancel", kwargs={"request_id": queued_request.pk}))

        assert response.status_code == 405
        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.QUEUED

    def test_cancel_without_a_csrf_token_is_refused(self, queued_request):
        from tests import personas

        client = Client(enforce_csrf_checks=True)
        client.force_login(personas.staff_admin())

        response = client.post(reverse("console:request-cancel", kwargs={"request_id": queued_request.pk}))

        assert response.status_code == 403
        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.QUEUED

    def test_an_anonymous_cancel_is_sent_to_the_login_page_and_changes_nothing(self, queued_request):
        response = Client().post(reverse("console:request-cancel", kwargs={"request_id": queued_request.pk}))

        assert response.status_code == 302
        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.QUEUED

    def test_a_non_staff_cancel_is_403_and_changes_nothing(self, queued_request, outsider_client):
        response = outsider_client.post(reverse("console:request-cancel", kwargs={"request_id": queued_request.pk}))

        assert response.status_code == 403
        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.QUEUED


@pytest.mark.django_db
class NavigationTests:
    def test_someone_who_is_not_staff_sees_no_links_into_the_console(self, outsider_client):
        html = outsider_client.get(reverse("console:usage")).content.decode()

        assert 'href="/console/' not in html
        assert "Sign out" in html

    def test_the_login_page_shows_no_console_links_to_anonymous_visitors(self):
        html = Client().get(reverse("console:login")).content.decode()

        assert f'href="{reverse("console:usage")}"' not in html
