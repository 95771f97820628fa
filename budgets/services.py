"""Budget use cases: intake checks, reservations, charges, grants and role tiers.

How a request is paid for:

1. Intake (``check_rate_limit``, ``check_budget``) refuses when nothing is
   left; queued requests hold nothing yet.
2. When a worker starts it, ``reserve_for_request`` holds back what the
   request may cost (the prompt estimate plus the longest answer allowed)
   under a lock on the user's row (on SQLite, where ``FOR UPDATE`` does not
   exist, every transaction takes the write lock when it begins), so
   requests of one user reserve one at a time and can never together
   reserve more than remains. The answer's
   ``num_predict`` is capped to what was reserved.
3. The finished answer is charged with Ollama's real counts
   (``charge_answer``) and the reservation released in the same transaction.
   An attempt cut off before Ollama's final chunk is charged an estimate
   (``charge_interrupted``), flagged as such.

Overspend is therefore bounded by one request's misestimate of its own
prompt; the answer itself can never run past its reservation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from budgets import selectors
from budgets.models import Grant, RoleTier, Tier, UsageEntry, UserRoleTier
from budgets.texts import BudgetStatus, banned_text, budget_spent_text, rate_limited_text, too_little_left_text
from budgets.usage import record_usage
from conversations.context import estimate_tokens
from conversations.models import ChatUser, Platform, Request

# An answer capped below this is useless, and its prompt would be paid for nothing.
MIN_ANSWER_TOKENS = 32


class BudgetDenied(Exception):
    """The budget says no. ``message`` is written for the user.

    Intake turns it into ``conversations.services.Refusal``; a worker fails
    the request with it.
    """

    def __init__(self, message: str, *, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


# -- Intake -----------------------------------------------------------------


def check_not_banned(*, user: ChatUser) -> None:
    if user.banned:
        raise BudgetDenied(banned_text(user.ban_reason), code="banned")


def check_rate_limit(*, user: ChatUser, status: BudgetStatus, now: datetime) -> None:
    """Refuse a user who submitted RATE_LIMIT_PER_MINUTE requests in the last 60 s."""
    limit = settings.RATE_LIMIT_PER_MINUTE
    if not limit or status.rate_limit_exempt:
        return
    oldest = selectors.rate_limit_window(user=user, limit=limit, now=now)
    if oldest is not None:
        retry_after = max((oldest - now).total_seconds() + 60, 1.0)
        raise BudgetDenied(
            rate_limited_text(limit=limit, retry_after=retry_after), code="rate_limited", retry_after=retry_after
        )


def check_budget(*, user: ChatUser, status: BudgetStatus | None = None, now: datetime | None = None) -> None:
    """Refuse a user with nothing left this week (unless DISABLE_TOKEN_BUDGET)."""
    if settings.DISABLE_TOKEN_BUDGET:
        return
    now = now or timezone.now()
    status = status or selectors.budget_status(user=user, now=now)
    if status.remaining <= 0:
        raise BudgetDenied(
            budget_spent_text(status, now=now),
            code="budget_spent",
            retry_after=(status.resets_at - now).total_seconds(),
        )


def check_intake(*, user: ChatUser) -> None:
    """The budget app's intake checks, in the design's order: banned, rate limit, token budget."""
    check_not_banned(user=user)
    now = timezone.now()
    status = selectors.budget_status(user=user, now=now)
    check_rate_limit(user=user, status=status, now=now)
    check_budget(user=user, status=status, now=now)


# -- While a request runs ---------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    tokens: int
    num_predict: int | None  # None: leave the answer length alone (budgets are off)


def estimate_prompt(messages: Iterable[dict[str, Any]]) -> int:
    return sum(estimate_tokens(str(message.get("content") or "")) for message in messages)


@transaction.atomic
def reserve_for_request(*, request: Request, messages: list[dict[str, Any]], context_size: int) -> Reservation:
    """Hold back what ``request`` may cost and say how long its answer may be.

    Locks the user's row first, so reservations of one user are made one at a
    time and each sees the others'. The most a request may cost is its
    context window (prompt + answer), or whatever less remains. Raises
    ``BudgetDenied`` when too little remains for a useful answer.
    """
    if settings.DISABLE_TOKEN_BUDGET:
        return Reservation(tokens=0, num_predict=None)
    ChatUser.objects.select_for_update().filter(pk=request.user_id).values_list("pk").get()
    now = timezone.now()
    status = selectors.budget_status(user=request.user_id, now=now, exclude_request=request.pk)
    prompt = estimate_prompt(messages)
    ceiling = max(context_size, prompt + MIN_ANSWER_TOKENS)
    tokens = min(status.remaining, ceiling)
    if status.remaining <= 0:
        raise BudgetDenied(budget_spent_text(status, now=now), code="budget_spent")
    if tokens - prompt < MIN_ANSWER_TOKENS:
        needed = prompt + MIN_ANSWER_TOKENS
        raise BudgetDenied(
            too_little_left_text(remaining=status.remaining, needed=needed, status=status, now=now),
            code="budget_too_low",
        )
    Request.objects.filter(pk=request.pk).update(reserved_tokens=tokens)
    return Reservation(tokens=tokens, num_predict=tokens - prompt)


def charge_answer(
    *, request: Request, model: str, prompt_tokens: int | None, completion_tokens: int | None
) -> UsageEntry:
    """Charge a finished answer with Ollama's real counts and release its reservation.

    Call inside the transaction that stores the answer.
    """
    Request.objects.filter(pk=request.pk).update(reserved_tokens=0)
    request.reserved_tokens = 0
    return record_usage(
        user=request.user_id,
        kind=UsageEntry.Kind.ANSWER,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        request=request.pk,
        route=request.route_id,
    )


def charge_interrupted(
    *, request_id: int, model: str, messages: list[dict[str, Any]], partial: str
) -> UsageEntry | None:
    """Charge an attempt that was cancelled or broke off before Ollama reported its counts.

    Ollama sends its counts only in the final chunk, so this is an estimate
    (characters/4), stored with ``estimated=True``: the prompt plus the text
    produced so far. An attempt that produced nothing is not charged, since
    we cannot tell whether Ollama evaluated the prompt at all.
    """
    if not partial:
        return None
    request = Request.objects.filter(pk=request_id).values("user_id", "route_id").first()
    if request is None:
        return None
    return record_usage(
        user=request["user_id"],
        kind=UsageEntry.Kind.ANSWER,
        model=model,
        prompt_tokens=estimate_prompt(messages),
        completion_tokens=estimate_tokens(partial),
        request=request_id,
        route=request["route_id"],
        estimated=True,
    )


# -- Tiers from Discord roles -----------------------------------------------


def sync_role_tier(*, user: ChatUser, role_ids: Iterable[int | str]) -> Tier | None:
    """Remember the best tier the user's Discord roles give (by allowance), or that they give none."""
    mapped = [
        role.tier for role in RoleTier.objects.filter(role_id__in=[str(r) for r in role_ids]).select_related("tier")
    ]
    best = max(mapped, key=lambda tier: tier.allowance, default=None)
    if best is None:
        UserRoleTier.objects.filter(user=user).delete()
    else:
        UserRoleTier.objects.update_or_create(user=user, defaults={"tier": best, "seen_at": timezone.now()})
    user._state.fields_cache.pop("role_tier", None)  # the caller's object may hold the old one
    return best


# -- Grants -----------------------------------------------------------------


@transaction.atomic
def grant_tokens(
    *,
    user: ChatUser,
    amount: int,
    reason: str,
    granted_by: User | None = None,
    expires_at: datetime | None = None,
) -> Grant:
    """Give ``user`` ``amount`` extra tokens a week until ``expires_at`` (forever when None)."""
    if amount <= 0:
        raise ValueError("The amount must be a positive number of tokens.")
    if not reason.strip():
        raise ValueError("Give a reason; it is kept in the user's grant history.")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValueError("The expiry is in the past; the grant would never count.")
    return Grant.objects.create(
        user=user, amount=amount, reason=reason.strip(), granted_by=granted_by, created_at=now, expires_at=expires_at
    )


def find_chat_users(identifier: str) -> list[ChatUser]:
    """Chat users ``identifier`` may mean: a Discord id, a Discord username or a local username."""
    text = identifier.strip().lstrip("@")
    match = Q(platform=Platform.DISCORD, username__iexact=text) | Q(platform=Platform.LOCAL, username__iexact=text)
    match |= Q(platform=Platform.LOCAL, external_id=text)
    if text.isdigit():
        match |= Q(platform=Platform.DISCORD, external_id=text)
    return list(ChatUser.objects.filter(match).order_by("platform", "username", "pk"))
