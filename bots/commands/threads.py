"""``/summarize``, ``/reset`` and ``/close``: a conversation's memory, from Discord."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from asgiref.sync import sync_to_async

from bots import services
from bots.channels import archive_and_lock, is_thread
from bots.commands.checks import require_owner_or_moderator
from bots.render import split_message
from conversations.models import Thread
from conversations.notices import count_messages
from conversations.services import SummaryFailed, close_thread, reset_thread, summarize_thread

if TYPE_CHECKING:
    from bots.client import TrollamaBot

logger = logging.getLogger(__name__)

NO_CONVERSATION = "There is no conversation with me in this channel yet. Mention me to start one."


def summary_text(summary: str) -> str:
    if not summary:
        return "Nothing has been said here yet, so there is nothing to summarize."
    return f"**Summary of this conversation**\n\n{summary}"


def reset_text(forgotten: int, *, by: str) -> str:
    forgotten_text = count_messages(forgotten)
    return f"{by} reset this conversation: I've forgotten its {forgotten_text}. Your next message starts afresh, here."


def close_text(*, by: str, is_thread: bool) -> str:
    where = "I'm archiving and locking this thread." if is_thread else "Write to me again any time to start afresh."
    return f"{by} closed this conversation. I've deleted its history. {where}"


def _name(user: Any) -> str:
    return str(getattr(user, "display_name", None) or getattr(user, "name", "Someone"))


async def _send_parts(interaction: discord.Interaction, text: str) -> None:
    for part in split_message(text):
        await interaction.followup.send(part, allowed_mentions=discord.AllowedMentions.none())


async def _conversation_here(interaction: discord.Interaction) -> Thread | None:
    """Acknowledge at once (what follows can take a while), then find this channel's conversation."""
    await interaction.response.defer(thinking=True)
    thread = await sync_to_async(services.discord_thread)(channel_id=interaction.channel_id or 0)
    if thread is None:
        await interaction.followup.send(NO_CONVERSATION, ephemeral=True)
    return thread


def _audit_name(user: Any) -> str:
    return f"discord:{user.id} ({_name(user)})"


def register(bot: TrollamaBot) -> None:
    @bot.tree.command(name="summarize", description="Show a summary of this conversation")
    async def summarize_command(interaction: discord.Interaction) -> None:
        thread = await _conversation_here(interaction)
        if thread is None:
            return
        caller = await sync_to_async(services.discord_chat_user)(author=services.DiscordAuthor.of(interaction.user))
        try:
            summary = await sync_to_async(summarize_thread)(thread=thread, user=caller)
        except SummaryFailed as exc:
            await interaction.followup.send(f"I couldn't write a summary: {exc} Please try again later.")
            return
        await _send_parts(interaction, summary_text(summary))

    @bot.tree.command(name="reset", description="Forget this conversation's history but keep the thread")
    @require_owner_or_moderator()
    async def reset_command(interaction: discord.Interaction) -> None:
        thread = await _conversation_here(interaction)
        if thread is None:
            return
        forgotten = await sync_to_async(reset_thread)(thread=thread, by=_audit_name(interaction.user))
        await interaction.followup.send(
            reset_text(forgotten, by=_name(interaction.user)), allowed_mentions=discord.AllowedMentions.none()
        )

    @bot.tree.command(name="close", description="Delete this conversation's history, then archive and lock the thread")
    @require_owner_or_moderator()
    async def close_command(interaction: discord.Interaction) -> None:
        thread = await _conversation_here(interaction)
        if thread is None:
            return
        await sync_to_async(close_thread)(thread=thread, by=_audit_name(interaction.user))
        channel = interaction.channel
        await interaction.followup.send(
            close_text(by=_name(interaction.user), is_thread=is_thread(channel)),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        if is_thread(channel) and not await archive_and_lock(channel):
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(
                    "The history is deleted, but I couldn't lock this thread: "
                    "I need the Manage Threads permission for that.",
                    ephemeral=True,
                )
