"""Publishing events: the relay endpoint, and publishing when web is down."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest
from channels.layers import get_channel_layer
from django.test import AsyncClient

from trollama import events

RELAY = "/internal/events"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.django_db
class RelayEndpointTests:
    async def test_it_sends_an_event_with_the_token_to_the_groups(self, settings):
        layer = get_channel_layer()
        channel = await layer.new_channel("test.")
        await layer.group_add("request.7", channel)
        body = {"groups": ["request.7"], "event": {"type": "request.delta", "request_id": 7, "offset": 0, "text": "hi"}}

        response = await AsyncClient().post(
            RELAY, json.dumps(body), content_type="application/json", headers=bearer(settings.INTERNAL_TOKEN)
        )

        assert response.status_code == 204
        message = await asyncio.wait_for(layer.receive(channel), timeout=2)
        assert message == {"type": events.FORWARD_TYPE, "event": body["event"]}

    @pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": "Basic abc"}])
    async def test_it_refuses_anything_without_the_token(self, headers):
        body = {"groups": ["requests"], "event": {"type": "request.done"}}

        response = await AsyncClient().post(RELAY, json.dumps(body), content_type="application/json", headers=headers)

        assert response.status_code == 403

    @pytest.mark.parametrize(
        "body",
        [
            "not json",
            json.dumps({"event": {"type": "x"}}),
            json.dumps({"groups": ["evil group"], "event": {"type": "x"}}),
            json.dumps({"groups": ["requests"], "event": "text"}),
        ],
    )
    async def test_it_rejects_malformed_bodies(self, settings, body):
        response = await AsyncClient().post(
            RELAY, body, content_type="application/json", headers=bearer(settings.INTERNAL_TOKEN)
        )

        assert response.status_code == 400

    @pytest.mark.parametrize(
        "body",
        [
            '{"groups": ["requests"], "event": {"type": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
            '{"groups": ["requests"], "event": {"type": "x", "a": ' + '{"b": ' * 50_000 + "1" + "}" * 50_000 + "}}",
            json.dumps({"groups": ["requests"], "event": {"type": "x", "a": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}}),
        ],
        ids=["arrays-100000-deep", "objects-50000-deep", "event-20-deep"],
    )
    async def test_it_answers_400_to_deeply_nested_json(self, settings, body):
        layer = get_channel_layer()
        channel = await layer.new_channel("test.")
        await layer.group_add("requests", channel)

        response = await AsyncClient().post(
            RELAY, body, content_type="application/json", headers=bearer(settings.INTERNAL_TOKEN)
        )

        assert response.status_code == 400
        assert "nest" in response.json()["error"]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(channel), timeout=0.2)

    async def test_it_only_accepts_post(self, settings):
        response = await AsyncClient().get(RELAY, headers=bearer(settings.INTERNAL_TOKEN))

        assert response.status_code == 405


class SilentServer:
    """Accepts connections and never answers: web hung."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


class PublishingWhenWebIsDownTests:
    def test_a_hung_web_costs_one_timeout_then_events_are_dropped_without_trying(self, relay_to, settings):
        server = SilentServer()
        relay_to(server.url)
        settings.EVENT_PUBLISH_TIMEOUT = 0.2
        events._sync_relay = events._SyncRelay()
        try:
            results = [events._sync_relay.send({"type": "request.delta"}, ["requests"]) for _ in range(5)]
        finally:
            server.close()

        assert results == [False] * 5
        assert server.accepted == 1

    async def test_the_async_publisher_drops_events_when_web_refuses_connections(self, relay_to):
        relay_to("http://127.0.0.1:9")  # nothing listens on the discard port

        async with events.AsyncPublisher() as publisher:
            first = await publisher.publish({"type": "request.delta"}, request_id=1)
            second = await publisher.publish({"type": "request.delta"}, request_id=1)

        assert (first, second) == (False, False)

    def test_publish_waits_for_the_commit(self, relay_to, django_capture_on_commit_callbacks, db):
        with django_capture_on_commit_callbacks() as callbacks:
            events.publish({"type": "request.queued"}, request_id=3)

        assert len(callbacks) == 1


def test_group_names_are_validated():
    assert events.is_valid_group("requests")
    assert events.is_valid_group("request.12")
    assert not events.is_valid_group("request.")
    assert not events.is_valid_group("request.1.2")
    assert not events.is_valid_group("other")
