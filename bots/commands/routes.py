"""``/route``: see the routes, force one for your next message here, or pin one for all your messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import discord
from asgiref.sync import sync_to_async
from discord import app_commands

from bots.channels import is_text_channel
from conversations.models import Platform, Thread
from pipeline.services import get_or_create_chat_user
from routing.models import Route, RoutingPreference
from routing.selectors import enabled_routes
from routing.services import RouteChoice, UnknownRoute, choose_route, preference_of, set_thinking

if TYPE_CHECKING:
    from bots.commands import CommandBot


THINKING_TEXT = {
    "auto": "Thinking: as each route says.",
    "on": "Thinking: on, wherever the model can think (slower, often better on hard questions).",
    "off": "Thinking: off, even on routes that think (faster).",
}


def routes_text(routes: Iterable[Route], *, pinned: Route | None, thinking: str = "auto") -> str:
    lines = ["**Routes** (I pick one per message; `/route name:<route>` to choose yourself)"]
    for route in routes:
        tools = " · web" if route.tool_names else ""
        thinks = " · thinks" if route.think != Route.Think.OFF else ""
        lines.append(f"• `{route.slug}`: {route.name}, {route.model}{thinks}{tools}")
    lines.append(
        f"Pinned for you: `{pinned.slug}` (`/route name:auto` to unpin)." if pinned else "Nothing pinned: automatic."
    )
    lines.append(THINKING_TEXT[thinking])
    return "\n".join(lines)


def choice_text(choice: RouteChoice, *, opens_thread: bool = False) -> str:
    """What ``/route`` did; ``opens_thread``: it was used in a text channel, where a mention opens a thread."""
    if choice.route is None:
        return "Back to automatic: I'll pick the route for each message again."
    if choice.scope == "pin":
        return (
            f"Pinned `{choice.route.slug}` ({choice.route.model}) for all your messages. "
            "`/route name:auto` unpins it. Budgets apply as usual."
        )
    route = f"`{choice.route.slug}` ({choice.route.model})"
    if opens_thread:
        return f"Your next message to me in this channel goes to {route}, in the thread it opens."
    return f"Your next message in this channel goes to {route}."


def _apply(interaction_user: Any, channel: Any, slug: str, pin: bool, thinking: str = "") -> str:
    user = get_or_create_chat_user(
        platform=Platform.DISCORD,
        external_id=str(interaction_user.id),
        username=interaction_user.name,
        display_name=getattr(interaction_user, "display_name", interaction_user.name),
    )
    if thinking:
        set_thinking(user=user, thinking=thinking)
        if not slug:
            return THINKING_TEXT[thinking]
    if not slug:
        preference = preference_of(user)
        return routes_text(enabled_routes(), pinned=preference.pinned_route, thinking=preference.thinking)
    guild = getattr(channel, "guild", None)
    parent = getattr(channel, "parent_id", None)
    thread, _ = Thread.objects.get_or_create(
        platform=Platform.DISCORD,
        external_id=str(channel.id),
        defaults={
            "title": str(getattr(channel, "name", "") or "")[:100],
            "owner": user,
            "guild_id": str(guild.id) if guild else "",
            "parent_channel_id": str(parent or ""),
        },
    )
    try:
        return choice_text(
            choose_route(user=user, thread=thread, slug=slug.strip().lower(), scope="pin" if pin else "next"),
            opens_thread=is_text_channel(channel),
        )
    except UnknownRoute as exc:
        return str(exc)


def register(bot: CommandBot) -> None:
    @bot.tree.command(name="route", description="See the routes, or choose the one that answers you")
    @app_commands.describe(
        name="A route, or auto to let me choose again. Empty: list the routes.",
        pin="Use it for all your messages (default: only your next message here).",
        thinking="Let models think before answering: auto (as the route says), on or off.",
    )
    @app_commands.choices(
        thinking=[app_commands.Choice(name=value, value=value) for value in RoutingPreference.Thinking.values]
    )
    async def route_command(
        interaction: discord.Interaction, name: str = "", pin: bool = False, thinking: str = ""
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await sync_to_async(_apply)(interaction.user, interaction.channel, name, pin, thinking)
        await interaction.followup.send(text, ephemeral=True)

    @route_command.autocomplete("name")
    async def route_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        routes = await sync_to_async(enabled_routes)()
        names = [route.slug for route in routes] + ["auto"]
        return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n][:25]
