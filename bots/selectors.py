"""Reading the bot's state, for health checks, the console and metrics; and who it may answer."""

from __future__ import annotations

from collections import defaultdict

from django.conf import settings

from bots.intake import AccessPolicy
from bots.models import AccessRule, BotHeartbeat, DiscordAccess

# How stale the bot's copy of the access rules may be: an admin's edit applies within this many seconds.
ACCESS_TTL = 5.0


def latest_heartbeat() -> BotHeartbeat | None:
    """The most recent heartbeat of any bot, or None if no bot ever ran."""
    return BotHeartbeat.objects.order_by("-beat_at").first()


def access_policy() -> AccessPolicy:
    """Who the bot answers where: the DISCORD_* settings and the admin's access rules together.

    Each list is the union of its setting and its rows; direct messages follow
    the admin's row when it says on or off, the setting otherwise.
    """
    rows: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for kind, action, discord_id in AccessRule.objects.values_list("kind", "action", "discord_id"):
        rows[kind, action].add(discord_id)

    def ids(setting: list[int], kind: str, action: str) -> frozenset[int]:
        return frozenset(setting) | frozenset(rows[kind, action])

    allow, block = AccessRule.Action.ALLOW, AccessRule.Action.BLOCK
    kinds = AccessRule.Kind
    dms_row = DiscordAccess.objects.values_list("direct_messages", flat=True).order_by("pk").first()
    dms = settings.DISCORD_ALLOW_DMS if dms_row in (None, DiscordAccess.DirectMessages.SETTING) else dms_row == "on"
    return AccessPolicy(
        guilds=ids(settings.DISCORD_ALLOWED_GUILDS, kinds.GUILD, allow),
        channels=ids(settings.DISCORD_ALLOWED_CHANNELS, kinds.CHANNEL, allow),
        dms=dms,
        allowed_users=ids(settings.DISCORD_ALLOWED_USERS, kinds.USER, allow),
        blocked_users=ids(settings.DISCORD_BLOCKED_USERS, kinds.USER, block),
        allowed_roles=ids(settings.DISCORD_ALLOWED_ROLES, kinds.ROLE, allow),
        blocked_roles=ids(settings.DISCORD_BLOCKED_ROLES, kinds.ROLE, block),
    )
