"""The internal token that the bot, the terminal and workers present to web."""

from __future__ import annotations

import hmac

from django.conf import settings


def is_internal_token(candidate: str | None) -> bool:
    if not candidate:
        return False
    return hmac.compare_digest(candidate.encode(), settings.INTERNAL_TOKEN.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
