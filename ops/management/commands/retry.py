"""``manage.py retry ID``: run a failed request again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.models import Request
from pipeline.services import NotRetryable, retry_request


class Command(BaseCommand):
    help = "Run a failed request again with a fresh attempt budget."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("request_id", type=int, help="The request's id (see `manage.py queue` or the admin).")

    def handle(self, *args: Any, request_id: int, **options: Any) -> None:
        try:
            request = retry_request(request_id=request_id)
        except NotRetryable as exc:
            raise CommandError(str(exc)) from None
        if request.status == Request.Status.HELD:
            self.stdout.write(f"Request {request.pk} is held: maintenance is on, so it runs when maintenance ends.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Request {request.pk} is queued again; a worker will pick it up."))
