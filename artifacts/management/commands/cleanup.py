"""Delete expired files now, instead of waiting for the schedule."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from artifacts.services import cleanup_expired_files


class Command(BaseCommand):
    help = (
        "Delete expired artifacts (file and record), the files of expired uploads (their text stays), and "
        "files no record points to (left by a save that never committed). "
        "Exit code 0 when everything due was deleted, 1 when storage refused some (they are retried next run)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = cleanup_expired_files()
        for line in report.artifacts:
            self.stdout.write(f"Deleted artifact {line}")
        for line in report.uploads:
            self.stdout.write(f"Deleted the file of upload {line}")
        for line in report.orphans:
            self.stdout.write(f"Deleted orphaned file {line} (no record pointed to it)")
        for line in report.failures:
            self.stderr.write(f"Could not delete {line}")
        self.stdout.write(
            f"{len(report.artifacts)} expired artifact(s) and {len(report.uploads)} expired upload file(s) deleted."
            + (f" {len(report.orphans)} orphaned file(s) deleted." if report.orphans else "")
        )
        if report.failures:
            self.stderr.write(f"{len(report.failures)} could not be deleted; they will be tried again next run.")
            raise SystemExit(1)
