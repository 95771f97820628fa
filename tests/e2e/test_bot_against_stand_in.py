"""End to end: the real bot process (``manage.py runbot``, real discord.py) against the Discord stand-in.

Web, workers and the bot run as OS processes with the settings a user gets;
the fake Discord and the fake Ollama run in this process, and the test plays
the people in the server.
"""

from __future__ import annotations

import itertools

import pytest

from bots.render import DISCORD_LIMIT, split_message
from tests.e2e.bot import finished, module_bot_system

pytestmark = pytest.mark.e2e

# Long enough for two Discord messages, with code whose indentation, tabs and
# brackets must arrive byte for byte.
LOOP = "".join(f"    for i{n} in range({n}):\n        print(i{n}, {{'n': [{n}]}})  # ({n})\n" for n in range(36))
REPLY = (
    f"Here is the loop you asked for:\n\n```python\ndef main():\n{LOOP}```\n\n\tThat's all; ask again if it breaks.\n"
)
EDIT_INTERVAL = 1.1  # the default DISCORD_EDIT_INTERVAL
ANSWER_TIMEOUT = 90.0


system = module_bot_system("e2e-bot")


def texts(messages):
    return [m.content for m in messages]


class BotAgainstStandInTests:
    def test_a_mention_is_answered_in_a_new_thread_with_paced_edits_and_the_exact_text(
        self, system, fake, fake_discord
    ):
        assert len(REPLY) > DISCORD_LIMIT
        fake.script(REPLY, tokens_per_second=120)

        asked = fake_discord.send_message("alice", "general", "show me a loop", mention_bot=True)
        thread = fake_discord.wait_for(lambda: fake_discord.thread_of(asked), timeout=30, what="a thread")
        fake_discord.wait_for(lambda: finished(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")

        answer = fake_discord.bot_messages(thread)
        assert texts(answer) == split_message(REPLY)
        assert all(len(m.content) <= DISCORD_LIMIT for m in answer)
        assert (
            "    for i7 in range(7):\n        print(i7, {'n': [7]})  # (7)\n" in answer[0].content + answer[1].content
        )
        assert thread.name and thread.owner_id == fake_discord.bot.id and thread.parent_id == fake_discord.general.id
        first_shown = answer[0].history[0].content
        assert first_shown and not REPLY.startswith(first_shown)  # a placeholder came first
        assert len(answer[0].edits) >= 2  # the text streamed in
        for message in answer:
            times = [version.at for version in message.history]
            assert all(b - a >= EDIT_INTERVAL - 0.05 for a, b in itertools.pairwise(times)), times
        assert fake_discord.rate_limited == []
        assert fake_discord.message(asked.id).reactions == {"⏳": set(), "✅": {fake_discord.bot.id}}
        assert fake_discord.calls_to("POST /channels/{channel_id}/typing", channel=thread)

    def test_a_direct_message_is_answered_in_the_dm(self, system, fake, fake_discord):
        fake.script("Hello Bob.\n\n```\n  two spaces\n\ttab\n```", tokens_per_second=60)

        asked = fake_discord.send_dm("bob", "hi there")
        fake_discord.wait_for(lambda: finished(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")

        assert texts(fake_discord.bot_messages(asked.channel_id)) == ["Hello Bob.\n\n```\n  two spaces\n\ttab\n```"]
        assert fake_discord.calls_to("POST /channels/{channel_id}/messages/{message_id}/threads") == []
        assert fake.chats[-1].body["messages"][-1]["content"] == "hi there"

    def test_usage_is_answered_privately_within_three_seconds(self, system, fake_discord):
        interaction = fake_discord.run_command("usage", user="alice", channel="general")

        fake_discord.wait_for(
            lambda: interaction.original_id and not fake_discord.message(interaction.original_id).loading,
            timeout=30,
            what="the /usage answer",
        )

        answer = fake_discord.message(interaction.original_id)
        assert interaction.callback_at < 3.0 and not interaction.late
        assert answer.ephemeral and "tokens" in answer.content

    def test_the_bot_resumes_after_a_dropped_gateway_and_answers_what_was_said_meanwhile(
        self, system, fake, fake_discord
    ):
        fake.script("Still here.", tokens_per_second=60)
        resumed_before = sum(1 for c in fake_discord.connections if c.resumed)

        assert fake_discord.drop_gateway() == 1
        asked = fake_discord.send_message("bob", "general", "are you there?", mention_bot=True)
        fake_discord.wait_for(
            lambda: sum(1 for c in fake_discord.connections if c.resumed) > resumed_before, timeout=30, what="a RESUME"
        )
        fake_discord.wait_for(lambda: finished(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")

        assert texts(fake_discord.bot_messages(fake_discord.thread_of(asked))) == ["Still here."]

    def test_the_bot_identifies_afresh_when_its_session_cannot_resume(self, system, fake, fake_discord):
        fake.script("New session, same bot.", tokens_per_second=60)
        identified = sum(1 for c in fake_discord.connections if c.kind == "identify")

        fake_discord.drop_gateway(resumable=False)
        fake_discord.wait_for_ready(timeout=30, count=identified + 1)
        asked = fake_discord.send_message("alice", "general", "and now?", mention_bot=True)
        fake_discord.wait_for(lambda: finished(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")

        assert texts(fake_discord.bot_messages(fake_discord.thread_of(asked))) == ["New session, same bot."]
        assert system.processes["bot"].poll() is None

    def test_a_refused_thread_is_answered_in_words_in_the_channel(self, system, fake, fake_discord):
        fake.script("Answered here instead.", tokens_per_second=60)
        fake_discord.forbid_thread_creation("general")

        asked = fake_discord.send_message("alice", "general", "no threads here", mention_bot=True)
        [refused] = fake_discord.wait_for_call("POST /channels/{channel_id}/messages/{message_id}/threads", timeout=30)
        assert refused.status == 403
        reply = fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.bot_messages("general") if m.reference and m.reference.id == asked.id), None
            ),
            timeout=15,
            what="a reply in the channel",
        )

        assert "Create Public Threads" in reply.content
        assert not [r for r in fake.requests if r.path == "/api/chat" and "no threads here" in str(r.body)]
