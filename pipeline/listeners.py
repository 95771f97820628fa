"""Following events from outside a browser: the bot and the terminal.

``WebsocketListener`` is the normal path: a websocket client of web that
presents the internal token, exactly like the console's browsers minus the
session. ``LayerListener`` reads this process's own channel layer, for
``manage.py chat --inline``, where the process is its own hub.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

import websockets
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from conversations.selectors import recent_requests_snapshot
from trollama import events
from trollama.maintenance import maintenance_snapshot

Event = dict[str, Any]


class WebUnreachable(Exception):
    """Web could not be reached; the message says where and why."""


class Listener(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def resync(self) -> None: ...


def websocket_url(path: str) -> str:
    base = settings.WEB_URL
    scheme = "wss" if base.startswith("https://") else "ws"
    return scheme + base[base.index("://") :] + path


class WebsocketListener:
    """Events from web's ``/ws/events/`` (or one request's path)."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, path: str = "/ws/events/", *, open_timeout: float = 5.0) -> WebsocketListener:
        url = websocket_url(path)
        try:
            connection = await websockets.connect(
                url,
                additional_headers={"Authorization": f"Bearer {settings.INTERNAL_TOKEN}"},
                open_timeout=open_timeout,
                max_size=None,  # a finished answer can be long
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise WebUnreachable(f"Couldn't connect to web at {url} ({exc or type(exc).__name__}).") from exc
        return cls(connection)

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for raw in self._connection:
            yield json.loads(raw)

    async def resync(self) -> None:
        await self._connection.send(json.dumps({"type": "sync"}))

    async def close(self) -> None:
        await self._connection.close()


class LayerListener:
    """Events from this process's channel layer, joined to the ``requests`` group."""

    def __init__(self, channel: str) -> None:
        self._layer = get_channel_layer()
        self._channel = channel
        self._pending: list[Event] = []

    @classmethod
    async def connect(cls) -> LayerListener:
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel("listener.")
        for group in (events.REQUESTS_GROUP, events.SYSTEM_GROUP):
            await layer.group_add(group, channel)
        return cls(channel)

    async def __aiter__(self) -> AsyncIterator[Event]:
        assert self._layer is not None
        while True:
            while self._pending:
                yield self._pending.pop(0)
            message = await self._layer.receive(self._channel)
            if message.get("type") == events.FORWARD_TYPE:
                yield message["event"]

    async def resync(self) -> None:
        self._pending.append(
            {
                "type": "sync",
                "requests": await sync_to_async(recent_requests_snapshot)(),
                "maintenance": await sync_to_async(maintenance_snapshot)(),
            }
        )

    async def close(self) -> None:
        assert self._layer is not None
        for group in (events.REQUESTS_GROUP, events.SYSTEM_GROUP):
            await self._layer.group_discard(group, self._channel)
