"""What users are told about their budget. Pure: no Django state, tested directly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from budgets.week import reset_moment, reset_phrase

# Shares of the week's budget past which answers end with a warning, highest first.
WARN_AT = (95, 80)


@dataclass(frozen=True)
class BudgetStatus:
    """One user's budget this week, as of one moment."""

    tier_name: str
    allowance: int
    granted: int  # active grants, added to the allowance
    used: int  # usage entries since the week started
    reserved: int  # held back by the user's running requests
    resets_at: datetime
    zone: ZoneInfo
    enforced: bool = True  # False when DISABLE_TOKEN_BUDGET is set
    rate_limit_exempt: bool = False

    @property
    def limit(self) -> int:
        return self.allowance + self.granted

    @property
    def remaining(self) -> int:
        """May be negative: a request may end slightly over its reservation."""
        return self.limit - self.used - self.reserved

    @property
    def used_share(self) -> float:
        """Used this week (not counting reservations) as a share of the limit."""
        return self.used / self.limit if self.limit else 1.0

    @property
    def warning_level(self) -> int:
        """The highest of ``WARN_AT`` the week's usage has reached, or 0."""
        percent = self.used_share * 100
        return next((level for level in WARN_AT if percent >= level), 0) if self.enforced else 0


def budget_spent_text(status: BudgetStatus, *, now: datetime) -> str:
    limit = f"{status.limit:,} tokens"
    if status.granted:
        limit += f" ({status.allowance:,} allowance + {status.granted:,} granted)"
    held = ""
    if status.reserved:
        held = (
            f" {status.reserved:,} of them are held by your request that is running now; "
            "what it doesn't use comes back when it finishes."
        )
    return (
        f"Your weekly budget is spent: {min(status.used + status.reserved, status.limit):,} of {limit}.{held} "
        f"It resets {reset_phrase(status.resets_at, status.zone, now=now)}."
    )


def too_little_left_text(*, remaining: int, needed: int, status: BudgetStatus, now: datetime) -> str:
    return (
        f"You have {max(remaining, 0):,} tokens left this week, and reading this conversation and answering "
        f"needs about {needed:,}. Start a new thread for a shorter conversation, or wait until your budget "
        f"resets {reset_phrase(status.resets_at, status.zone, now=now)}."
    )


def budget_warning_text(*, used_percent: int, remaining: int, resets: str) -> str:
    """The note under an answer that took the user past a warning level of the week's budget."""
    return (
        f"You have used {used_percent}% of this week's token budget: {max(remaining, 0):,} tokens are left "
        f"until it resets {resets}."
    )


def budget_warning_notice(status: BudgetStatus) -> dict[str, object]:
    """The stored notice (``pipeline.footnotes``) for the warning ``status`` calls for."""
    return {
        "code": "budget_warning",
        "percent": status.warning_level,
        "used_percent": min(100, math.floor(status.used_share * 100)),
        "remaining": max(status.remaining, 0),
        "resets": reset_moment(status.resets_at, status.zone),
    }


def rate_limited_text(*, limit: int, retry_after: float) -> str:
    seconds = max(1, math.ceil(retry_after))
    wait = f"{seconds} second{'' if seconds == 1 else 's'}"
    return f"You're sending messages faster than I take them: at most {limit} a minute. Try again in {wait}."


def banned_text(reason: str) -> str:
    because = f" Reason: {reason.strip()}" if reason.strip() else ""
    return f"You can't use this assistant: an operator has banned you.{because}"


def bar(fraction: float, *, width: int = 10) -> str:
    """``▓▓▓▓░░░░░░``: ``fraction`` of the width filled, clamped to 0..1."""
    filled = int(min(max(fraction, 0.0), 1.0) * width + 0.5)  # half up; round() would draw 25% as 2 of 10
    return "▓" * filled + "░" * (width - filled)


def usage_text(status: BudgetStatus, *, now: datetime) -> str:
    """The ``/usage`` reply."""
    spent = status.used + status.reserved
    share = spent / status.limit if status.limit else 1.0
    lines = [
        f"**Your token budget this week** ({status.tier_name} tier)",
        f"`{bar(share)}` {min(share, 1.0):.0%} used",
        f"• Used: {status.used:,} tokens",
    ]
    if status.reserved:
        lines.append(f"• Held for your running request: {status.reserved:,}")
    lines.append(f"• Weekly allowance: {status.allowance:,}")
    if status.granted:
        lines.append(f"• Extra granted: {status.granted:,}")
    lines.append(f"• Remaining: {max(status.remaining, 0):,}")
    lines.append(f"Resets {reset_phrase(status.resets_at, status.zone, now=now)}.")
    if status.warning_level:
        lines.append(
            f"⚠️ You have used over {status.warning_level}% of this week's budget; "
            "answers stop when it is spent, so keep the rest for what matters."
        )
    if not status.enforced:
        lines.append("Budgets are switched off on this server right now: usage is counted but nothing is refused.")
    return "\n".join(lines)
