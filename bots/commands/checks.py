"""Permission rules shared by slash commands.

Commands check inside their handler, after deferring, so a denied command is
still acknowledged within Discord's 3 s whatever the database is doing; the
denial is the command's (private) answer. ``Denied`` remains for checks that
raise: ``TrollamaBot.on_command_error`` answers it in words.
"""

from __future__ import annotations

from typing import Any

from discord import app_commands

from conversations.models import Thread


class Denied(app_commands.CheckFailure):
    """A check said no; ``str()`` is the message for the user."""


def is_moderator(member: Any, channel: Any) -> bool:
    """True for a guild member who may manage messages or threads in ``channel``."""
    permissions = getattr(channel, "permissions_for", None)
    if permissions is None or getattr(member, "guild", None) is None:
        return False  # only guild members hold guild permissions; a DM has no moderators
    allowed = channel.permissions_for(member)
    return bool(allowed.manage_messages or allowed.manage_threads)


def conversation_denial(*, thread: Thread, caller_id: int, in_dm: bool, moderator: bool) -> str | None:
    """Why the caller may not reset or close ``thread``; None when they may.

    Allowed: the conversation's owner, anyone in a DM with the bot (it is their
    own conversation), and a moderator.
    """
    if in_dm or moderator:
        return None
    owner = thread.owner.external_id if thread.owner is not None else None
    if owner != str(caller_id):
        return "Only the person who started this conversation, or a moderator, can do that."
    return None
