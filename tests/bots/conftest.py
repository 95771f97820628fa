"""Fixtures of the bot's tests that drive discord.py itself against the Discord stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route


@pytest.fixture
def discord_api_restored() -> Iterator[None]:
    """Put discord.py's REST base and gateway back after a test pointed them at the stand-in (``use_api``)."""
    base, gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway
