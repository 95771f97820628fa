"""django-q2 tasks: thin wrappers around services."""

from __future__ import annotations

from artifacts import services


def cleanup_expired_files() -> dict[str, int]:
    return services.cleanup_expired_files().counts()
