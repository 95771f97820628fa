"""Realtime events: one way to publish them, whatever the configuration.

Events are plain JSON-able dicts with a ``type`` ("request.queued",
"request.delta", ...). They only announce that something changed; the
database stays the source of truth, and a listener that missed events
resyncs from it.

Every listener (browser, bot, terminal) is a websocket client of the web
process, which relays channel-layer group messages to it. How an event reaches
the channel layer depends on the configuration:

* with Redis, any process calls ``group_send`` on channels-redis;
* on the embedded default the layer is an ``InMemoryChannelLayer`` that lives
  in the web process only (the hub). Other processes POST events to web's
  internal endpoint, which does the ``group_send``. Publishing must never stall
  a worker, so a hub that is down or slow costs one short timeout, after which
  events are dropped for a moment without trying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from trollama.tls import tls_context

logger = logging.getLogger(__name__)

Event = dict[str, Any]

REQUESTS_GROUP = "requests"
SYSTEM_GROUP = "system"
RELAY_PATH = "/internal/events"
# The channel-layer message type that consumers forward to their client.
FORWARD_TYPE = "event.forward"
# After a failed relay, events are dropped without trying for this long.
RELAY_COOLDOWN = 2.0

_is_hub = False


def mark_as_hub() -> None:
    """Declare that this process holds the channel layer listeners attach to.

    Called by the ASGI application (web), and by processes that listen on their
    own layer, such as ``manage.py chat --inline``.
    """
    global _is_hub
    _is_hub = True


def relays_to_hub() -> bool:
    """True when events must be POSTed to web instead of sent on the local layer."""
    return not settings.REDIS_URL and not _is_hub


def request_group(request_id: int) -> str:
    return f"request.{request_id}"


def groups_for(*, request_id: int | None) -> list[str]:
    if request_id is None:
        return [SYSTEM_GROUP]
    return [REQUESTS_GROUP, request_group(request_id)]


# Events are flat dicts with a list or two of small dicts (artifacts); anything
# deeper is not an event, and would break msgpack (channels-redis) or json.dumps.
MAX_EVENT_DEPTH = 16


def nests_within(value: Any, limit: int = MAX_EVENT_DEPTH) -> bool:
    """True when ``value`` has at most ``limit`` levels of dicts and lists.

    Iterative, so a hostile structure cannot exhaust the interpreter's stack.
    """
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def is_valid_group(name: str) -> bool:
    if name in (REQUESTS_GROUP, SYSTEM_GROUP):
        return True
    prefix, _, number = name.partition(".")
    return prefix == "request" and number.isdigit()


def publish(event: Event, *, request_id: int | None = None) -> None:
    """Publish after the current transaction commits (at once outside one).

    Listeners reload rows when they see an event, so sending before the commit
    could show them the old state.
    """
    groups = groups_for(request_id=request_id)
    transaction.on_commit(lambda: send_now(event, groups))


def send_now(event: Event, groups: Iterable[str]) -> None:
    groups = list(groups)
    if relays_to_hub():
        _sync_relay.send(event, groups)
    else:
        async_to_sync(group_send)(event, groups)


async def group_send(event: Event, groups: Iterable[str]) -> None:
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS is always configured in settings"
    for group in groups:
        await layer.group_send(group, {"type": FORWARD_TYPE, "event": event})


class _Cooldown:
    """Remembers a recent relay failure so the next events skip the network."""

    def __init__(self) -> None:
        self._until = 0.0

    def active(self) -> bool:
        return time.monotonic() < self._until

    def trip(self, error: Exception) -> None:
        if not self.active():
            logger.warning(
                "Web is unreachable at %s (%s); dropping events for %.0f s", settings.WEB_URL, error, RELAY_COOLDOWN
            )
        self._until = time.monotonic() + RELAY_COOLDOWN


def _relay_request(event: Event, groups: list[str]) -> dict[str, Any]:
    return {
        "url": settings.WEB_URL + RELAY_PATH,
        "json": {"groups": groups, "event": event},
        "headers": {"Authorization": f"Bearer {settings.INTERNAL_TOKEN}"},
    }


class _SyncRelay:
    """Relays events from synchronous code, reusing one keep-alive connection."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._cooldown = _Cooldown()

    def send(self, event: Event, groups: list[str]) -> bool:
        if self._cooldown.active():
            return False
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=settings.EVENT_PUBLISH_TIMEOUT, verify=tls_context())
            try:
                self._client.post(**_relay_request(event, groups)).raise_for_status()
            except httpx.HTTPError as exc:
                self._cooldown.trip(exc)
                return False
        return True


_sync_relay = _SyncRelay()


class AsyncPublisher:
    """Publishes from async code (a streaming worker) without blocking on web.

    One per event loop: the relay's HTTP client belongs to the loop it was made
    in. Use as an async context manager.
    """

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._cooldown = _Cooldown()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def publish(self, event: Event, *, request_id: int | None = None) -> bool:
        """Send now; False when the event was dropped because web is unreachable."""
        groups = groups_for(request_id=request_id)
        if not relays_to_hub():
            await group_send(event, groups)
            return True
        if self._cooldown.active():
            return False
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=settings.EVENT_PUBLISH_TIMEOUT, verify=tls_context())
        try:
            response = await self._client.post(**_relay_request(event, groups))
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self._cooldown.trip(exc)
            return False
        return True
