"""The events websocket: who may listen, what they get, and resync."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from pipeline.processing import process_request
from pipeline.services import submit_request
from tests import personas
from trollama.asgi import application


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def browser(path: str, user, origin: bytes = settings.WEB_URL.encode()) -> WebsocketCommunicator:
    cookie = await sync_to_async(session_cookie)(user)
    return WebsocketCommunicator(application, path, headers=[(b"cookie", cookie), (b"origin", origin)])


def internal(path: str, token: str | None = None) -> WebsocketCommunicator:
    token = token if token is not None else settings.INTERNAL_TOKEN
    return WebsocketCommunicator(application, path, headers=[(b"authorization", f"Bearer {token}".encode())])


def process_in_worker_thread(request_id: int) -> None:
    """Run the worker side in another thread, as a worker process would, and close its connection."""
    try:
        process_request(request_id=request_id)
    finally:
        connections.close_all()


async def collect_until_finished(communicator: WebsocketCommunicator, request_id: int) -> list[dict]:
    received = []
    while True:
        event = await communicator.receive_json_from(timeout=10)
        received.append(event)
        if event.get("request_id") == request_id and event["type"] in ("request.done", "request.failed"):
            return received


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class EventsConsumerAuthTests:
    async def test_an_anonymous_browser_is_closed(self):
        communicator = WebsocketCommunicator(
            application, "/ws/events/", headers=[(b"origin", settings.WEB_URL.encode())]
        )

        connected, code = await communicator.connect()

        assert not connected and code == 4401

    async def test_a_signed_in_non_staff_user_is_closed(self):
        user = await sync_to_async(personas.outsider)()
        communicator = await browser("/ws/events/", user)

        connected, code = await communicator.connect()

        assert not connected and code == 4401

    async def test_staff_from_a_foreign_origin_is_closed(self):
        user = await sync_to_async(personas.staff_admin)()
        communicator = await browser("/ws/events/", user, origin=b"https://evil.example")

        connected, _ = await communicator.connect()

        assert not connected

    async def test_a_wrong_internal_token_is_closed(self):
        connected, code = await internal("/ws/events/", token="not-the-token").connect()

        assert not connected and code == 4401

    async def test_an_unknown_request_is_closed_as_not_found(self):
        connected, code = await internal("/ws/requests/999999/").connect()

        assert not connected and code == 4404

    async def test_staff_with_our_origin_gets_a_snapshot(self):
        user = await sync_to_async(personas.staff_admin)()
        communicator = await browser("/ws/events/", user)

        connected, _ = await communicator.connect()

        assert connected
        sync = await communicator.receive_json_from()
        assert (sync["type"], sync["requests"], sync["maintenance"]["mode"]) == ("sync", [], "off")
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class EventsConsumerStreamTests:
    async def test_a_request_streams_to_a_browser_and_to_an_internal_client(self, fake_ollama):
        reply = "Line one.\n\n    indented = [1, 2]\n\tTabbed } ) ]\n" * 20
        fake_ollama.script(reply, tokens_per_second=400, prompt_tokens=77, completion_tokens=88)
        staff = await sync_to_async(personas.staff_admin)()
        web = await browser("/ws/events/", staff)
        bot = internal("/ws/events/")
        for communicator in (web, bot):
            assert (await communicator.connect())[0]
            assert (await communicator.receive_json_from())["type"] == "sync"
        user = await sync_to_async(personas.discord_user)()
        thread = await sync_to_async(personas.thread_of)(user)
        submission = await sync_to_async(submit_request)(user=user, thread=thread, content="hi", enqueue=False)
        request_id = submission.request.pk

        await sync_to_async(process_in_worker_thread, thread_sensitive=False)(request_id)

        for communicator in (web, bot):
            received = await collect_until_finished(communicator, request_id)
            kinds = [event["type"] for event in received]
            assert kinds[0] == "request.queued" and kinds[-1] == "request.done"
            assert "request.status" in kinds
            deltas = [event for event in received if event["type"] == "request.delta"]
            assert len(deltas) >= 2, "the answer should arrive in several deltas"
            assert "".join(delta["text"] for delta in deltas) == reply
            offsets = [delta["offset"] for delta in deltas]
            assert offsets == sorted(offsets) and offsets[0] == 0
            done = received[-1]
            assert done["content"] == reply
            assert (done["request"]["prompt_tokens"], done["request"]["completion_tokens"]) == (77, 88)
            await communicator.disconnect()

    async def test_a_listener_of_one_request_resyncs_from_the_database(self, fake_ollama):
        fake_ollama.script("Stored answer.")
        user = await sync_to_async(personas.discord_user)()
        thread = await sync_to_async(personas.thread_of)(user)
        submission = await sync_to_async(submit_request)(user=user, thread=thread, content="hi", enqueue=False)
        await sync_to_async(process_request)(request_id=submission.request.pk)
        communicator = internal(f"/ws/requests/{submission.request.pk}/")
        assert (await communicator.connect())[0]

        snapshot = await communicator.receive_json_from()
        await communicator.send_json_to({"type": "sync"})
        again = await communicator.receive_json_from()

        assert snapshot["request"]["status"] == "done"
        assert snapshot["request"]["content"] == "Stored answer."
        assert again == snapshot
        await communicator.send_json_to({"type": "nonsense"})
        assert (await communicator.receive_json_from())["type"] == "error"
        await communicator.disconnect()
