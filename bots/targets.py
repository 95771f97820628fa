"""Where the bot writes: a channel or thread as the renderer's target, and the reactions it leaves.

Apart from ``bots.client`` so that the slash commands (``bots.commands``), which the
client registers, can write into a channel without importing the client.
"""

from __future__ import annotations

import io

import discord

from bots.delivery import DM_UPLOAD_LIMIT

# The reactions on the asker's message: working, then done or failed.
WORKING, DONE, FAILED = "⏳", "✅", "❌"
NO_PINGS = discord.AllowedMentions.none()


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
        await handle.edit(content=content, allowed_mentions=NO_PINGS)

    async def delete(self, handle: discord.Message) -> None:
        await handle.delete()

    @property
    def upload_limit(self) -> int:
        guild = getattr(self.channel, "guild", None)
        return guild.filesize_limit if guild is not None else DM_UPLOAD_LIMIT

    async def attach(self, handle: discord.Message, files: list[tuple[str, bytes]]) -> None:
        uploads = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
        # A PartialMessage (an answer a restarted bot took over) carries no attachments list.
        kept = getattr(handle, "attachments", [])
        await handle.edit(attachments=[*kept, *uploads], allowed_mentions=NO_PINGS)
