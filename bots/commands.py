"""Texts for the slash commands, kept apart from discord.py so they can be tested."""

from __future__ import annotations

from collections.abc import Iterable

from routing.models import Route


def help_text(routes: Iterable[Route]) -> str:
    lines = [
        "**Trollama** answers with the local model that suits your message.",
        "",
        "**Talking to me**",
        "• Mention me in a channel: I answer in a new thread, and every message there is a turn.",
        "• Mention me in any other thread, or write to me in a DM.",
        "• Say `cancel` or `stop` in the conversation to stop your running request.",
        "",
        "**Commands**",
        "• `/help`: this message.",
        "• `/cancel`: cancel your queued or running request in this channel (moderators: anyone's).",
        "",
        "**Routes**",
    ]
    route_lines = [f"• `{route.slug}`: {route.name} ({route.model})" for route in routes]
    lines.extend(route_lines or ["• none enabled: an operator can add one in the admin"])
    return "\n".join(lines)
