"""Reading the bot's state, for health checks, the console and metrics."""

from __future__ import annotations

from bots.models import BotHeartbeat


def latest_heartbeat() -> BotHeartbeat | None:
    """The most recent heartbeat of any bot, or None if no bot ever ran."""
    return BotHeartbeat.objects.order_by("-beat_at").first()
