"""Slow synchronous work run from the bot's event loop without holding up everything else.

``sync_to_async`` runs every call in one shared thread (``thread_sensitive``),
so one slow call (a summary written by Ollama, deleting a long conversation)
makes every other handler's database call wait behind it, and an interaction
can then miss Discord's 3 s. ``run_blocking`` runs the work in a thread of
its own instead. The work must be safe there: it uses the database through
Django's ORM only (each thread gets its own connection, closed here when the
work ends) and touches no state of the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")


async def run_blocking(function: Callable[..., T], /, **kwargs: Any) -> T:
    """``function(**kwargs)`` in a thread of its own; see the module docstring."""

    def call() -> T:
        try:
            return function(**kwargs)
        finally:
            # A pooled thread keeps its connection for ever otherwise (no request cycle closes it).
            connections.close_all()

    return await sync_to_async(call, thread_sensitive=False)()
