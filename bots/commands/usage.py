"""``/usage``: the caller's token budget this week, answered privately."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from asgiref.sync import sync_to_async
from django.utils import timezone

from bots.services import DiscordAuthor, discord_chat_user, role_ids_of
from budgets.selectors import budget_status
from budgets.texts import usage_text

if TYPE_CHECKING:
    from bots.commands import CommandBot


def usage_reply(*, author: DiscordAuthor, role_ids: Sequence[int] | None) -> str:
    """The ``/usage`` text for this Discord user; ``role_ids`` None (a DM) keeps their last known roles."""
    user = discord_chat_user(author=author, role_ids=role_ids)
    now = timezone.now()
    return usage_text(budget_status(user=user, now=now), now=now)


def register(bot: CommandBot) -> None:
    @bot.tree.command(name="usage", description="Your token budget this week: used, remaining and when it resets")
    async def usage_command(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        caller = interaction.user
        text = await sync_to_async(usage_reply)(author=DiscordAuthor.of(caller), role_ids=role_ids_of(caller))
        await interaction.followup.send(text, ephemeral=True)
