"""``manage.py doctor``: one line per check, exit status 1 when any fails."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ops.doctor import FAIL, OK, WARN, run_checks

LABELS = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}


class Command(BaseCommand):
    help = "Check the configuration, the database and migrations, Ollama and each route's model, and the Discord token."

    def handle(self, *args: Any, **options: Any) -> None:
        findings = run_checks()
        styles = {OK: self.style.SUCCESS, WARN: self.style.WARNING, FAIL: self.style.ERROR}
        width = max(len(finding.check) for finding in findings)
        for finding in findings:
            label = styles[finding.status](LABELS[finding.status])
            self.stdout.write(f"{label}  {finding.check:<{width}}  {finding.detail}")
        failed = sum(finding.status == FAIL for finding in findings)
        if failed:
            self.stderr.write(f"{failed} check(s) failed.")
            raise SystemExit(1)
        self.stdout.write("All checks passed." if not any(f.status == WARN for f in findings) else "No failures.")
