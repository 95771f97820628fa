"""``/summarize``, ``/reset`` and ``/close``: a conversation's memory, from Discord.

All three defer privately before anything else, then do their work with
``run_blocking``: a summary waits on Ollama and a reset or close deletes a
whole history, and neither may hold up the other commands. Refusals and
"nothing here" stay private; the summary and the notices of a reset or close
are for everyone in the channel.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord

from bots import services
from bots.blocking import run_blocking
from bots.channels import archive_and_lock, is_thread
from bots.commands import Reply, send_reply
from bots.commands.checks import conversation_denial, is_moderator
from conversations.notices import count_messages
from pipeline.services import SummaryFailed, close_thread, reset_thread, summarize_thread

if TYPE_CHECKING:
    from bots.commands import CommandBot

logger = logging.getLogger(__name__)

NO_CONVERSATION = "There is no conversation with me in this channel yet. Mention me to start one."
NOT_LOCKED = "The history is deleted, but I couldn't lock this thread: I need the Manage Threads permission for that."


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


def summarize_reply(*, channel_id: int, author: services.DiscordAuthor) -> Reply:
    """``/summarize``'s answer: the summary for the channel, or why there is none for the caller. Calls Ollama."""
    thread = services.discord_thread(channel_id=channel_id)
    if thread is None:
        return Reply(NO_CONVERSATION)
    caller = services.discord_chat_user(author=author)
    try:
        summary = summarize_thread(thread=thread, user=caller)
    except SummaryFailed as exc:
        return Reply(f"I couldn't write a summary: {exc} Please try again later.")
    return Reply(summary_text(summary), public=bool(summary))


def forget_reply(
    *, channel_id: int, caller_id: int, caller_name: str, in_dm: bool, moderator: bool, close: bool, in_thread: bool
) -> Reply:
    """``/reset`` (``close`` False) or ``/close``: do it if the caller may, and say so for the channel.

    The conversations set aside here for branches (a DM's, a forum post's) go
    too, those the caller may reset or close: a reply to one of their messages
    would otherwise bring back the history the caller was told is forgotten.
    """
    thread = services.discord_thread(channel_id=channel_id)
    if thread is None:
        return Reply(NO_CONVERSATION)
    denial = conversation_denial(thread=thread, caller_id=caller_id, in_dm=in_dm, moderator=moderator)
    if denial is not None:
        return Reply(denial)
    audit = f"discord:{caller_id} ({caller_name})"
    forgotten = sum(
        close_thread(thread=aside, by=audit)
        for aside in services.set_aside_conversations(channel_id=channel_id)
        if conversation_denial(thread=aside, caller_id=caller_id, in_dm=in_dm, moderator=moderator) is None
    )
    if close:
        close_thread(thread=thread, by=audit)
        return Reply(close_text(by=caller_name, is_thread=in_thread), public=True)
    forgotten += reset_thread(thread=thread, by=audit)
    return Reply(reset_text(forgotten, by=caller_name), public=True)


def register(bot: CommandBot) -> None:
    @bot.tree.command(name="summarize", description="Show a summary of this conversation")
    async def summarize_command(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await run_blocking(
            summarize_reply,
            channel_id=interaction.channel_id or 0,
            author=services.DiscordAuthor.of(interaction.user),
        )
        await send_reply(interaction, reply)

    async def forget(interaction: discord.Interaction, *, close: bool) -> Reply:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await run_blocking(
            forget_reply,
            channel_id=interaction.channel_id or 0,
            caller_id=interaction.user.id,
            caller_name=_name(interaction.user),
            in_dm=interaction.guild is None,
            moderator=is_moderator(interaction.user, interaction.channel),
            close=close,
            in_thread=is_thread(interaction.channel),
        )
        await send_reply(interaction, reply)
        return reply

    @bot.tree.command(name="reset", description="Forget this conversation's history but keep the thread")
    async def reset_command(interaction: discord.Interaction) -> None:
        await forget(interaction, close=False)

    @bot.tree.command(name="close", description="Delete this conversation's history, then archive and lock the thread")
    async def close_command(interaction: discord.Interaction) -> None:
        reply = await forget(interaction, close=True)
        channel = interaction.channel
        if reply.public and is_thread(channel) and not await archive_and_lock(channel):
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(NOT_LOCKED, ephemeral=True)
