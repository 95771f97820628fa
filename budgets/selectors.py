"""Read-only budget queries: the week, a user's tier and what they have left.

The week's usage is a sum over timestamped usage entries (see
``budgets.week``), so nothing needs resetting. ``annotate_budget`` computes
every figure in SQL as subqueries, so one query serves the intake check, the
``/usage`` command and a whole admin page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    F,
    Field,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.utils import timezone

from budgets.models import ALLOWANCE_SETTINGS, Grant, Tier, UsageEntry
from budgets.texts import BudgetStatus
from budgets.week import next_reset, week_start
from conversations.models import ChatUser, Request


def budget_zone() -> ZoneInfo:
    return ZoneInfo(settings.BUDGET_TIMEZONE)


def current_week_start(now: datetime | None = None) -> datetime:
    return week_start(now or timezone.now(), budget_zone())


def next_week_start(now: datetime | None = None) -> datetime:
    return next_reset(now or timezone.now(), budget_zone())


def default_tier() -> Tier | None:
    return Tier.objects.filter(is_default=True).first()


def effective_tier(user: ChatUser) -> Tier | None:
    """The tier an admin set on the user; else the best tier of their Discord roles; else the default.

    ``user`` should come with ``select_related("tier", "role_tier__tier")``.
    """
    if user.tier is not None:
        return user.tier
    role_tier = getattr(user, "role_tier", None)  # the reverse one-to-one raises when absent
    if role_tier is not None:
        return role_tier.tier
    return default_tier()


def _tier_allowance(prefix: str) -> Combinable:
    """SQL for ``Tier.allowance`` of the tier at ``prefix`` (the stored number, else its setting)."""
    follows = [
        When(**{f"{prefix}slug": slug}, then=Value(int(getattr(settings, name))))
        for slug, name in ALLOWANCE_SETTINGS.items()
    ]
    return Coalesce(F(f"{prefix}weekly_allowance"), Case(*follows, default=Value(0), output_field=BigIntegerField()))


def _effective(explicit: Combinable, from_roles: Combinable, default: Combinable, output: Field) -> Case:
    """SQL choosing among a chat user's tiers by the rule of ``effective_tier``."""
    return Case(
        When(tier__isnull=False, then=explicit),
        When(role_tier__isnull=False, then=from_roles),
        default=default,
        output_field=output,
    )


def _of_default_tier(value: Combinable, output: Field) -> Subquery:
    return Subquery(Tier.objects.filter(is_default=True).annotate(value=value).values("value")[:1], output_field=output)


def effective_tier_annotations() -> dict[str, Combinable]:
    """Each chat user's ``effective_tier`` (an id), ``tier_name`` and ``allowance``, in SQL."""
    integer, text = BigIntegerField(), CharField()
    return {
        "effective_tier": _effective(
            F("tier__id"), F("role_tier__tier__id"), _of_default_tier(F("id"), integer), integer
        ),
        "tier_name": _effective(F("tier__name"), F("role_tier__tier__name"), _of_default_tier(F("name"), text), text),
        "allowance": Coalesce(
            _effective(
                _tier_allowance("tier__"),
                _tier_allowance("role_tier__tier__"),
                _of_default_tier(_tier_allowance(""), integer),
                integer,
            ),
            Value(0),
        ),
    }


def _sum_per_user(queryset: QuerySet, field: str) -> Combinable:
    per_user = queryset.filter(user=OuterRef("pk")).order_by().values("user").annotate(total=Sum(field))
    return Coalesce(Subquery(per_user.values("total")[:1], output_field=BigIntegerField()), Value(0))


def annotate_budget(
    users: QuerySet[ChatUser], *, now: datetime | None = None, exclude_request: int | None = None
) -> QuerySet[ChatUser]:
    """Add ``allowance``, ``granted``, ``used_this_week``, ``reserved`` and ``remaining`` to each user.

    ``exclude_request`` leaves that request's own reservation out of ``reserved``.
    """
    now = now or timezone.now()
    running = Request.objects.filter(status__in=Request.RUNNING)
    if exclude_request is not None:
        running = running.exclude(pk=exclude_request)
    active_grants = Grant.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    return users.annotate(
        **effective_tier_annotations(),
        granted=_sum_per_user(active_grants, "amount"),
        used_this_week=_sum_per_user(
            UsageEntry.objects.filter(created_at__gte=current_week_start(now)), "total_tokens"
        ),
        reserved=_sum_per_user(running, "reserved_tokens"),
    ).annotate(remaining=F("allowance") + F("granted") - F("used_this_week") - F("reserved"))


def budget_status(
    *, user: ChatUser | int, now: datetime | None = None, exclude_request: int | None = None
) -> BudgetStatus:
    """One user's budget this week, in one query."""
    now = now or timezone.now()
    user_id = user if isinstance(user, int) else user.pk
    row = annotate_budget(ChatUser.objects.filter(pk=user_id), now=now, exclude_request=exclude_request).get()
    return status_of(row, now=now)


def status_of(row: ChatUser, *, now: datetime) -> BudgetStatus:
    """The ``BudgetStatus`` of a user row annotated by ``annotate_budget``."""
    zone = budget_zone()
    return BudgetStatus(
        tier_name=row.tier_name or "No",  # type: ignore[attr-defined]  # annotations
        allowance=row.allowance,  # type: ignore[attr-defined]  # annotations
        granted=row.granted,  # type: ignore[attr-defined]
        used=row.used_this_week,  # type: ignore[attr-defined]
        reserved=row.reserved,  # type: ignore[attr-defined]
        resets_at=next_reset(now, zone),
        zone=zone,
        enforced=not settings.DISABLE_TOKEN_BUDGET,
    )


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
