"""Setting up budget situations the same way in every test."""

from __future__ import annotations

from datetime import datetime

from budgets.models import Tier, UsageEntry
from budgets.usage import record_usage
from conversations.models import ChatUser


def spend(user: ChatUser, tokens: int, *, at: datetime | None = None, kind: str = "answer") -> UsageEntry:
    """Charge ``tokens`` to ``user`` (as prompt tokens), optionally back-dated."""
    entry = record_usage(user=user, kind=kind, model="gpt-oss:20b", prompt_tokens=tokens, completion_tokens=0)
    if at is not None:
        UsageEntry.objects.filter(pk=entry.pk).update(created_at=at)
    return entry


def tier(slug: str) -> Tier:
    return Tier.objects.get(slug=slug)
