"""Which Discord API the bot talks to: Discord's own, a rate-limit proxy, or a local stand-in.

discord.py builds every REST URL from ``discord.http.Route.BASE`` (webhooks and
interaction callbacks included), but its plain ``Client`` connects to the
gateway it has hard-coded, ``DiscordWebSocket.DEFAULT_GATEWAY``
(``wss://gateway.discord.gg/``), without asking the API. So pointing the bot
elsewhere takes two steps:

1. ``use_api(url)`` before the client makes its first request: the REST base.
2. ``follow_api_gateway(http)`` after logging in, before connecting: ask that
   API's ``GET /gateway/bot`` where its gateway is, and make it discord.py's
   default.

``run(client, token)`` does both around ``Client.login`` and ``Client.connect``,
in place of ``Client.run``; the seam is there, at the entry point, so the
client class itself knows nothing of where Discord is.

Why the default gateway rather than an argument: ``Client.connect`` passes no
gateway on the first connection, and after an INVALID_SESSION discord.py
resets its websocket to ``DEFAULT_GATEWAY`` (``gateway.py``); resumes use the
``resume_gateway_url`` from READY, which comes from the same API. Both settings
are process-wide, which fits: one bot process per token.

A REST proxy (nirn-proxy, twilight-http-proxy) forwards ``/gateway/bot`` to
Discord, so the bot still connects to Discord's gateway directly, as those
proxies expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient, Route

logger = logging.getLogger(__name__)

DISCORD_API = "https://discord.com/api/v10"


def use_api(url: str) -> None:
    """Send every REST request to ``url`` (an API v10 base such as ``https://discord.com/api/v10``)."""
    Route.BASE = url.rstrip("/")


async def follow_api_gateway(http: HTTPClient) -> str:
    """Connect to the gateway the API names; returns its URL.

    Needs a logged-in ``http`` (``Client.login`` has run, as in ``setup_hook``).
    """
    _, url, _ = await http.get_bot_gateway()
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    if Route.BASE != DISCORD_API:
        logger.info("Using the Discord API at %s, gateway %s", Route.BASE, url)
    return url


def run(client: discord.Client, token: str, *, api_url: str = DISCORD_API) -> None:
    """``client.run(token, log_handler=None)``, against the API at ``api_url`` and the gateway it names."""
    use_api(api_url)

    async def runner() -> None:
        async with client:
            await client.login(token)
            await follow_api_gateway(client.http)
            await client.connect()

    # As Client.run: Ctrl-C ends the bot quietly, asyncio.run having closed the client.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner())
