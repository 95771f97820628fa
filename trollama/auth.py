"""Tokens presented to web: the internal one (bot, terminal, workers) and the metrics one (Prometheus)."""

from __future__ import annotations

import hmac

from django.conf import settings


def is_internal_token(candidate: str | None) -> bool:
    return _matches(candidate, settings.INTERNAL_TOKEN)


def is_metrics_token(candidate: str | None) -> bool:
    """False for every candidate when METRICS_TOKEN is not set."""
    return _matches(candidate, settings.METRICS_TOKEN)


def _matches(candidate: str | None, secret: str) -> bool:
    if not candidate or not secret:
        return False
    return hmac.compare_digest(candidate.encode(), secret.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
