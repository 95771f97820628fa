"""``manage.py queue``: the queue at a glance."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ops.selectors import QueueOverview, format_duration, queue_overview
from trollama.maintenance import current_maintenance


class Command(BaseCommand):
    help = "Show the queue: waiting, running, held, failed in the last hour, and the oldest waiting request."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print one JSON object instead of text."
        )

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        overview = queue_overview()
        maintenance = current_maintenance()
        wait = overview.oldest_wait
        if as_json:
            self.stdout.write(_json(overview, maintenance.mode, wait.total_seconds() if wait else None))
            return
        oldest = (
            f"request {overview.oldest_waiting_id}, waiting {format_duration(wait)}" if wait is not None else "none"
        )
        self.stdout.write(
            "\n".join(
                [
                    f"Waiting:          {overview.queued}",
                    f"Running:          {overview.running}",
                    f"Held:             {overview.held}",
                    f"Failed (1 hour):  {overview.failed_last_hour}",
                    f"Oldest waiting:   {oldest}",
                    f"Maintenance:      {maintenance.mode}",
                ]
            )
        )


def _json(overview: QueueOverview, maintenance: str, oldest_wait_seconds: float | None) -> str:
    return json.dumps(
        {
            "queued": overview.queued,
            "running": overview.running,
            "held": overview.held,
            "failed_last_hour": overview.failed_last_hour,
            "oldest_waiting_id": overview.oldest_waiting_id,
            "oldest_wait_seconds": round(oldest_wait_seconds, 1) if oldest_wait_seconds is not None else None,
            "maintenance": maintenance,
        }
    )
