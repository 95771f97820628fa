"""The artifacts admin: list, filter, search, download, delete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from artifacts.models import Artifact
from tests import personas

LIST = "/admin/artifacts/artifact/"


@pytest.mark.django_db
class ArtifactAdminTests:
    def test_the_list_shows_each_file_with_its_download_link(self, client, make_artifacts):
        (artifact,) = make_artifacts()
        client.force_login(personas.staff_admin())

        page = client.get(LIST).content.decode()

        assert "hello.py" in page
        assert f'href="/artifacts/{artifact.pk}/download/"' in page

    def test_search_and_the_expiry_filter(self, client, make_artifacts):
        live, old = make_artifacts("```a.txt\na\n```\n```b.csv\nb\n```\n")
        Artifact.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        client.force_login(personas.staff_admin())

        found = client.get(LIST, {"q": "b.csv"}).context["cl"].result_list
        expired = client.get(LIST, {"expiry": "expired"}).context["cl"].result_list
        alive = client.get(LIST, {"expiry": "live"}).context["cl"].result_list

        assert [a.pk for a in found] == [old.pk]
        assert [a.pk for a in expired] == [old.pk]
        assert [a.pk for a in alive] == [live.pk]

    def test_deleting_in_bulk_removes_the_files_too(self, client, make_artifacts):
        first, second = make_artifacts("```a.txt\na\n```\n```b.txt\nb\n```\n")
        storage = first.file.storage
        client.force_login(personas.staff_admin())

        response = client.post(
            LIST, {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"}
        )

        assert response.status_code == 302
        assert not Artifact.objects.exists()
        assert not storage.exists(first.file.name) and not storage.exists(second.file.name)

    def test_non_staff_are_sent_to_the_login(self, client):
        client.force_login(personas.outsider())

        assert client.get(LIST).status_code == 302
