"""bots.discord_api: the REST base and the gateway come from DISCORD_API_URL, checked against the stand-in."""

from __future__ import annotations

import discord
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bots.discord_api import DISCORD_API, follow_api_gateway, use_api


class DiscordApiTests:
    def test_discord_py_starts_with_discords_own_api(self):
        assert Route.BASE == DISCORD_API

    async def test_rest_goes_to_the_configured_api_and_the_gateway_is_the_one_it_names(
        self, fake_discord, discord_api_restored
    ):
        use_api(fake_discord.api_url + "/")
        client = discord.Client(intents=discord.Intents.none())
        async with client:
            await client.login("any-token")
            url = await follow_api_gateway(client.http)

        assert fake_discord.api_url == Route.BASE
        assert url == fake_discord.gateway_url == str(DiscordWebSocket.DEFAULT_GATEWAY)
        assert [c.route for c in fake_discord.calls] == [
            "GET /users/@me",
            "GET /oauth2/applications/@me",
            "GET /gateway/bot",
        ]
        assert client.user.id == fake_discord.bot.id
