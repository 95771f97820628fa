"""Fixtures shared by the whole suite: the fake Ollama and fake Discord servers, and personas."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import LazySettings
from pytest_django.plugin import blocking_manager_key

from tests.fake_discord import FakeDiscord
from tests.fake_ollama import FakeOllama
from trollama import events

# The test process holds the channel layer that in-process consumers listen on,
# as web does in production.
events.mark_as_hub()


def _database_use(item: pytest.Item) -> str:
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    if (marker and marker.kwargs.get("transaction")) or {"transactional_db", "live_server"} & set(fixtures):
        return "transactional"
    return "plain" if marker or "db" in fixtures else ""


_flushed = False  # a transactional test has ended since the migrations' rows were last in place


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Give a plain database test that runs after a transactional one the rows the migrations seeded.

    A transactional test ends by flushing every table; one with ``serialized_rollback``
    reloads the migrations' rows (routes, tiers, examples) when it starts, not when it
    ends. Run alone, pytest-django orders the plain tests before the transactional ones,
    so none of them meets a flushed database; under pytest-xdist each worker takes whole
    files as they come, and a plain test after a transactional one would find no routes
    and no tiers. pytest-django has no setting for this, hence this hook.
    """
    global _flushed
    if _flushed and _database_use(item) == "plain":
        from django.db import connections

        with item.config.stash[blocking_manager_key].unblock():
            for connection in connections.all():
                if contents := getattr(connection, "_test_serialized_contents", None):
                    connection.creation.deserialize_db_from_string(contents)
        _flushed = False
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    global _flushed
    try:
        return (yield)
    finally:
        if _database_use(item) == "transactional":
            _flushed = True


@pytest.fixture(scope="session")
def _fake_ollama_server() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake


@pytest.fixture
def fake_ollama(_fake_ollama_server: FakeOllama, settings: LazySettings) -> Iterator[FakeOllama]:
    """A real HTTP server speaking Ollama's API, with OLLAMA_HOST pointing at it."""
    _fake_ollama_server.reset()
    settings.OLLAMA_HOST = _fake_ollama_server.url
    yield _fake_ollama_server
    _fake_ollama_server.reset()


@pytest.fixture
def fake(_fake_ollama_server: FakeOllama) -> Iterator[FakeOllama]:
    """The fake server, reset, for tests that run real processes (they get its URL through their environment)."""
    _fake_ollama_server.reset()
    yield _fake_ollama_server
    _fake_ollama_server.reset()


@pytest.fixture
def relay_to(settings: LazySettings) -> Iterator[object]:
    """Make this process publish like a worker on the embedded default: over HTTP to web."""

    def configure(web_url: str) -> None:
        settings.WEB_URL = web_url
        settings.REDIS_URL = ""
        events._is_hub = False

    yield configure
    events._is_hub = True


@pytest.fixture(scope="session")
def _fake_discord_server() -> Iterator[FakeDiscord]:
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def fake_discord(_fake_discord_server: FakeDiscord, settings: LazySettings) -> Iterator[FakeDiscord]:
    """A local Discord stand-in (REST v10 + gateway), reset, with DISCORD_API_URL pointing at it.

    One server for the session: its guild, users and gateway sessions stay; calls, scripted
    failures and rate-limit windows are forgotten before and after each test.
    """
    _fake_discord_server.reset()
    settings.DISCORD_API_URL = _fake_discord_server.api_url
    yield _fake_discord_server
    _fake_discord_server.reset()
