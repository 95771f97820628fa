"""The README's invite link grants what the bot uses, Manage Threads included (so /close can lock), and no more."""

from __future__ import annotations

import re
from pathlib import Path

import discord

from tests.fake_discord.world import BOT_PERMISSIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def invite_permissions() -> discord.Permissions:
    value = re.search(r"discord\.com/oauth2/authorize\?\S*permissions=(\d+)", README.read_text())
    assert value, "the README has no invite link"
    return discord.Permissions(int(value.group(1)))


class InviteLinkTests:
    def test_it_grants_exactly_the_permissions_the_readme_names(self):
        granted = {name for name, allowed in invite_permissions() if allowed}

        assert granted == {
            "read_messages",  # discord.py's name for View Channels
            "send_messages",
            "send_messages_in_threads",
            "create_public_threads",
            "read_message_history",
            "add_reactions",
            "embed_links",
            "attach_files",
            "manage_threads",
        }

    def test_the_discord_stand_in_gives_the_bot_the_same(self):
        assert invite_permissions().value == BOT_PERMISSIONS
