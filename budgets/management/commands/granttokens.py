"""``manage.py granttokens USER AMOUNT --reason TEXT [--expires DATE]``.

Exit codes: 0 granted, 2 bad input (unknown or ambiguous user, bad amount,
date or operator); nothing is stored unless it exits 0.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from budgets import selectors, services
from budgets.week import local_midnight, reset_phrase
from conversations.models import ChatUser

BAD_INPUT = 2


def _amount(raw: str) -> int:
    try:
        value = int(raw.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of tokens") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the amount must be a positive number of tokens")
    return value


def _describe(user: ChatUser) -> str:
    return f"{user.username} ({user.get_platform_display()}, id {user.external_id})"


class Command(BaseCommand):
    help = "Give a chat user extra tokens on top of their weekly allowance."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="a Discord id, a Discord username or a local username")
        parser.add_argument("amount", type=_amount, help="tokens to add, e.g. 50000")
        parser.add_argument("--reason", required=True, help="why; kept in the user's grant history")
        parser.add_argument(
            "--expires",
            metavar="DATE",
            help="YYYY-MM-DD (the grant ends at 00:00 that day in BUDGET_TIMEZONE) or an ISO date and time; "
            "without it the grant never expires",
        )
        parser.add_argument("--by", metavar="USERNAME", help="the operator's admin username, recorded as granter")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options["user"])
        expires_at = self._expiry(options["expires"]) if options["expires"] else None
        granted_by = self._operator(options["by"]) if options["by"] else None
        try:
            grant = services.grant_tokens(
                user=user,
                amount=options["amount"],
                reason=options["reason"],
                granted_by=granted_by,
                expires_at=expires_at,
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=BAD_INPUT) from None
        now = timezone.now()
        status = selectors.budget_status(user=user, now=now)
        until = (
            f"until {reset_phrase(grant.expires_at, status.zone, now=now)}" if grant.expires_at else "with no expiry"
        )
        self.stdout.write(
            f"Granted {grant.amount:,} tokens to {_describe(user)} {until}. "
            f"They have {max(status.remaining, 0):,} of {status.limit:,} tokens left this week."
        )

    def _user(self, identifier: str) -> ChatUser:
        matches = services.find_chat_users(identifier)
        if not matches:
            raise CommandError(
                f"No chat user matches {identifier!r}. Give a Discord id, a Discord username or a local username "
                "(the admin's Chat users page lists them).",
                returncode=BAD_INPUT,
            )
        if len(matches) > 1:
            listed = "\n".join(f"  {_describe(user)}" for user in matches)
            raise CommandError(
                f"{identifier!r} matches {len(matches)} chat users:\n{listed}\nGive the Discord id to pick one.",
                returncode=BAD_INPUT,
            )
        return matches[0]

    def _expiry(self, raw: str) -> datetime:
        try:
            day, moment = parse_date(raw), parse_datetime(raw)
        except ValueError:
            day = moment = None
        if moment is not None:
            return moment if timezone.is_aware(moment) else timezone.make_aware(moment, selectors.budget_zone())
        if day is not None:
            return local_midnight(day, selectors.budget_zone())
        raise CommandError(
            f"--expires {raw!r} is not a date: use YYYY-MM-DD, e.g. --expires 2026-12-31.", returncode=BAD_INPUT
        )

    def _operator(self, username: str) -> User:
        operator = User.objects.filter(username=username).first()
        if operator is None:
            raise CommandError(f"There is no admin account called {username!r} for --by.", returncode=BAD_INPUT)
        return operator
