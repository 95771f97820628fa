"""Expiry: the schedule's function and `manage.py cleanup` delete expired files."""

from __future__ import annotations

import io
import os
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from artifacts.models import Artifact
from artifacts.services import stored_files
from artifacts.tasks import cleanup_expired_files
from conversations.models import Attachment
from pipeline.attachments import Upload
from pipeline.services import submit_request
from tests import personas
from tests.artifacts.conftest import submitted
from tests.artifacts.storage import UndeletableStorage


def expire(artifact: Artifact) -> None:
    Artifact.objects.filter(pk=artifact.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def upload(*, expired: bool) -> Attachment:
    request = submitted("what is in this file?")
    attachment = Attachment(
        message=request.message,
        kind=Attachment.Kind.TEXT,
        filename="notes.txt",
        size=5,
        extracted_text="hello",
        expires_at=timezone.now() + timedelta(hours=-1 if expired else 1),
    )
    attachment.file.save("notes.txt", ContentFile(b"hello"), save=False)
    attachment.save()
    return attachment


def cleanup() -> tuple[int | str | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    try:
        call_command("cleanup", stdout=out, stderr=err)
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ScheduledCleanupTests:
    def test_the_schedule_is_seeded_by_a_migration(self):
        schedule = Schedule.objects.get(func="artifacts.tasks.cleanup_expired_files")

        assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 5, -1)

    def test_it_deletes_expired_artifacts_file_and_row_and_keeps_live_ones(self, make_artifacts):
        old, fresh = make_artifacts("```a.txt\nold\n```\n```b.txt\nfresh\n```\n")
        expire(old)
        storage = old.file.storage

        assert cleanup_expired_files() == {"artifacts": 1, "uploads": 0, "orphans": 0, "failures": 0}

        assert list(Artifact.objects.values_list("filename", flat=True)) == ["b.txt"]
        assert not storage.exists(old.file.name)
        assert storage.exists(fresh.file.name)

    def test_expired_uploads_lose_their_file_but_keep_the_row_and_text(self):
        expired, live = upload(expired=True), upload(expired=False)
        path = expired.file.name

        assert cleanup_expired_files()["uploads"] == 1

        expired.refresh_from_db()
        assert expired.file.name == "" and expired.extracted_text == "hello" and expired.filename == "notes.txt"
        assert not live.file.storage.exists(path)
        live.refresh_from_db()
        assert live.file.storage.exists(live.file.name)

    def test_running_twice_is_harmless(self, make_artifacts):
        (artifact,) = make_artifacts()
        expire(artifact)
        cleanup_expired_files()

        assert cleanup_expired_files() == {"artifacts": 0, "uploads": 0, "orphans": 0, "failures": 0}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class CleanupCommandTests:
    def test_it_lists_what_it_deleted_and_exits_zero(self, make_artifacts):
        (artifact,) = make_artifacts()
        expire(artifact)
        upload(expired=True)

        code, out, err = cleanup()

        assert code == 0, err
        assert f"Deleted artifact hello.py (artifact {artifact.pk}, request {artifact.request_id}, 12 bytes)" in out
        assert "Deleted the file of upload notes.txt" in out
        assert out.endswith("1 expired artifact(s) and 1 expired upload file(s) deleted.\n")
        assert not Artifact.objects.exists()

    def test_with_nothing_expired_it_says_so(self, make_artifacts):
        make_artifacts()

        code, out, _ = cleanup()

        assert (code, out) == (0, "0 expired artifact(s) and 0 expired upload file(s) deleted.\n")
        assert Artifact.objects.count() == 1

    def test_a_file_storage_will_not_delete_is_reported_kept_and_exits_one(self, make_artifacts, artifact_storage):
        first, second = make_artifacts("```a.txt\na\n```\n```b.txt\nb\n```\n")
        expire(first)
        expire(second)
        artifact_storage(UndeletableStorage())

        code, _, err = cleanup()

        assert code == 1
        assert "Could not delete a.txt" in err and "Permission denied" in err
        assert "they will be tried again next run" in err
        assert Artifact.objects.count() == 2


def age(storage, name: str, *, hours: float) -> None:
    """Make a stored file look ``hours`` old (local storage)."""
    stamp = (timezone.now() - timedelta(hours=hours)).timestamp()
    os.utime(storage.path(name), (stamp, stamp))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class OrphanedFileTests:
    def test_an_upload_whose_intake_rolled_back_is_deleted_once_past_the_grace_period(self):
        user = personas.discord_user()
        thread = personas.thread_of(user)
        with pytest.raises(RuntimeError), transaction.atomic():
            submit_request(
                user=user,
                thread=thread,
                content="read this",
                enqueue=False,
                attachments=[Upload("notes.txt", "text/plain", b"hello")],
            )
            raise RuntimeError("the caller's transaction fails after the file was saved")
        assert not Attachment.objects.exists()
        (left,) = list(stored_files(default_storage, "uploads"))

        assert cleanup_expired_files()["orphans"] == 0  # young: its transaction may still commit
        age(default_storage, left, hours=2)
        assert cleanup_expired_files()["orphans"] == 1
        assert not default_storage.exists(left)

    def test_files_with_a_record_are_kept_however_old(self, make_artifacts):
        live = upload(expired=False)
        (artifact,) = make_artifacts()
        age(live.file.storage, live.file.name, hours=48)
        age(artifact.file.storage, artifact.file.name, hours=48)

        assert cleanup_expired_files()["orphans"] == 0
        assert live.file.storage.exists(live.file.name) and artifact.file.storage.exists(artifact.file.name)

    def test_the_command_lists_orphaned_artifact_files(self, make_artifacts):
        (artifact,) = make_artifacts()
        name, storage = artifact.file.name, artifact.file.storage
        Artifact.objects.filter(pk=artifact.pk).delete()  # the row gone, the file left behind
        age(storage, name, hours=2)

        code, out, err = cleanup()

        assert code == 0, err
        assert f"Deleted orphaned file {name} (no record pointed to it)" in out
        assert out.endswith("deleted. 1 orphaned file(s) deleted.\n")
        assert not storage.exists(name)
