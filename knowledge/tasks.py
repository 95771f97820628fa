"""django-q2 tasks: thin wrappers around services."""

from __future__ import annotations

from knowledge import services


def embed_pending() -> dict[str, int]:
    return services.embed_pending()


def cleanup() -> dict[str, int]:
    return services.cleanup()
