"""``manage.py maintenance status | soft [--message TEXT] | hard [--message TEXT] | off``."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.maintenance import InvalidMaintenanceMode, set_maintenance
from ops.selectors import held_count
from trollama.maintenance import current_maintenance
from trollama.models import Maintenance


def describe(maintenance: Maintenance, *, held: int) -> str:
    if not maintenance.is_on:
        line = "Maintenance is off: requests are answered normally."
    elif maintenance.mode == Maintenance.Mode.SOFT:
        line = "Maintenance is SOFT: new requests are accepted and held; running ones finish."
    else:
        line = "Maintenance is HARD: new requests are refused; held ones stay held."
    lines = [line]
    if maintenance.is_on:
        lines.append(f"Users are told: {maintenance.user_message}")
    if maintenance.changed_by:
        lines.append(f"Changed by {maintenance.changed_by} at {maintenance.changed_at:%Y-%m-%d %H:%M:%S %Z}.")
    lines.append(f"Held requests: {held}.")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Show or switch maintenance mode: status, soft (hold new requests), hard (refuse them) or off."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "soft", "hard", "off"])
        parser.add_argument("--message", default="", help="What users are told (soft and hard).")
        parser.add_argument("--by", default="", help="Who is switching it (default: your OS user name).")

    def handle(self, *args: Any, action: str, message: str, by: str, **options: Any) -> None:
        if action == "status":
            self.stdout.write(describe(current_maintenance(), held=held_count()))
            return
        if message and action == "off":
            raise CommandError("--message only goes with soft or hard.")
        try:
            maintenance = set_maintenance(mode=action, message=message, changed_by=by or _os_user())
        except InvalidMaintenanceMode as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(describe(maintenance, held=held_count())))


def _os_user() -> str:
    try:
        return f"{getpass.getuser()} (manage.py)"
    except (KeyError, OSError):  # no passwd entry, e.g. in a container
        return "manage.py"
