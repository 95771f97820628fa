"""Storage back ends that fail, for the paths where storage refuses (as a full disk or S3 outage would)."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import FileSystemStorage


class BrokenStorage(FileSystemStorage):
    """Every write fails."""

    def _save(self, name: str, content: Any) -> str:
        raise OSError(28, "No space left on device")


class UndeletableStorage(FileSystemStorage):
    """Writes work; deleting fails."""

    def delete(self, name: str) -> None:
        raise PermissionError(13, "Permission denied", name)
