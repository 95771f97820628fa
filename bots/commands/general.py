"""``/help`` and ``/cancel``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import discord
from asgiref.sync import sync_to_async

from bots import services
from bots.commands.checks import is_moderator
from pipeline.services import cancel_request
from routing.models import Route
from routing.selectors import enabled_routes

if TYPE_CHECKING:
    from bots.commands import CommandBot

# One line per command, shown by /help. Modules that add commands add their lines here too.
COMMAND_HELP = [
    ("/help", "this message."),
    ("/cancel", "cancel your queued or running request in this channel (moderators: anyone's)."),
    (
        "/route",
        "list the routes; `name:<route>` for your next message here, `pin:True` for all of them, `auto` to unpin.",
    ),
    ("/summarize", "show a summary of this conversation, writing one if needed."),
    ("/reset", "forget this conversation's history but keep the thread (its starter or a moderator)."),
    ("/close", "delete this conversation's history, then archive and lock the thread (its starter or a moderator)."),
    ("/usage", "your token budget this week: used, remaining, and when it resets (only you see it)."),
    ("/ask", "ask about what was said in this server's indexed channels; the answer links its sources."),
    ("/index", "`on` or `off`: index this channel's messages for /ask, or stop and delete them (Manage Server)."),
    ("/forget-me", "delete your messages from the server index and never index yours again."),
]


def help_text(routes: Iterable[Route]) -> str:
    lines = [
        "**Trollama** answers with the local model that suits your message.",
        "",
        "**Talking to me**",
        "• Mention me in a channel: I answer in a new thread, and every message there is a turn.",
        "• Mention me in any other thread, or write to me in a DM.",
        "• To stop an answer: `/cancel`, say `cancel` or `stop`, react ❌ to my reply, or delete your message.",
        "",
        "**Commands**",
    ]
    lines.extend(f"• `{name}`: {meaning}" for name, meaning in COMMAND_HELP)
    lines += ["", "**Routes**"]
    route_lines = [f"• `{route.slug}`: {route.name} ({route.model})" for route in routes]
    lines.extend(route_lines or ["• none enabled: an operator can add one in the admin"])
    return "\n".join(lines)


def cancelled_text(*, whose_id: str, caller_id: int, whose_name: str) -> str:
    return "Cancelling your request." if whose_id == str(caller_id) else f"Cancelling {whose_name}'s request."


def register(bot: CommandBot) -> None:
    @bot.tree.command(name="help", description="What Trollama does, its commands and its routes")
    async def help_command(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        routes = await sync_to_async(enabled_routes)()
        await interaction.followup.send(help_text(routes), ephemeral=True)

    @bot.tree.command(name="cancel", description="Cancel your request that is queued or running in this channel")
    async def cancel_command(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        moderator = is_moderator(interaction.user, interaction.channel)
        request = await sync_to_async(services.active_request_in_channel)(
            channel_id=interaction.channel_id or 0, user_id=None if moderator else interaction.user.id
        )
        if request is None:
            await interaction.followup.send("Nothing of yours is queued or running in this channel.", ephemeral=True)
            return
        text = cancelled_text(
            whose_id=request.user.external_id, caller_id=interaction.user.id, whose_name=str(request.user)
        )
        await sync_to_async(cancel_request)(request=request)
        await interaction.followup.send(text, ephemeral=True)
