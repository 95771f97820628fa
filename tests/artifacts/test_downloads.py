"""Downloads: signed links for anyone holding one, the staff download for the console."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from artifacts.links import InvalidLink, make_token, public_url, read_token
from artifacts.models import Artifact
from artifacts.services import cleanup_expired_files
from tests import personas

CONTENT = '<script>alert("x")</script>\n\tindented [ok]\n'


@pytest.fixture
def artifact(make_artifacts) -> Artifact:
    (made,) = make_artifacts(f"```html title=page.html\n{CONTENT}```\n")
    return made


def expire(artifact: Artifact) -> None:
    Artifact.objects.filter(pk=artifact.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
class SignedLinkTests:
    def test_a_valid_link_downloads_the_exact_file_and_counts_it(self, client, artifact):
        response = client.get(public_url(artifact).removeprefix("http://127.0.0.1:8000"))

        assert response.status_code == 200
        assert body(response) == CONTENT.encode()
        assert response["Content-Type"] == "text/html; charset=utf-8"
        assert response["Content-Disposition"] == 'attachment; filename="page.html"'
        assert response["X-Content-Type-Options"] == "nosniff"
        artifact.refresh_from_db()
        assert artifact.download_count == 1

    def test_the_link_is_on_the_public_url(self, artifact, settings):
        settings.PUBLIC_URL = "https://trollama.example.org"

        assert public_url(artifact) == f"https://trollama.example.org/a/{make_token(artifact)}/"

    def test_an_expired_link_answers_410(self, client, artifact):
        token = make_token(artifact)
        expire(artifact)

        response = client.get(f"/a/{token}/")

        assert response.status_code == 410
        assert "expired" in response.content.decode()
        artifact.refresh_from_db()
        assert artifact.download_count == 0

    def test_a_link_past_its_expiry_answers_410_after_the_schedule_deleted_the_artifact(self, client, artifact):
        expire(artifact)
        artifact.refresh_from_db()
        token = make_token(artifact)  # the link carries the expiry that has now passed
        cleanup_expired_files()
        assert not Artifact.objects.exists()

        assert client.get(f"/a/{token}/").status_code == 410

    def test_a_link_whose_artifact_was_deleted_early_answers_404(self, client, artifact):
        token = make_token(artifact)
        Artifact.objects.all().delete()

        assert client.get(f"/a/{token}/").status_code == 404

    @pytest.mark.parametrize("tamper", ["swap_id", "truncate", "garbage", "other_salt"])
    def test_a_tampered_link_answers_404(self, client, artifact, make_artifacts, tamper):
        from django.core import signing

        (other,) = make_artifacts()
        token = make_token(artifact)
        signature = token.rpartition(":")[2]
        tampered = {
            "swap_id": make_token(other).rpartition(":")[0] + ":" + signature,
            "truncate": token[:-3],
            "garbage": "not-a-token",
            "other_salt": signing.Signer(salt="elsewhere").sign_object({"id": artifact.pk, "exp": 2**40}),
        }[tamper]

        response = client.get(f"/a/{tampered}/")

        assert response.status_code == 404
        with pytest.raises(InvalidLink):
            read_token(tampered)
        assert Artifact.objects.get(pk=artifact.pk).download_count == 0

    def test_the_expiry_in_a_link_is_the_artifacts(self, artifact):
        claim = read_token(make_token(artifact))

        assert claim.artifact_id == artifact.pk
        assert claim.expires_at == artifact.expires_at.replace(microsecond=0)

    def test_only_get_is_allowed(self, client, artifact):
        assert client.post(f"/a/{make_token(artifact)}/").status_code == 405


@pytest.mark.django_db
class StaffDownloadTests:
    def url(self, artifact_id: int) -> str:
        return reverse("artifacts:download", args=[artifact_id])

    def test_staff_download_the_file_and_it_is_counted(self, client, artifact):
        client.force_login(personas.staff_admin())

        response = client.get(self.url(artifact.pk))

        assert response.status_code == 200
        assert body(response) == CONTENT.encode()
        assert Artifact.objects.get(pk=artifact.pk).download_count == 1

    def test_an_anonymous_visitor_is_sent_to_the_login(self, client, artifact):
        response = client.get(self.url(artifact.pk))

        assert response.status_code == 302
        assert response["Location"] == f"/admin/login/?next=/artifacts/{artifact.pk}/download/"

    def test_non_staff_get_403(self, client, artifact):
        client.force_login(personas.outsider())

        assert client.get(self.url(artifact.pk)).status_code == 403
        assert Artifact.objects.get(pk=artifact.pk).download_count == 0

    def test_an_unknown_id_gets_404(self, client):
        client.force_login(personas.staff_admin())

        assert client.get(self.url(999_999)).status_code == 404

    def test_an_expired_artifact_gets_410(self, client, artifact):
        client.force_login(personas.staff_admin())
        expire(artifact)

        assert client.get(self.url(artifact.pk)).status_code == 410

    def test_a_row_whose_file_is_missing_gets_410(self, client, artifact):
        client.force_login(personas.staff_admin())
        artifact.file.storage.delete(artifact.file.name)

        assert client.get(self.url(artifact.pk)).status_code == 410

    def test_wrong_method_gets_405(self, client, artifact):
        client.force_login(personas.staff_admin())

        assert client.post(self.url(artifact.pk)).status_code == 405
