"""Fixtures for the artifact tests: a media directory of their own, and a way to make artifacts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from artifacts.models import Artifact
from artifacts.services import store_answer_artifacts
from conversations.models import Request
from conversations.services import submit_request
from tests import personas
from trollama import events


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Files go to a temporary MEDIA_ROOT, through the configured local storage."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def artifact_storage(monkeypatch):
    """Swap the storage artifacts use; the model field resolves its storage once, at start-up."""

    def use(storage):
        monkeypatch.setattr(Artifact._meta.get_field("file"), "storage", storage)

    return use


def submitted(text: str = "Save it as hello.py", *, user=None) -> Request:
    user = user or personas.discord_user()
    thread = personas.thread_of(user, name=f"thread-{Request.objects.count() + 1}")
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


@pytest.fixture
def make_artifacts() -> Callable[..., list[Artifact]]:
    """Store the files of an answer for a fresh request, as the worker does."""

    def make(answer: str = '```python title="hello.py"\nprint("hi")\n```\n', *, wanted: bool = True):
        request = submitted()
        return store_answer_artifacts(request=request, content=answer, wanted=wanted).artifacts

    return make


@pytest.fixture
def published() -> Iterator[Callable[[], list[dict]]]:
    """Events sent to the ``requests`` group while the test ran, read when called."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)("artifacts-test.")
    async_to_sync(layer.group_add)(events.REQUESTS_GROUP, channel)

    async def drain() -> list[dict]:
        received = []
        while True:
            try:
                received.append((await asyncio.wait_for(layer.receive(channel), timeout=0.3))["event"])
            except TimeoutError:
                return received

    yield async_to_sync(drain)
    async_to_sync(layer.group_discard)(events.REQUESTS_GROUP, channel)
