"""Changes the bot makes to Discord channels themselves, beyond writing in them."""

from __future__ import annotations

from typing import Any

import discord

THREAD_TYPES = frozenset({discord.ChannelType.public_thread, discord.ChannelType.private_thread})


def is_thread(channel: Any) -> bool:
    return getattr(channel, "type", None) in THREAD_TYPES


def is_text_channel(channel: Any) -> bool:
    """A server's text (or announcement) channel: where a mention of the bot opens a thread."""
    return getattr(channel, "type", None) in (discord.ChannelType.text, discord.ChannelType.news)


async def archive_and_lock(thread: Any) -> bool:
    """Archive and lock a closed conversation's thread; False when Discord says the bot may not.

    Locking needs the Manage Threads permission: the README's invite link asks for it, but a server may
    have invited the bot with an older link or taken the permission away.
    """
    try:
        await thread.edit(archived=True, locked=True)
    except discord.Forbidden:
        return False
    return True
