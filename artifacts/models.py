from __future__ import annotations

import uuid

from django.core.files.storage import Storage, storages
from django.db import models
from django.utils import timezone

from artifacts.filenames import storage_name


def artifact_storage() -> Storage:
    """The ``artifacts`` storage from settings: local files, or S3 with ``ARTIFACT_STORAGE=s3``.

    A callable, so migrations do not record which backend was configured.
    """
    return storages["artifacts"]


def artifact_upload_to(instance: Artifact, filename: str) -> str:
    """A path of its own for every file: the name is for people, never a path on its own.

    The display name stays in ``Artifact.filename``.
    """
    return f"artifacts/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}/{storage_name(filename)}"


class Artifact(models.Model):
    """A file extracted from an answer, kept until ``expires_at``.

    The row is deleted with the file when it expires (``artifacts.services.expire_artifacts``).
    """

    owner = models.ForeignKey("conversations.ChatUser", on_delete=models.CASCADE, related_name="artifacts")
    thread = models.ForeignKey("conversations.Thread", on_delete=models.CASCADE, related_name="artifacts")
    request = models.ForeignKey("conversations.Request", on_delete=models.CASCADE, related_name="artifacts")
    filename = models.CharField(max_length=255, help_text="The name the user sees and downloads it as.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    file = models.FileField(upload_to=artifact_upload_to, storage=artifact_storage, max_length=500)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    download_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "pk"]

    def __str__(self) -> str:
        return self.filename

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
