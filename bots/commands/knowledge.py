"""``/index on|off``, ``/ask`` and ``/forget-me``: the server knowledge commands (``knowledge`` app).

``/ask`` retrieves in this process (a thread of it: ``sync_to_async``), so a
refusal or "nothing found" is answered at once and costs no budget; a
question with sources then goes through the normal request pipeline, and its
answer is streamed into the channel like any other, sources listed under it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Literal

import discord
from asgiref.sync import sync_to_async
from discord import app_commands
from django.conf import settings

from bots.knowledge import readable_channels, submit_ask
from bots.services import DiscordAuthor, discord_chat_user, role_ids_of
from bots.targets import WORKING, ChannelTarget
from knowledge import services
from knowledge.services import AskRefused
from pipeline.services import Refusal

if TYPE_CHECKING:
    from bots.commands import CommandBot

ONLY_IN_A_SERVER = "This command works in a server's channels, not in DMs."
NEEDS_MANAGE_SERVER = "Only members with the **Manage Server** permission can choose which channels are indexed."
NOT_IN_A_THREAD = (
    "Run `/index` in the channel itself, not in a thread: the public threads of an indexed channel are indexed with it."
)
CANNOT_POST = (
    "I found messages about this, but I can't post the answer in this channel: I'm missing the **Send Messages** "
    "permission here. Ask in a channel where I can write."
)


def index_on_text(*, channel: str, retention_days: int, created: bool) -> str:
    kept = f"for {retention_days} days" if retention_days else "until the channel is removed"
    first = f"#{channel} is indexed now." if created else f"#{channel} was already indexed."
    return (
        f"{first} From now on I record each message's text, author, time and link here (and in its public "
        f"threads), and I'm reading its history at a gentle pace. Entries are kept {kept}; deleted and edited "
        "messages follow Discord. `/ask` answers from what the asking member can read; anyone can leave with "
        "`/forget-me`. `/index off` stops this and deletes the channel's entries."
    )


def index_off_text(*, channel: str, changed: bool) -> str:
    if not changed:
        return f"#{channel} was not indexed; nothing changed."
    return f"#{channel} is no longer indexed, and every message indexed from it is deleted from the index."


def forget_text(count: int) -> str:
    noun = "message" if count == 1 else "messages"
    return (
        f"Done: {count:,} of your {noun} deleted from the server index, and I won't index what you write from now "
        "on (in every server I'm in). Your messages in Discord itself are untouched."
    )


def asked_header(*, who: str, question: str, found: int) -> str:
    quoted = "\n".join(f"> {line}" for line in question.splitlines() or [question])
    noun = "message" if found == 1 else "messages"
    return f"🔎 **{who}** asked the server's history:\n{quoted}\n-# Answering from {found} {noun}."


def register(bot: CommandBot) -> None:
    @bot.tree.command(name="index", description="Index this channel's messages for /ask, or stop (Manage Server)")
    @app_commands.describe(state="on: index this channel and its history; off: stop and delete its entries")
    @app_commands.default_permissions(manage_guild=True)
    async def index_command(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel: Any = interaction.channel
        member: Any = interaction.user
        if interaction.guild is None or channel is None:
            await interaction.followup.send(ONLY_IN_A_SERVER, ephemeral=True)
            return
        if not getattr(getattr(member, "guild_permissions", None), "manage_guild", False):
            await interaction.followup.send(NEEDS_MANAGE_SERVER, ephemeral=True)
            return
        if getattr(channel, "parent_id", None) is not None and channel.type in (
            discord.ChannelType.public_thread,
            discord.ChannelType.private_thread,
            discord.ChannelType.news_thread,
        ):
            await interaction.followup.send(NOT_IN_A_THREAD, ephemeral=True)
            return
        name = getattr(channel, "name", "") or str(channel.id)
        changed = await sync_to_async(services.set_indexing)(
            guild_id=interaction.guild.id, channel_id=channel.id, name=name, on=state == "on", by=str(member)
        )
        await bot.knowledge.refresh(force=True)
        if state == "on":
            text = index_on_text(channel=name, retention_days=settings.KNOWLEDGE_RETENTION_DAYS, created=changed)
        else:
            text = index_off_text(channel=name, changed=changed)
        await interaction.followup.send(text, ephemeral=True)

    @bot.tree.command(name="ask", description="Ask about what was said in this server's indexed channels")
    @app_commands.describe(question="What you want to know, e.g. when is the next community event?")
    async def ask_command(interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild, channel, member = interaction.guild, interaction.channel, interaction.user
        if guild is None or channel is None:
            await interaction.followup.send(ONLY_IN_A_SERVER, ephemeral=True)
            return
        indexed = await bot.knowledge.refresh(force=True)
        readable = readable_channels(
            guild=guild,
            member=member,
            answer_channel=channel,
            candidates=[cid for cid, gid in indexed.items() if gid == guild.id],
        )
        try:
            user = await sync_to_async(discord_chat_user)(author=DiscordAuthor.of(member), role_ids=role_ids_of(member))
            sources = await sync_to_async(services.find_sources)(
                guild_id=guild.id, question=question, channel_ids=readable, user_id=user.pk
            )
        except AskRefused as refused:
            await interaction.followup.send(str(refused), ephemeral=True)
            return
        if not sources:
            await interaction.followup.send(services.NOTHING_FOUND, ephemeral=True)
            return
        await answer_in_channel(bot, interaction, question=question.strip(), sources=sources)

    @bot.tree.command(
        name="forget-me", description="Delete your messages from the server index and stop indexing yours"
    )
    async def forget_me_command(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        count = await sync_to_async(services.forget_user)(user_id=interaction.user.id)
        await interaction.followup.send(forget_text(count), ephemeral=True)


async def answer_in_channel(
    bot: CommandBot, interaction: discord.Interaction, *, question: str, sources: list[services.Source]
) -> None:
    """Post who asked what, submit the question with its sources, and stream the answer under it."""
    channel: Any = interaction.channel
    member = interaction.user
    try:
        submission = await sync_to_async(submit_ask)(
            author=DiscordAuthor.of(member),
            role_ids=role_ids_of(member),
            guild_id=interaction.guild_id or 0,
            channel_id=channel.id,
            channel_title=getattr(channel, "name", "") or str(channel.id),
            parent_channel_id=getattr(channel, "parent_id", None),
            question=question,
            external_id=f"ask-{interaction.id}",
            sources=sources,
        )
    except Refusal as refusal:
        await interaction.followup.send(refusal.message, ephemeral=True)
        return
    try:
        header = await ChannelTarget(channel).send(
            asked_header(who=getattr(member, "display_name", str(member)), question=question, found=len(sources))
        )
    except discord.HTTPException:
        header = None
    if header is None:
        from pipeline.services import cancel_request

        await sync_to_async(cancel_request)(request=submission.request)
        await interaction.followup.send(CANNOT_POST, ephemeral=True)
        return
    finished = asyncio.Event()
    request_id = submission.request.pk

    async def react(outcome: Any) -> None:
        finished.set()
        bot.typing.forget(request_id)
        await bot.mark_outcome(header, outcome)

    bot.typing.follow(request_id, channel)  # typing while a worker writes the answer, as for a mention
    bot.delivery.track(request_id, ChannelTarget(channel), on_finish=react)
    with contextlib.suppress(discord.HTTPException):
        await bot.reactions.add(header, WORKING)
    await interaction.followup.send(
        f"Found {len(sources)} relevant message{'s' if len(sources) != 1 else ''}; the answer follows in the channel.",
        ephemeral=True,
    )
    bot._spawn(bot.unmark_working_later(header, finished))
