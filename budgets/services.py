"""Budget use cases: intake checks, reservations, charges, grants and role tiers.

How a request is paid for:

1. Intake (``check_rate_limit``, ``check_budget``) refuses when nothing is
   left; queued requests hold nothing yet.
2. When a worker starts it, ``reserve_for_request`` holds back what the
   request is likely to cost: its prompt estimate plus the answer its route
   usually needs (``selectors.expected_answer_tokens``), or a quarter of what
   is free if that is more, never more than the context window or
   ``num_predict`` allow. It does so under a lock on the user's row (on
   SQLite, where ``FOR UPDATE`` does not exist, every transaction takes the
   write lock when it begins), so requests of one user reserve one at a time
   and can never together reserve more than remains. The answer's
   ``num_predict`` is capped to what was reserved. When that much is not free
   but the user's other running requests hold reservations, it raises
   ``ReservationPending``: the worker waits for them to finish and give back
   what they did not use, rather than refusing while tokens are in fact left.
3. The finished answer is charged with Ollama's real counts
   (``charge_answer``) and the reservation released in the same transaction;
   an answer that takes the week's usage past 80 % or 95 % gets a warning
   notice. An attempt cut off before Ollama's final chunk is charged an
   estimate (``charge_interrupted``), flagged as such.

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
from budgets.texts import (
    BudgetStatus,
    banned_text,
    budget_spent_text,
    budget_warning_notice,
    rate_limited_text,
    too_little_left_text,
)
from budgets.usage import record_usage
from conversations.calibration import ratio_for
from conversations.models import ChatUser, Platform, Request
from conversations.tokens import estimate_tokens

# An answer capped below this is useless, and its prompt would be paid for nothing.
MIN_ANSWER_TOKENS = 32
# Beyond its expected answer, a request may reserve up to this share of what is free.
FREE_SHARE = 4


class BudgetDenied(Exception):
    """The budget says no. ``message`` is written for the user.

    Intake turns it into ``pipeline.services.Refusal``; a worker fails
    the request with it.
    """

    def __init__(self, message: str, *, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


class ReservationPending(BudgetDenied):
    """Too little is free right now, but the user's other running requests hold reservations.

    What they do not use comes back when they finish, so the caller should
    try again shortly (``settings.BUDGET_WAIT_SECONDS`` at most) instead of
    failing the request.
    """


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


def estimate_prompt(messages: Iterable[dict[str, Any]], *, ratio: float = 1.0) -> int:
    return sum(estimate_tokens(str(message.get("content") or ""), ratio=ratio) for message in messages)


def answer_allowance(*, free: int, cap: int, expected: int) -> int:
    """The answer a request reserves when ``free`` tokens are left after its prompt. Pure.

    Its expected answer, or a quarter of what is free if that is more (so
    a user with plenty left gets the whole window while concurrent requests
    still find room), never more than ``cap``.
    """
    return min(cap, max(expected, free // FREE_SHARE))


@transaction.atomic
def reserve_for_request(
    *,
    request: Request,
    messages: list[dict[str, Any]],
    context_size: int,
    num_predict: int | None = None,
    may_wait: bool = True,
) -> Reservation:
    """Hold back what ``request`` is likely to cost and say how long its answer may be.

    Locks the user's row first, so reservations of one user are made one at a
    time and each sees the others'. The reservation is the prompt estimate
    plus ``answer_allowance``; the answer may be at most what the window
    (``context_size``) and ``num_predict`` allow. When less than that is
    free: raises ``ReservationPending`` if other running requests of the user
    hold reservations and ``may_wait``; else reserves what is left, if that
    holds a useful answer; else raises ``BudgetDenied``.
    """
    if settings.DISABLE_TOKEN_BUDGET:
        return Reservation(tokens=0, num_predict=None)
    ChatUser.objects.select_for_update().filter(pk=request.user_id).values_list("pk").get()
    now = timezone.now()
    status = selectors.budget_status(user=request.user_id, now=now, exclude_request=request.pk)
    prompt = estimate_prompt(messages, ratio=ratio_for(request.model))
    cap = max(context_size - prompt, MIN_ANSWER_TOKENS)
    if num_predict:
        cap = min(cap, max(num_predict, 1))
    expected = min(cap, max(selectors.expected_answer_tokens(route_id=request.route_id), MIN_ANSWER_TOKENS))
    free = status.remaining - prompt
    answer = answer_allowance(free=free, cap=cap, expected=expected)
    if free < answer:
        if may_wait and status.reserved > 0:
            raise ReservationPending(budget_spent_text(status, now=now), code="budget_pending")
        if free < min(MIN_ANSWER_TOKENS, cap):
            if status.remaining <= 0:
                raise BudgetDenied(budget_spent_text(status, now=now), code="budget_spent")
            needed = prompt + MIN_ANSWER_TOKENS
            raise BudgetDenied(
                too_little_left_text(remaining=status.remaining, needed=needed, status=status, now=now),
                code="budget_too_low",
            )
        answer = free  # the last of the week: a shorter answer rather than none
    Request.objects.filter(pk=request.pk).update(
        reserved_tokens=prompt + answer, budget_cap=answer if answer < cap else None
    )
    request.budget_cap = answer if answer < cap else None
    return Reservation(tokens=prompt + answer, num_predict=answer)


def _after_charge_notices(
    request: Request, *, completion_tokens: int | None, now: datetime
) -> tuple[list[dict[str, Any]], int]:
    """The request's notices once it is charged, and the budget warning level it gave (0: none).

    Adds that the budget cut the answer short (when it reached ``budget_cap``)
    and, the first time this week the user's usage passes 80 % or 95 %, a
    warning. Locks the user's row so that concurrent answers warn once.
    """
    notices = [notice for notice in request.notices or [] if notice.get("code") not in AFTER_CHARGE_CODES]
    if request.budget_cap and completion_tokens is not None and completion_tokens >= request.budget_cap:
        notices.append({"code": "answer_capped", "tokens": request.budget_cap})
    if settings.DISABLE_TOKEN_BUDGET:
        return notices, 0
    ChatUser.objects.select_for_update().filter(pk=request.user_id).values_list("pk").first()
    status = selectors.budget_status(user=request.user_id, now=now, exclude_request=request.pk)
    level = status.warning_level
    if not level:
        return notices, 0
    warned = (
        Request.objects.filter(
            user_id=request.user_id,
            finished_at__gte=selectors.current_week_start(now),
            budget_warning__gte=level,
        )
        .exclude(pk=request.pk)
        .exists()
    )
    if warned:
        return notices, 0
    notices.append(budget_warning_notice(status))
    return notices, level


AFTER_CHARGE_CODES = frozenset({"answer_capped", "budget_warning"})


def charge_answer(
    *, request: Request, model: str, prompt_tokens: int | None, completion_tokens: int | None
) -> UsageEntry:
    """Charge a finished answer with Ollama's real counts and release its reservation.

    Call inside the transaction that stores the answer. Also sets the
    request's after-charge notices (``_after_charge_notices``) on the row and
    on ``request``, so a later ``request.save()`` keeps them.
    """
    now = timezone.now()
    Request.objects.filter(pk=request.pk).update(reserved_tokens=0)
    request.reserved_tokens = 0
    entry = record_usage(
        user=request.user_id,
        kind=UsageEntry.Kind.ANSWER,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        request=request.pk,
        route=request.route_id,
    )
    notices, level = _after_charge_notices(request, completion_tokens=completion_tokens, now=now)
    Request.objects.filter(pk=request.pk).update(notices=notices, budget_warning=level)
    request.notices, request.budget_warning = notices, level
    return entry


def charge_interrupted(
    *, request_id: int, model: str, messages: list[dict[str, Any]], partial: str
) -> UsageEntry | None:
    """Charge an attempt that was cancelled or broke off before Ollama reported its counts.

    Ollama sends its counts only in the final chunk, so this is an estimate
    (``conversations.tokens``, calibrated for the model), stored with ``estimated=True``: the prompt plus the text
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
        prompt_tokens=estimate_prompt(messages, ratio=ratio_for(model)),
        completion_tokens=estimate_tokens(partial, ratio=ratio_for(model)),
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
