"""The console's websockets: staff sessions from our own pages only, and filtered snapshots."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from conversations.models import Request
from pipeline.services import submit_request
from tests import personas
from trollama.asgi import application

# Web's own pages: the origin of WEB_URL, exactly.
OUR_ORIGIN = settings.WEB_URL.encode()


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(
    path: str, *, user=None, origin: bytes | None = OUR_ORIGIN
) -> tuple[WebsocketCommunicator, bool, int]:
    headers = []
    if user is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


def two_requests() -> tuple[Request, Request]:
    alice, bob = personas.discord_user("alice", "1"), personas.discord_user("bob", "2")
    first = submit_request(user=alice, thread=personas.thread_of(alice, "a"), content="hi", enqueue=False).request
    second = submit_request(user=bob, thread=personas.thread_of(bob, "b"), content="yo", enqueue=False).request
    Request.objects.filter(pk=first.pk).update(status=Request.Status.DONE)
    return first, second


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class WebsocketAccessTests:
    @pytest.mark.parametrize("path", ["/ws/events/", "/ws/requests/1/"])
    async def test_without_a_session_it_is_closed(self, path):
        _, connected, code = await connect(path)

        assert not connected and code == 4401

    @pytest.mark.parametrize("path", ["/ws/events/", "/ws/requests/1/"])
    async def test_a_non_staff_session_is_closed(self, path):
        user = await sync_to_async(personas.outsider)()

        _, connected, code = await connect(path, user=user)

        assert not connected and code == 4401

    @pytest.mark.parametrize("origin", [b"https://evil.example", b"null", b"http://localhost.evil.example", None])
    async def test_a_staff_session_from_another_origin_is_closed(self, origin):
        user = await sync_to_async(personas.staff_admin)()

        _, connected, code = await connect("/ws/events/", user=user, origin=origin)

        assert not connected and code == 4401

    @pytest.mark.parametrize(
        "origin",
        [b"http://127.0.0.1:9999", b"http://localhost:3000", b"https://127.0.0.1", b"http://[::1]:8888"],
    )
    async def test_a_staff_session_from_an_allowed_host_on_another_scheme_or_port_is_closed(self, origin, settings):
        settings.WEB_URL = settings.PUBLIC_URL = "http://127.0.0.1:8000"
        settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
        user = await sync_to_async(personas.staff_admin)()

        _, connected, code = await connect("/ws/events/", user=user, origin=origin)

        assert not connected and code == 4401

    @pytest.mark.parametrize("origin", [b"http://localhost:8000", b"http://[::1]:8000", b"https://chat.example.org"])
    async def test_a_staff_session_from_an_allowed_host_on_webs_own_scheme_and_port_is_accepted(self, origin, settings):
        settings.WEB_URL = "http://127.0.0.1:8000"
        settings.PUBLIC_URL = "https://chat.example.org"
        settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "chat.example.org"]
        user = await sync_to_async(personas.staff_admin)()

        communicator, connected, _ = await connect("/ws/events/", user=user, origin=origin)

        assert connected
        await communicator.disconnect()

    async def test_the_internal_token_needs_no_origin(self):
        communicator = WebsocketCommunicator(
            application, "/ws/events/", headers=[(b"authorization", f"Bearer {settings.INTERNAL_TOKEN}".encode())]
        )

        connected, _ = await communicator.connect()

        assert connected
        await communicator.disconnect()

    async def test_a_staff_session_from_our_origin_is_accepted(self):
        user = await sync_to_async(personas.staff_admin)()

        communicator, connected, _ = await connect("/ws/events/", user=user)

        assert connected
        assert (await communicator.receive_json_from())["type"] == "sync"
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class FilteredSnapshotTests:
    async def test_the_list_snapshot_honours_the_filters_in_the_url(self):
        _, second = await sync_to_async(two_requests)()
        user = await sync_to_async(personas.staff_admin)()

        communicator, connected, _ = await connect("/ws/events/?status=active&user=BO", user=user)
        snapshot = await communicator.receive_json_from()
        await communicator.send_json_to({"type": "sync"})
        again = await communicator.receive_json_from()

        assert connected
        assert [row["id"] for row in snapshot["requests"]] == [second.pk]
        assert again == snapshot
        await communicator.disconnect()

    async def test_without_filters_the_snapshot_has_everything_in_flight_first(self):
        first, second = await sync_to_async(two_requests)()
        user = await sync_to_async(personas.staff_admin)()

        communicator, _, _ = await connect("/ws/events/", user=user)
        snapshot = await communicator.receive_json_from()

        assert [row["id"] for row in snapshot["requests"]] == [second.pk, first.pk]
        await communicator.disconnect()
