"""``/route``: its texts and what it stores, with discord.py objects faked at the edge."""

from __future__ import annotations

from types import SimpleNamespace

import discord
import pytest

from bots.commands import COMMAND_MODULES
from bots.commands.general import COMMAND_HELP
from bots.commands.routes import _apply, routes_text
from conversations.models import ChatUser, Thread
from routing.models import NextMessageRoute, Route, RoutingPreference

MEMBER = SimpleNamespace(id=4242, name="erin", display_name="Erin")
CHANNEL = SimpleNamespace(
    id=777, name="help-thread", guild=SimpleNamespace(id=1), parent_id=55, type=discord.ChannelType.public_thread
)
TEXT_CHANNEL = SimpleNamespace(id=55, name="general", guild=SimpleNamespace(id=1), type=discord.ChannelType.text)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RouteCommandTests:
    def test_without_a_name_it_lists_routes_with_their_models(self):
        text = _apply(MEMBER, CHANNEL, "", False)

        assert "• `research`: Research, magistral:24b · thinks · web" in text
        assert "• `math`: Math, rnj-1:8b" in text
        assert "Nothing pinned: automatic.\nThinking: as each route says." in text

    def test_a_name_forces_the_route_for_the_next_message_in_this_channel(self):
        text = _apply(MEMBER, CHANNEL, "Math", False)

        assert text == "Your next message in this channel goes to `math` (rnj-1:8b)."
        forced = NextMessageRoute.objects.get()
        assert forced.route.slug == "math" and forced.thread.external_id == "777"
        assert Thread.objects.get(external_id="777").guild_id == "1"

    def test_in_a_text_channel_it_says_the_route_answers_in_the_thread_the_next_mention_opens(self):
        text = _apply(MEMBER, TEXT_CHANNEL, "math", False)

        assert text == "Your next message to me in this channel goes to `math` (rnj-1:8b), in the thread it opens."
        assert NextMessageRoute.objects.get().thread.external_id == "55"

    def test_pin_applies_to_every_message_and_auto_unpins_and_clears(self):
        assert _apply(MEMBER, CHANNEL, "reasoning", True).startswith("Pinned `reasoning` (magistral:24b)")
        _apply(MEMBER, CHANNEL, "math", False)
        user = ChatUser.objects.get(external_id="4242")
        assert RoutingPreference.objects.get(user=user).pinned_route.slug == "reasoning"
        assert "Pinned for you: `reasoning`" in _apply(MEMBER, CHANNEL, "", False)

        assert _apply(MEMBER, CHANNEL, "auto", False).startswith("Back to automatic")

        assert RoutingPreference.objects.get(user=user).pinned_route is None
        assert not NextMessageRoute.objects.exists()

    def test_an_unknown_or_disabled_route_is_explained(self):
        Route.objects.filter(slug="vision").update(enabled=False)

        text = _apply(MEMBER, CHANNEL, "vision", False)

        assert text.startswith("There is no route called `vision`. Routes: ")
        assert "`auto`" in text and not NextMessageRoute.objects.exists()

    def test_thinking_sets_the_users_preference(self):
        assert _apply(MEMBER, CHANNEL, "", False, "off").startswith("Thinking: off")

        user = ChatUser.objects.get(external_id="4242")
        assert RoutingPreference.objects.get(user=user).thinking == "off"
        assert _apply(MEMBER, CHANNEL, "", False).endswith("Thinking: off, even on routes that think (faster).")

    def test_it_is_registered_with_a_help_line(self):
        assert "bots.commands.routes" in COMMAND_MODULES
        assert any(name == "/route" for name, _ in COMMAND_HELP)

    def test_the_list_handles_no_routes(self):
        assert routes_text([], pinned=None).startswith("**Routes**")
