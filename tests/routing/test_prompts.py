"""The system prompt, composed in one place."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conversations.models import Platform, Thread
from routing.models import Route, ServerInstructions
from routing.prompts import BASE_ROLE, DISCORD_FORMATTING, compose_system_prompt


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ComposeSystemPromptTests:
    def thread(self, **fields: str) -> Thread:
        return Thread.objects.create(platform=Platform.DISCORD, external_id="555", **fields)

    def test_it_puts_role_formatting_route_server_channel_extra_and_date_in_order(self):
        thread = self.thread(guild_id="1", parent_channel_id="2")
        ServerInstructions.objects.create(guild_id="1", channel_id="2", instructions="Channel: answer in French.")
        ServerInstructions.objects.create(guild_id="1", instructions="Server: no swearing.")
        ServerInstructions.objects.create(guild_id="9", instructions="Another server.")
        ServerInstructions.objects.create(guild_id="1", channel_id="3", instructions="Another channel.")
        route = Route.objects.get(slug="math")

        prompt = compose_system_prompt(
            route=route, thread=thread, now=datetime(2026, 3, 2, 9, tzinfo=UTC), extra=["Write a CSV file."]
        )

        assert prompt.split("\n\n") == [
            BASE_ROLE,
            DISCORD_FORMATTING,
            route.system_prompt,
            "Server: no swearing.",
            "Channel: answer in French.",
            "Write a CSV file.",
            "Today is Monday, 02 March 2026 (UTC).",
        ]

    def test_instructions_can_target_the_thread_itself_and_disabled_ones_are_left_out(self):
        thread = self.thread(guild_id="1", parent_channel_id="2")
        ServerInstructions.objects.create(guild_id="1", channel_id="555", instructions="This thread only.")
        ServerInstructions.objects.create(guild_id="1", instructions="Off.", enabled=False)

        prompt = compose_system_prompt(route=Route.objects.get(slug="general"), thread=thread)

        assert "This thread only." in prompt and "Off." not in prompt

    def test_a_dm_gets_no_server_instructions(self):
        ServerInstructions.objects.create(guild_id="1", instructions="Server rules.")

        prompt = compose_system_prompt(route=Route.objects.get(slug="general"), thread=self.thread())

        assert "Server rules." not in prompt
