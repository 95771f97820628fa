"""Read-only budget queries: the week, a user's tier and what they have left.

The week's usage is a sum over timestamped usage entries (see
``budgets.week``), so nothing needs resetting.

Every figure is defined once, below, as a SQL fragment correlated on a chat
user's row. ``budget_status`` runs them as one hand-written statement for one
user: that is the intake check, and building the same query through the ORM
costs about 15 ms of Python per call, a hundred times the query itself
(``bench/budget.py``). ``annotate_budget`` puts the same fragments into an
ORM queryset as ``RawSQL``, so a whole admin page is still one query.

A user's effective tier is the one an admin set on them, else the best tier
their Discord roles give them (``UserRoleTier``), else the default tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import BigIntegerField, BooleanField, CharField, F, Field, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from budgets.models import ALLOWANCE_SETTINGS
from budgets.texts import BudgetStatus
from budgets.week import next_reset, week_start
from conversations.models import ChatUser, Request


def budget_zone() -> ZoneInfo:
    return ZoneInfo(settings.BUDGET_TIMEZONE)


def current_week_start(now: datetime | None = None) -> datetime:
    return week_start(now or timezone.now(), budget_zone())


def next_week_start(now: datetime | None = None) -> datetime:
    return next_reset(now or timezone.now(), budget_zone())


def _db_datetime(value: datetime) -> Any:
    """A datetime as the database stores it; raw SQL parameters bypass the ORM's conversion (SQLite keeps text)."""
    return connection.ops.adapt_datetimefield_value(value)


@dataclass(frozen=True)
class _Fragment:
    sql: str
    params: list[Any]


def _fragments(*, user: str, user_tier: str, now: datetime, exclude_request: int | None) -> dict[str, _Fragment]:
    """Each figure of one chat user as a scalar SQL expression.

    ``user`` and ``user_tier`` are the SQL columns holding the chat user's
    id and explicit tier id in the surrounding statement.
    """
    tier_id = (
        f"COALESCE({user_tier}, (SELECT r.tier_id FROM budgets_userroletier r WHERE r.user_id = {user}), "
        "(SELECT d.id FROM budgets_tier d WHERE d.is_default LIMIT 1))"
    )
    # A tier's allowance is its stored number, else its setting (``Tier.allowance``).
    follows = " ".join("WHEN %s THEN %s" for _ in ALLOWANCE_SETTINGS)
    follows_params = [value for slug, name in ALLOWANCE_SETTINGS.items() for value in (slug, getattr(settings, name))]
    allowance = f"COALESCE(t.weekly_allowance, CASE t.slug {follows} ELSE 0 END)"
    running = ", ".join("%s" for _ in Request.RUNNING)
    return {
        "effective_tier": _Fragment(tier_id, []),
        "tier_name": _Fragment(f"(SELECT t.name FROM budgets_tier t WHERE t.id = {tier_id})", []),
        "rate_limit_exempt": _Fragment(
            f"COALESCE((SELECT t.rate_limit_exempt FROM budgets_tier t WHERE t.id = {tier_id}), FALSE)", []
        ),
        "allowance": _Fragment(
            f"COALESCE((SELECT {allowance} FROM budgets_tier t WHERE t.id = {tier_id}), 0)", follows_params
        ),
        "granted": _Fragment(
            "(SELECT COALESCE(SUM(g.amount), 0) FROM budgets_grant g "
            f"WHERE g.user_id = {user} AND (g.expires_at IS NULL OR g.expires_at > %s))",
            [_db_datetime(now)],
        ),
        "used_this_week": _Fragment(
            "(SELECT COALESCE(SUM(e.total_tokens), 0) FROM budgets_usageentry e "
            f"WHERE e.user_id = {user} AND e.created_at >= %s)",
            [_db_datetime(current_week_start(now))],
        ),
        "reserved": _Fragment(
            "(SELECT COALESCE(SUM(q.reserved_tokens), 0) FROM conversations_request q "
            f"WHERE q.user_id = {user} AND q.status IN ({running}) AND q.id <> %s)",
            [*Request.RUNNING, exclude_request or 0],
        ),
    }


def budget_status(
    *, user: ChatUser | int, now: datetime | None = None, exclude_request: int | None = None
) -> BudgetStatus:
    """One user's budget this week, in one query.

    ``exclude_request`` leaves that request's own reservation out of ``reserved``.
    """
    now = now or timezone.now()
    user_id = user if isinstance(user, int) else user.pk
    fragments = _fragments(user="u.id", user_tier="u.tier_id", now=now, exclude_request=exclude_request)
    columns = ["tier_name", "rate_limit_exempt", "allowance", "granted", "used_this_week", "reserved"]
    select = ", ".join(fragments[name].sql for name in columns)
    params = [param for name in columns for param in fragments[name].params]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {select} FROM conversations_chatuser u WHERE u.id = %s", [*params, user_id])
        row = cursor.fetchone()
    if row is None:
        raise ChatUser.DoesNotExist(f"No chat user with id {user_id}")
    tier_name, exempt, allowance, granted, used, reserved = row
    zone = budget_zone()
    return BudgetStatus(
        tier_name=tier_name or "No",
        allowance=int(allowance),
        granted=int(granted),
        used=int(used),
        reserved=int(reserved),
        resets_at=next_reset(now, zone),
        zone=zone,
        enforced=not settings.DISABLE_TOKEN_BUDGET,
        rate_limit_exempt=bool(exempt),
    )


def annotate_budget(users: QuerySet[ChatUser], *, now: datetime | None = None) -> QuerySet[ChatUser]:
    """Add ``effective_tier`` (an id), ``tier_name``, ``allowance``, ``granted``, ``used_this_week``,
    ``reserved`` and ``remaining`` to each chat user, as subqueries of the one query."""
    table = ChatUser._meta.db_table
    fragments = _fragments(
        user=f'"{table}"."id"', user_tier=f'"{table}"."tier_id"', now=now or timezone.now(), exclude_request=None
    )
    kinds: dict[str, Field] = {"tier_name": CharField(), "rate_limit_exempt": BooleanField()}
    return users.annotate(
        **{
            name: RawSQL(fragment.sql, fragment.params, output_field=kinds.get(name, BigIntegerField()))
            for name, fragment in fragments.items()
        }
    ).annotate(remaining=F("allowance") + F("granted") - F("used_this_week") - F("reserved"))


def rate_limit_window(*, user: ChatUser, limit: int, now: datetime) -> datetime | None:
    """When the user's ``limit``-th most recent request of the last minute was queued.

    None while fewer than ``limit`` were queued in the last 60 s, i.e. while
    another one is allowed. Counted from the database, so the limit holds
    however many processes take requests.
    """
    recent = list(
        Request.objects.filter(user=user, queued_at__gt=now - timedelta(seconds=60))
        .order_by("-queued_at")
        .values_list("queued_at", flat=True)[:limit]
    )
    return recent[-1] if len(recent) >= limit else None


# How much history the expected answer of a route is learned from.
EXPECTED_ANSWER_HISTORY = 200
EXPECTED_ANSWER_MIN_SAMPLES = 10
EXPECTED_ANSWER_PERCENTILE = 0.95


def expected_answer_tokens(*, route_id: int | None) -> int:
    """How long an answer on this route is likely to be: a high percentile of its recent ``eval_count``.

    Answers the budget cut short (``budget_cap``) are left out, since they say
    how little was left, not how long the answer wanted to be. With fewer than
    ``EXPECTED_ANSWER_MIN_SAMPLES`` answers it is ``BUDGET_EXPECTED_ANSWER_TOKENS``.
    The newest answers are read through the (status, queued_at) index.
    """
    default = settings.BUDGET_EXPECTED_ANSWER_TOKENS
    if route_id is None:
        return default
    recent = sorted(
        tokens or 0
        for tokens in Request.objects.filter(
            route_id=route_id, status=Request.Status.DONE, completion_tokens__isnull=False
        )
        .filter(Q(budget_cap__isnull=True) | Q(completion_tokens__lt=F("budget_cap")))
        .order_by("-queued_at")
        .values_list("completion_tokens", flat=True)[:EXPECTED_ANSWER_HISTORY]
    )
    if len(recent) < EXPECTED_ANSWER_MIN_SAMPLES:
        return default
    return max(1, recent[min(len(recent) - 1, int(EXPECTED_ANSWER_PERCENTILE * len(recent)))])
