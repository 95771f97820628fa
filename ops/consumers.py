"""The one websocket endpoint every listener uses: browsers, the bot, the terminal."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from conversations.selectors import RequestFilters, recent_requests_snapshot
from pipeline.snapshots import request_snapshot
from trollama import events
from trollama.auth import bearer_token, is_internal_token
from trollama.maintenance import maintenance_snapshot
from trollama.origins import origin_is_allowed

# Close codes in the 4000-4999 range reserved for applications.
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """Forwards request events to a listener, after a snapshot from the database.

    ``/ws/events/`` follows every request (the console list, the bot, the
    terminal); ``/ws/requests/<id>/`` follows one. On connect, and whenever the
    client sends ``{"type": "sync"}``, the current state is sent as a ``sync``
    message (with the maintenance state on ``/ws/events/``), so a listener that
    reconnects or notices a gap catches up. The list snapshot honours
    ``?status=&route=&user=`` in the URL (see ``RequestFilters``); events are
    not filtered.

    Browsers authenticate with a staff session and must send an allowed
    Origin (exact scheme, host and port: see ``trollama.origins``); the bot and the terminal send ``Authorization: Bearer <token>``.
    """

    groups: list[str]

    async def connect(self) -> None:
        if not self._authenticated():
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.request_id: int | None = self.scope["url_route"]["kwargs"].get("request_id")
        if self.request_id is not None and await sync_to_async(request_snapshot)(self.request_id) is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if self.request_id is None:
            self.groups = [events.REQUESTS_GROUP, events.SYSTEM_GROUP]
        else:
            self.groups = [events.request_group(self.request_id), events.SYSTEM_GROUP]
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        # After joining the groups, so nothing falls between snapshot and events.
        await self._send_snapshot()

    def _authenticated(self) -> bool:
        if is_internal_token(bearer_token(_header(self.scope, b"authorization"))):
            return True
        user = self.scope.get("user")
        return bool(user and user.is_active and user.is_staff and origin_is_allowed(_header(self.scope, b"origin")))

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "sync":
            await self._send_snapshot()
        else:
            await self.send_json(
                {"type": "error", "error": 'unknown message; the only one accepted is {"type": "sync"}'}
            )

    async def _send_snapshot(self) -> None:
        if self.request_id is None:
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            await self.send_json(
                {
                    "type": "sync",
                    "requests": await sync_to_async(recent_requests_snapshot)(filters=RequestFilters.from_query(query)),
                    "maintenance": await sync_to_async(maintenance_snapshot)(),
                }
            )
        else:
            await self.send_json({"type": "sync", "request": await sync_to_async(request_snapshot)(self.request_id)})

    async def event_forward(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])
