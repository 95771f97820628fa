"""Per-route rate-limit buckets, answered with Discord's headers.

A bucket is a route (method + path template) and its major parameter (the
channel, guild or webhook in the path), counted in fixed windows as Discord
does: the window opens with the first request and holds ``limit`` requests for
``per`` seconds. See https://discord.com/developers/docs/topics/rate-limits.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass

# Discord's own limits for the routes a chat bot uses most (what its headers say
# today; Discord does not document them and they may change). Everything else
# gets ``DEFAULT_LIMIT``. Sends and edits are counted per channel, and a thread
# is a channel of its own: two answers streaming into one thread share these.
DISCORD_LIMITS: dict[str, tuple[int, float]] = {
    "POST /channels/{channel_id}/messages": (5, 5.0),
    "PATCH /channels/{channel_id}/messages/{message_id}": (5, 5.0),
    "DELETE /channels/{channel_id}/messages/{message_id}": (5, 1.0),
    "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}": (1, 0.25),
    "DELETE /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}": (1, 0.25),
    "POST /channels/{channel_id}/typing": (5, 5.0),
    "POST /channels/{channel_id}/messages/{message_id}/threads": (10, 10.0),
    "PATCH /channels/{channel_id}": (5, 10.0),
}
DEFAULT_LIMIT = (50, 1.0)

# Reactions share one bucket per channel whatever the method, as on Discord.
SHARED_BUCKETS = {
    "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}": "reactions",
    "DELETE /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}": "reactions",
}

# Routes Discord names with one X-RateLimit-Bucket although it counts them
# apart: sending and editing messages answer with the same hash, yet each has
# its own 5 per 5 s (discord/discord-api-docs#1442, #8073). It matters to the
# client: discord.py keys its limiter by that hash, so in one channel it paces
# sends and edits as one bucket, updated from whichever answered last.
SHARED_HASHES = {
    "POST /channels/{channel_id}/messages": "messages",
    "PATCH /channels/{channel_id}/messages/{message_id}": "messages",
}


@dataclass
class Verdict:
    """The outcome of counting one request: its headers, and whether it is over the limit."""

    headers: dict[str, str]
    limited: bool
    retry_after: float
    bucket: str


@dataclass
class _Window:
    limit: int
    per: float
    opened: float = 0.0
    used: int = 0


class RateLimits:
    """Counts requests per bucket; thread-safe."""

    def __init__(self, limits: dict[str, tuple[int, float]] | None = None) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, tuple[int, float]] = dict(DISCORD_LIMITS if limits is None else limits)
        self._windows: dict[tuple[str, str], _Window] = {}

    def set_limit(self, route: str, limit: int, per: float) -> None:
        """Change the limit of ``route`` ("METHOD /path/{template}"); open windows start afresh."""
        with self._lock:
            self._limits[route] = (limit, per)
            self._windows = {key: w for key, w in self._windows.items() if key[0] != self._bucket_name(route)}

    def reset(self, limits: dict[str, tuple[int, float]] | None = None) -> None:
        with self._lock:
            self._limits = dict(DISCORD_LIMITS if limits is None else limits)
            self._windows.clear()

    def limit_of(self, route: str) -> tuple[int, float]:
        return self._limits.get(route, DEFAULT_LIMIT)

    @staticmethod
    def _bucket_name(route: str) -> str:
        return SHARED_BUCKETS.get(route, route)

    def count(self, route: str, major: str) -> Verdict:
        """Count one request to ``route`` for the major parameter ``major``."""
        with self._lock:
            limit, per = self.limit_of(route)
            name = self._bucket_name(route)
            now = time.monotonic()
            window = self._windows.get((name, major))
            if window is None or now >= window.opened + window.per or window.limit != limit or window.per != per:
                window = self._windows[(name, major)] = _Window(limit, per, opened=now)
            reset_after = max(window.opened + window.per - now, 0.0)
            limited = window.used >= window.limit
            if not limited:
                window.used += 1
            remaining = window.limit - window.used
            bucket = hashlib.sha1(SHARED_HASHES.get(route, name).encode()).hexdigest()[:32]
            headers = {
                "X-RateLimit-Limit": str(window.limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": bucket,
            }
            if limited:
                headers["X-RateLimit-Scope"] = "user"
                headers["Retry-After"] = str(max(1, math.ceil(reset_after)))
            return Verdict(headers=headers, limited=limited, retry_after=round(reset_after, 3), bucket=bucket)
