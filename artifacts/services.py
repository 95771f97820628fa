"""Storing, serving and expiring files: artifacts made from answers, and users' uploads."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from artifacts.extraction import ExtractedFile, extract_files
from artifacts.languages import content_type_for
from artifacts.models import Artifact
from conversations.models import Attachment, Request

logger = logging.getLogger(__name__)


@dataclass
class StoredArtifacts:
    artifacts: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the user: files left out, and why


def store_answer_artifacts(*, request: Request, content: str, wanted: bool) -> StoredArtifacts:
    """Extract the files in an answer and store them, owned by the request's user.

    ``wanted``: the user asked for files, so unnamed blocks are named after their
    language when the model named none (see ``artifacts.extraction``). Named
    blocks become files either way: a name on a block is the model saying "this
    is a file".

    Storage failing (a full disk, S3 unreachable) never costs the answer: the
    files of this answer are all dropped, with a note saying so, and the answer
    is stored as usual.

    Precondition: the caller holds the request (its lease, in a transaction).
    Each file is written before its row, so a rollback of the caller's
    transaction after this call can leave files without rows, never rows
    without files.
    """
    extraction = extract_files(content, name_unnamed=wanted, max_bytes=settings.ARTIFACT_MAX_BYTES)
    stored = StoredArtifacts(notes=list(extraction.notes))
    now = timezone.now()
    try:
        with transaction.atomic():
            for file in extraction.files:
                stored.artifacts.append(_store(request=request, file=file, now=now))
    except Exception:
        logger.exception("Could not store the files of request %s", request.pk)
        for artifact in stored.artifacts:
            _discard_file(artifact)
        stored.artifacts = []
        if extraction.files:
            stored.notes.append(
                "The files in this answer could not be saved because file storage failed; their text is in the "
                "answer. If it keeps happening, tell an operator."
            )
    return stored


def _discard_file(artifact: Artifact) -> None:
    try:
        artifact.file.delete(save=False)
    except Exception:
        logger.exception("Could not remove the file %s after a failed save", artifact.file.name)


def _store(*, request: Request, file: ExtractedFile, now: datetime) -> Artifact:
    data = file.content.encode()
    artifact = Artifact(
        owner_id=request.user_id,
        thread_id=request.thread_id,
        request=request,
        filename=file.filename,
        content_type=content_type_for(file.filename),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=now,
        expires_at=now + timedelta(hours=settings.ARTIFACT_TTL_HOURS),
    )
    artifact.file.save(file.filename, ContentFile(data), save=False)
    artifact.save()
    return artifact


def read_artifact(*, artifact_id: int) -> bytes:
    """The stored bytes of one artifact (for the bot, which attaches them in Discord)."""
    artifact = Artifact.objects.get(pk=artifact_id)
    with artifact.file.open("rb") as handle:
        return handle.read()


def record_download(*, artifact: Artifact) -> None:
    Artifact.objects.filter(pk=artifact.pk).update(download_count=F("download_count") + 1)


def delete_artifact(*, artifact: Artifact) -> None:
    """Delete the stored file, then the row. Raises what storage raised, keeping the row."""
    artifact.file.delete(save=False)
    Artifact.objects.filter(pk=artifact.pk).delete()


@dataclass
class CleanupReport:
    artifacts: list[str] = field(default_factory=list)  # one line per artifact deleted
    uploads: list[str] = field(default_factory=list)  # one line per upload whose file was deleted
    orphans: list[str] = field(default_factory=list)  # files no record points to
    failures: list[str] = field(default_factory=list)  # what could not be deleted (tried again next run)

    def counts(self) -> dict[str, int]:
        return {
            "artifacts": len(self.artifacts),
            "uploads": len(self.uploads),
            "orphans": len(self.orphans),
            "failures": len(self.failures),
        }


# A file younger than this may belong to a save whose transaction has not committed yet.
ORPHAN_GRACE = timedelta(hours=1)


def cleanup_expired_files(*, now: datetime | None = None) -> CleanupReport:
    """Delete expired artifacts (file and row) and expired uploads (file only).

    An upload keeps its row and ``extracted_text``, so the conversation still
    reads the same. A file storage refuses to delete is reported and left for
    the next run; nothing else stops because of it. Safe to run concurrently:
    deleting what is already gone is a no-op.
    """
    now = now or timezone.now()
    report = CleanupReport()
    for artifact in Artifact.objects.filter(expires_at__lte=now).order_by("pk").iterator():
        label = f"{artifact.filename} (artifact {artifact.pk}, request {artifact.request_id}, {artifact.size} bytes)"
        try:
            delete_artifact(artifact=artifact)
        except Exception as exc:  # any storage back end's error
            logger.exception("Could not delete artifact %s", artifact.pk)
            report.failures.append(f"{label}: {exc}")
        else:
            report.artifacts.append(label)
    expired_uploads = Attachment.objects.filter(expires_at__lte=now).exclude(file="").order_by("pk")
    for attachment in expired_uploads.iterator():
        label = (
            f"{attachment.filename} (upload {attachment.pk}, message {attachment.message_id}, {attachment.size} bytes)"
        )
        try:
            _forget_upload_file(attachment)
        except Exception as exc:
            logger.exception("Could not delete the file of upload %s", attachment.pk)
            report.failures.append(f"{label}: {exc}")
        else:
            report.uploads.append(label)
    _delete_orphans(report, Attachment, "uploads", now=now)
    _delete_orphans(report, Artifact, "artifacts", now=now)
    return report


def stored_files(storage: Storage, directory: str) -> Iterator[str]:
    """The name of every file under ``directory``, at any depth."""
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:  # nothing stored there yet
        return
    for name in files:
        yield f"{directory}/{name}"
    for name in directories:
        yield from stored_files(storage, f"{directory}/{name}")


def _delete_orphans(
    report: CleanupReport, model: type[Artifact | Attachment], directory: str, *, now: datetime
) -> None:
    """Delete files under ``directory`` that no row points to, once they are older than ``ORPHAN_GRACE``.

    Files are saved inside the transaction that stores their row; when that
    transaction rolls back (or the process dies before it commits) the file
    stays with nothing pointing to it, and nothing else would ever delete it.
    """
    storage = model._meta.get_field("file").storage
    referenced = set(model.objects.exclude(file="").values_list("file", flat=True))
    for name in stored_files(storage, directory):
        if name in referenced:
            continue
        try:
            if storage.get_modified_time(name) > now - ORPHAN_GRACE:
                continue
            storage.delete(name)
        except Exception as exc:  # any storage back end's error
            logger.exception("Could not delete orphaned file %s", name)
            report.failures.append(f"{name} (orphaned file): {exc}")
        else:
            report.orphans.append(name)


def _forget_upload_file(attachment: Attachment) -> None:
    # File first: if the update then fails, the next run finds the row again
    # and deleting an already deleted file is a no-op.
    attachment.file.delete(save=False)
    Attachment.objects.filter(pk=attachment.pk).update(file="")
