"""bots.targets.Reactions: the bot's reactions, driven through discord.py against the Discord stand-in."""

from __future__ import annotations

import asyncio

import discord

from bots.discord_api import use_api
from bots.targets import DONE, WORKING, Reactions


class ReactionsTests:
    async def test_questions_marked_and_finished_at_once_in_one_channel_draw_no_429(
        self, fake_discord, discord_api_restored
    ):
        # Six questions at once, each marked working, then finished at staggered moments: discord.py
        # on its own draws several 429s here (its limiter lets a new change overtake a woken waiter).
        use_api(fake_discord.api_url + "/")
        asked = [fake_discord.send_message("alice", "general", f"question {n}") for n in range(6)]
        reactions = Reactions()
        client = discord.Client(intents=discord.Intents.none())
        async with client:
            await client.login("any-token")
            channel = client.get_partial_messageable(fake_discord.general.id)

            async def answer(n: int, message_id: int) -> None:
                message = channel.get_partial_message(message_id)
                await reactions.add(message, WORKING)
                await asyncio.sleep(0.1 * (n % 3))
                await reactions.remove(message, WORKING, client.user)
                await reactions.add(message, DONE)

            await asyncio.gather(*(answer(n, m.id) for n, m in enumerate(asked)))

        assert fake_discord.rate_limited == []
        for message in asked:
            reactions_left = fake_discord.message(message.id).reactions
            assert (reactions_left.get(WORKING), reactions_left.get(DONE)) == (set(), {fake_discord.bot.id})
        changes = fake_discord.calls_to("PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}")
        assert len(changes) == 12
