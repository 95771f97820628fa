"""Fixtures for the artifact tests: a media directory of their own, and a way to make artifacts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from artifacts.models import Artifact
from artifacts.services import store_answer_artifacts
from conversations.models import Request
from pipeline.services import submit_request
from tests import personas
from tests.layer import listening
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
    with listening(events.REQUESTS_GROUP) as received:
        yield received
