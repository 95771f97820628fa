"""Where the bot writes: a channel or thread as the renderer's target, and the reactions it leaves.

Apart from ``bots.client`` so that the slash commands (``bots.commands``), which the
client registers, can write into a channel without importing the client.
"""

from __future__ import annotations

import asyncio
import io
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord

from bots.delivery import DM_UPLOAD_LIMIT

# The reactions on the asker's message: working, then done or failed.
WORKING, DONE, FAILED = "⏳", "✅", "❌"
NO_PINGS = discord.AllowedMentions.none()
# Discord's code for an edit, a deletion or a reaction refused because the thread is archived.
ARCHIVED_THREAD = 50083
T = TypeVar("T")


async def unarchiving(channel: object, change: Callable[[], Awaitable[T]]) -> T:
    """Make ``change`` to a message in ``channel``, unarchiving the thread first if Discord says it is archived.

    A thread archives itself after a day without messages, and a moderator may archive one by hand;
    only a new message unarchives it. So an answer the bot takes up again after a long stop, or
    finishes after someone archived its thread, would otherwise be refused at every try. Unarchiving
    is what sending in the thread would do anyway; a locked thread the bot may not reopen stays refused.
    """
    try:
        return await change()
    except discord.HTTPException as exc:
        if exc.code != ARCHIVED_THREAD or not isinstance(channel, discord.Thread):
            raise
        await channel.edit(archived=False)
        return await change()


class Reactions:
    """The bot's reactions, changed one at a time in each channel.

    Discord counts reaction changes per channel, adds and removals together, one per quarter second.
    discord.py paces a single caller exactly (leaving a bucket, it sleeps out the window before it
    returns), but with several changes waiting on one bucket its limiter lets a new request overtake a
    waiter it has just woken, and a waiter whose wait timed out starts a window of its own: four
    questions asked at once in a thread drew 429s that discord.py then retried. Holding each channel
    to one change in flight leaves its limiter one caller per bucket, the case it gets right; the
    changes take no longer than Discord allows anyway.
    """

    def __init__(self) -> None:
        # A channel's lock lives while a change in it holds or awaits it.
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, message: Any) -> asyncio.Lock:
        channel_id = message.channel.id
        lock = self._locks.get(channel_id)
        if lock is None:
            lock = self._locks[channel_id] = asyncio.Lock()
        return lock

    async def add(self, message: Any, emoji: str) -> None:
        """Put ``emoji`` on ``message`` as the bot."""
        async with self._lock(message):
            await message.add_reaction(emoji)

    async def remove(self, message: Any, emoji: str, member: discord.abc.Snowflake) -> None:
        """Take ``member``'s ``emoji`` off ``message``."""
        async with self._lock(message):
            await message.remove_reaction(emoji, member)


class ChannelTarget:
    """A Discord channel or thread as the renderer's ``DiscordTarget``."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    @property
    def channel_id(self) -> int | None:
        """The channel (a thread is one) whose write budget this target shares."""
        return getattr(self.channel, "id", None)

    async def send(self, content: str) -> discord.Message:
        return await self.channel.send(content, allowed_mentions=NO_PINGS)

    async def edit(self, handle: discord.Message, content: str) -> None:
        await unarchiving(self.channel, lambda: handle.edit(content=content, allowed_mentions=NO_PINGS))

    async def delete(self, handle: discord.Message) -> None:
        await unarchiving(self.channel, handle.delete)

    @property
    def upload_limit(self) -> int:
        guild = getattr(self.channel, "guild", None)
        return guild.filesize_limit if guild is not None else DM_UPLOAD_LIMIT

    async def attach(self, handle: discord.Message, files: list[tuple[str, bytes]]) -> None:
        uploads = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
        # A PartialMessage (an answer a restarted bot took over) carries no attachments list.
        kept = getattr(handle, "attachments", [])
        await unarchiving(self.channel, lambda: handle.edit(attachments=[*kept, *uploads], allowed_mentions=NO_PINGS))
