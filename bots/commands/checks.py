"""Permission checks shared by slash commands.

A check raises ``app_commands.CheckFailure`` with a message written for the
user; ``TrollamaBot`` turns every failure into an ephemeral reply, so a denied
command is still acknowledged within Discord's 3 s.
"""

from __future__ import annotations

from typing import Any

import discord
from asgiref.sync import sync_to_async
from discord import app_commands

from conversations.models import Platform, Thread


class Denied(app_commands.CheckFailure):
    """A check said no; ``str()`` is the message for the user."""


def is_moderator(member: Any, channel: Any) -> bool:
    """True for a guild member who may manage messages or threads in ``channel``."""
    permissions = getattr(channel, "permissions_for", None)
    if permissions is None or getattr(member, "guild", None) is None:
        return False  # only guild members hold guild permissions; a DM has no moderators
    allowed = channel.permissions_for(member)
    return bool(allowed.manage_messages or allowed.manage_threads)


def thread_owner_id(channel_id: int) -> str | None:
    """The Discord id of whoever started the conversation in this channel, if we know it."""
    return (
        Thread.objects.filter(platform=Platform.DISCORD, external_id=str(channel_id))
        .values_list("owner__external_id", flat=True)
        .first()
    )


async def owner_or_moderator(interaction: discord.Interaction) -> bool:
    """Allow the conversation's owner, anyone in a DM with the bot, or a moderator."""
    if interaction.guild is None:
        return True  # a DM is its one user's own conversation
    if is_moderator(interaction.user, interaction.channel):
        return True
    owner = await sync_to_async(thread_owner_id)(interaction.channel_id or 0)
    if owner is None:
        raise Denied("There is no conversation with me in this channel.")
    if owner != str(interaction.user.id):
        raise Denied("Only the person who started this conversation, or a moderator, can do that.")
    return True


def require_owner_or_moderator() -> Any:
    """Decorator form of ``owner_or_moderator`` for app commands."""
    return app_commands.check(owner_or_moderator)
