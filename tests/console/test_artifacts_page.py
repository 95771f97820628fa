"""The artifacts page: every stored file, filtered and paginated, each linked to its download, thread and request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from artifacts.models import Artifact
from artifacts.services import store_answer_artifacts
from console import views
from conversations.models import ChatUser
from pipeline.services import submit_request
from tests import personas

URL = reverse("console:artifacts")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def stored(user: ChatUser, *files: tuple[str, str], thread: str = "files") -> list[Artifact]:
    """Files stored from one answer to ``user`` in their thread ``thread``, as the worker stores them."""
    request = submit_request(
        user=user, thread=personas.thread_of(user, thread), content="save it as a file", enqueue=False
    ).request
    answer = "".join(f'```text title="{name}"\n{content}\n```\n' for name, content in files)
    return store_answer_artifacts(request=request, content=answer, wanted=True).artifacts


def expire(artifact: Artifact) -> None:
    Artifact.objects.filter(pk=artifact.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def listed(response) -> list[str]:
    return [artifact.filename for artifact in response.context["page"].object_list]


@pytest.mark.django_db
class ArtifactsPageTests:
    def test_it_lists_files_newest_first_linked_to_their_download_thread_and_request(self, staff_client):
        alice = personas.discord_user()
        (older,) = stored(alice, ("notes.md", "# hi"), thread="notes-thread")
        Artifact.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))
        (newer,) = stored(alice, ("scraper.py", "x" * 2048))

        response = staff_client.get(URL)

        assert listed(response) == ["scraper.py", "notes.md"]
        html = response.content.decode()
        assert f'href="{reverse("artifacts:download", args=[newer.pk])}"' in html
        assert f'href="{reverse("console:conversation", args=[older.thread_id])}">notes-thread</a>' in html
        assert f'href="{reverse("console:request", args=[older.request_id])}">#{older.request_id}</a>' in html
        assert "2.0\xa0KB" in html  # the size, for people
        assert "Alice (Discord)" in html
        assert 'aria-current="page">Artifacts</a>' in html

    def test_an_expired_file_says_so_and_has_no_download_link(self, staff_client):
        (artifact,) = stored(personas.discord_user(), ("old.txt", "bye"))
        expire(artifact)

        html = staff_client.get(URL).content.decode()

        assert 'class="expired">Expired</span>' in html
        assert reverse("artifacts:download", args=[artifact.pk]) not in html

    def test_it_filters_by_name_owner_type_and_state(self, staff_client):
        alice, bob = personas.discord_user("alice", "1"), personas.local_user("bob")
        stored(alice, ("scraper.py", "print(1)"), ("NOTES.md", "# notes"))
        (old,) = stored(bob, ("data.csv", "a,b"), thread="bob-files")
        expire(old)

        def found(**query: str) -> list[str]:
            return sorted(listed(staff_client.get(URL, query)))

        assert found(name="SCRAP") == ["scraper.py"]
        assert found(owner="bo") == ["data.csv"]
        assert found(owner="Alice") == ["NOTES.md", "scraper.py"]
        assert found(content_type="text/csv") == ["data.csv"]
        assert found(state="expired") == ["data.csv"]
        assert found(state="live") == ["NOTES.md", "scraper.py"]
        assert found(state="sideways") == ["NOTES.md", "data.csv", "scraper.py"]  # unknown: ignored
        assert found(owner="alice", name="notes") == ["NOTES.md"]

    def test_the_type_filter_offers_the_stored_content_types(self, staff_client):
        stored(personas.discord_user(), ("a.py", "1"), ("b.csv", "2"))

        response = staff_client.get(URL)

        assert response.context["content_types"] == ["text/csv", "text/x-python"]
        assert '<option value="text/csv">text/csv</option>' in response.content.decode()

    def test_pages_keep_the_filters(self, staff_client, monkeypatch):
        monkeypatch.setattr(views, "ARTIFACTS_PER_PAGE", 2)
        alice = personas.discord_user()
        stored(alice, *[(f"file-{i}.txt", str(i)) for i in range(5)])
        stored(alice, ("other.md", "x"), thread="elsewhere")

        response = staff_client.get(URL, {"name": "file", "owner": "alice", "page": "2"})

        assert len(listed(response)) == 2 and all(name.startswith("file-") for name in listed(response))
        html = response.content.decode()
        assert "Page 2 of 3" in html
        assert 'href="?name=file&amp;owner=alice&amp;page=3"' in html
        assert 'href="?name=file&amp;owner=alice&amp;page=1"' in html

    def test_without_files_it_says_how_one_is_made(self, staff_client):
        html = staff_client.get(URL).content.decode()

        assert "No files are stored right now" in html and "save it as scraper.py" in html

    def test_when_no_file_matches_it_says_so_and_offers_to_clear_the_filters(self, staff_client):
        stored(personas.discord_user(), ("a.py", "1"))

        html = staff_client.get(URL, {"name": "zzz"}).content.decode()

        assert "No file matches these filters" in html
        assert f'<a href="{URL}">clear the filters</a>' in html

    def test_the_number_of_queries_does_not_grow_with_the_rows(self, staff_client):
        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert staff_client.get(URL).status_code == 200
            return len(captured)

        stored(personas.discord_user("alice", "1"), ("a.py", "1"))
        with_one = queries()
        for i in range(6):
            stored(personas.discord_user(f"user{i}", f"10{i}"), (f"f{i}.py", "1"), (f"g{i}.md", "2"), thread=f"t{i}")

        assert queries() == with_one
        assert with_one <= 6  # session, user, count, rows, content types, and a spare
