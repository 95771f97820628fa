"""End to end: slash commands, typing, command sync and mentions, through the real bot against the Discord stand-in.

Web, workers and ``manage.py runbot`` run as OS processes with default
settings; the fake Discord and the fake Ollama run in this process. Issue 15
§2.2 (slow work blocks the bot), §2.5 (/route in a text channel), §2.6
(typing only while generating), §2.7 (command sync), §2.8 (private answers
defer privately) and §2.9 (mentions).
"""

from __future__ import annotations

import signal

import pytest

from tests.e2e.bot import answers, finished, module_bot_system, start_bot, wait_for_answer
from tests.fake_discord.world import EPHEMERAL

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT = 90.0
# Long enough that the other commands are surely answered first, on a loaded machine too.
SUMMARY_LATENCY = 25.0
TYPING = "POST /channels/{channel_id}/typing"
SYNC = "PUT /applications/{application_id}/commands"
REACT = "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}"
NO_CONVERSATION = "There is no conversation with me in this channel yet. Mention me to start one."


system = module_bot_system("e2e-bot-commands")


def converse(discord, fake, user, text, reply):
    """``user`` mentions the bot in #general and is answered; returns their message and the thread it opened."""
    fake.script(reply, tokens_per_second=80)
    asked = discord.send_message(user, "general", text, mention_bot=True)
    thread = discord.wait_for(lambda: discord.thread_of(asked), timeout=30, what="a thread")
    discord.wait_for(lambda: finished(discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")
    return asked, thread


def chat_requests_containing(fake, text):
    return [r for r in fake.requests if r.path == "/api/chat" and text in str(r.body)]


class BotCommandTests:
    def test_every_command_with_a_private_answer_defers_privately(self, system, fake_discord):
        # #random holds no conversation, so each command has only a private answer to give.
        for name in ("help", "cancel", "route", "usage", "summarize", "reset", "close"):
            interaction = fake_discord.run_command(name, user="alice", channel="random")
            shown = wait_for_answer(fake_discord, interaction)

            assert interaction.callback_flags & EPHEMERAL, name
            assert not interaction.late, name
            assert all(message.ephemeral for message in shown), name
            if name in ("summarize", "reset", "close"):
                assert [m.content for m in shown] == [NO_CONVERSATION]

    def test_a_summary_being_written_holds_up_no_other_command(self, system, fake, fake_discord):
        _, alices = converse(fake_discord, fake, "alice", "tell me about otters", "Otters hold hands asleep.")
        _, bobs = converse(fake_discord, fake, "bob", "tell me about beavers", "Beavers build dams.")
        fake.script("Alice asked about otters.", match="Write the updated summary", latency=SUMMARY_LATENCY)

        summary = fake_discord.run_command("summarize", user="alice", channel=alices)
        fake_discord.wait_for(
            lambda: chat_requests_containing(fake, "Write the updated summary"), timeout=30, what="the summary request"
        )
        usage = fake_discord.run_command("usage", user="bob", channel="general")
        reset = fake_discord.run_command("reset", user="bob", channel=bobs)
        [usage_answer] = wait_for_answer(fake_discord, usage)
        [reset_answer] = wait_for_answer(fake_discord, reset)

        # Both were acknowledged in time and fully answered while the summary was still being written.
        assert answers(fake_discord, summary) == []
        assert summary.acknowledged and not summary.late
        assert usage.acknowledged and not usage.late and reset.acknowledged and not reset.late
        assert "tokens" in usage_answer.content and usage_answer.ephemeral
        assert reset_answer.content.startswith("Bob reset this conversation") and not reset_answer.ephemeral

        [shown] = wait_for_answer(fake_discord, summary, timeout=SUMMARY_LATENCY + 60)
        assert shown.content == "**Summary of this conversation**\n\nAlice asked about otters."
        assert not shown.ephemeral  # the summary is for the channel; the private placeholder is gone
        assert summary.callback_flags & EPHEMERAL and fake_discord.message(summary.original_id).deleted

    def test_a_route_chosen_in_a_channel_answers_the_next_mention_in_its_new_thread(self, system, fake, fake_discord):
        chosen = fake_discord.run_command("route", {"name": "math"}, user="alice", channel="general")
        [said] = wait_for_answer(fake_discord, chosen)
        assert said.ephemeral
        assert said.content == (
            "Your next message to me in this channel goes to `math` (rnj-1:8b), in the thread it opens."
        )

        converse(fake_discord, fake, "alice", "write a haiku about autumn leaves", "Leaves fall.")
        converse(fake_discord, fake, "alice", "write a haiku about winter snow", "Snow falls.")

        [forced] = chat_requests_containing(fake, "autumn leaves")
        [automatic] = chat_requests_containing(fake, "winter snow")
        assert forced.body["model"] == "rnj-1:8b"
        assert automatic.body["model"] == "gpt-oss:20b"  # used once: the next one is routed as usual

    def test_typing_shows_only_while_the_answer_is_written(self, system, fake, fake_discord):
        fake.script("Written " * 60, tokens_per_second=40)
        system.manage("maintenance", "soft", "--message", "Swapping the GPU.")
        try:
            asked = fake_discord.send_message("bob", "general", "a held question", mention_bot=True)
            thread = fake_discord.wait_for(lambda: fake_discord.thread_of(asked), timeout=30, what="a thread")
            fake_discord.wait_for(
                lambda: any("Held" in m.content for m in fake_discord.bot_messages(thread)),
                timeout=30,
                what="the held placeholder",
            )
            # Once the bot has answered a command asked after that, it has done all it would do for the message.
            wait_for_answer(fake_discord, fake_discord.run_command("usage", user="bob", channel=thread))
            assert fake_discord.message(asked.id).reactions.get("⏳")
            assert fake_discord.calls_to(TYPING, channel=thread) == []
        finally:
            system.manage("maintenance", "off")
        fake_discord.wait_for(lambda: finished(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")

        started = system.query(
            "from conversations.models import Request\n"
            f"result = Request.objects.get(message__external_id='{asked.id}').started_at.timestamp()"
        )
        [done] = [
            call
            for call in fake_discord.calls_to(REACT)
            if call.message_id == asked.id and call.params.get("emoji") == "✅"
        ]
        typing = fake_discord.calls_to(TYPING, channel=thread)
        assert typing, "no typing while the answer was written"
        assert all(started <= call.at <= done.at for call in typing), (started, [c.at for c in typing], done.at)
        assert fake_discord.message(asked.id).reactions == {"⏳": set(), "✅": {fake_discord.bot.id}}

    def test_mentions_reach_the_model_as_names_and_namesakes_are_told_apart(self, system, fake, fake_discord):
        sam = fake_discord.add_user("sam_k", global_name="Sam")
        other_sam = fake_discord.add_user("samuel", global_name="Sam")
        moderators = fake_discord.world.moderator_role.id
        random = fake_discord.channel("random").id
        text = (
            f"ask <@{sam.id}> and <@{other_sam.id}> and <@{fake_discord.bob.id}> about <@&{moderators}> in <#{random}>"
        )
        fake.script("Sure.", tokens_per_second=80)

        asked = fake_discord.send_message(
            "alice", "general", text, mention_bot=True, mentions=[sam, other_sam, fake_discord.bob]
        )
        fake_discord.wait_for(lambda: finished(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="the answer")

        [request] = chat_requests_containing(fake, "about @Moderator")
        assert request.body["messages"][-1]["content"] == (
            "ask @Sam (sam_k) and @Sam (samuel) and @Bob about @Moderator in #random"
        )
        assert (
            fake_discord.thread_of(asked).name
            == "ask @Sam (sam_k) and @Sam (samuel) and @Bob about @Moderator in #random"
        )

    def test_commands_are_synced_only_when_they_changed(self, system, fake_discord):
        synced = system.query(
            "from bots.models import CommandSync\nresult = list(CommandSync.objects.values('guild_id', 'tree_hash'))"
        )
        assert [row["guild_id"] for row in synced] == [""]  # the first start synced the global commands
        assert {"help", "cancel", "route", "usage", "summarize", "reset", "close"} <= set(fake_discord.commands())

        system.kill("bot", signal.SIGTERM)
        start_bot(system, fake_discord)
        assert fake_discord.calls_to(SYNC) == []  # unchanged: not synced again

        # The commands this bot has now differ from those last synced (as after an upgrade).
        system.query("from bots.models import CommandSync\nresult = CommandSync.objects.update(tree_hash='0' * 64)")
        system.kill("bot", signal.SIGTERM)
        start_bot(system, fake_discord)
        [changed] = fake_discord.calls_to(SYNC)
        assert changed.status == 200
        assert (
            system.query("from bots.models import CommandSync\nresult = CommandSync.objects.get().tree_hash")
            == synced[0]["tree_hash"]
        )

        system.kill("bot", signal.SIGTERM)
        start_bot(system, fake_discord, "--sync-commands")
        assert len(fake_discord.calls_to(SYNC)) == 2  # forced
