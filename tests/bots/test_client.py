"""The bot's handlers with discord.py faked at the edge and everything else real.

Messages go through the real intake, database and worker (against the fake
Ollama server); events come back through this process's channel layer, as
they would through web's websocket, into the real renderer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import discord
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from bots.client import DONE, FAILED, WORKING, TrollamaBot
from bots.commands.checks import Denied
from bots.delivery import CANCELLED_TEXT
from bots.targets import ChannelTarget
from budgets.models import RoleTier, Tier, UserRoleTier
from budgets.usage import record_usage
from conversations.models import ChatUser, Message, Request, Thread
from ops.maintenance import set_maintenance
from pipeline.listeners import LayerListener
from pipeline.processing import process_request
from pipeline.services import CLOSE_NOTICE, close_thread, reset_thread
from tests.bots.fakes import FakeChannel, FakeGuild, FakeInteraction, FakeMessage, FakeRole, FakeUser

# Long enough for the renderer's paced edit (DISCORD_EDIT_INTERVAL is 0.2 s here) on a busy machine.
RENDER_WAIT = 2.0


@dataclass
class World:
    bot: TrollamaBot
    me: FakeUser
    guild: FakeGuild
    channel: FakeChannel
    alice: FakeUser
    bob: FakeUser
    moderator: FakeUser
    listener: LayerListener
    channels: dict[int, FakeChannel] = field(default_factory=dict)

    def say(self, author: FakeUser, content: str, *, channel: FakeChannel | None = None, mention: bool = False):
        channel = channel or self.channel
        mentions = [self.me] if mention else []
        text = f"{self.me.mention} {content}" if mention else content
        return FakeMessage(author, text, channel, mentions=mentions, threads_owner_id=self.me.id)

    async def post(self, message: FakeMessage) -> None:
        await self.bot.on_message(message)  # type: ignore[arg-type]  # a fake at the edge
        for thread in message.threads:
            self.channels[thread.id] = thread

    async def run_worker(self) -> Request:
        """Answer the newest request the way a worker would, then follow its events to the end."""
        request = await Request.objects.order_by("-pk").afirst()
        assert request is not None

        def work() -> None:
            try:
                process_request(request_id=request.pk)
            finally:
                connections.close_all()

        # Through sync_to_async, not a bare thread: the worker's own async_to_sync then runs its
        # stream on this loop, the one InMemoryChannelLayer (not thread-safe) delivers events on.
        await asyncio.gather(sync_to_async(work, thread_sensitive=False)(), self.deliver_until_finished(request.pk))
        await request.arefresh_from_db()
        return request

    async def deliver_until_shown(self, channel: FakeChannel, condition: Callable[[FakeChannel], bool]) -> None:
        """Hand events to the bot until ``channel`` shows what ``condition`` looks for.

        The renderer writes statuses from a task of its own (edits are paced), so
        after each event this waits a moment for the channel to change. A receive
        is cancelled only on failure: channels-redis leaks a lock when one is, and
        a later test receiving on another event loop then finds it taken.
        """

        async def follow() -> None:
            async for event in self.listener:
                await self.bot.handle_event(event)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(channel.wait_until(condition), timeout=RENDER_WAIT)
                    return

        await asyncio.wait_for(follow(), timeout=30)

    async def deliver_until_finished(self, request_id: int) -> None:
        async def follow() -> None:
            async for event in self.listener:
                outcome = await self.bot.handle_event(event)
                if outcome is not None and outcome.request_id == request_id:
                    return

        await asyncio.wait_for(follow(), timeout=30)


@pytest.fixture
async def world(settings):
    settings.DISCORD_EDIT_INTERVAL = 0.2
    bot = TrollamaBot()
    me = FakeUser("trollama", bot=True)
    bot._connection.user = me  # the gateway would set it on login
    guild = FakeGuild()
    channel = FakeChannel(type=discord.ChannelType.text, guild=guild)
    listener = await LayerListener.connect()
    world = World(
        bot=bot,
        me=me,
        guild=guild,
        channel=channel,
        alice=FakeUser("alice", guild=guild),
        bob=FakeUser("bob", guild=guild),
        moderator=FakeUser("mod", guild=guild, moderator=True),
        listener=listener,
    )

    async def get_channel(channel_id: int) -> FakeChannel:
        return channel if channel_id == channel.id else world.channels[channel_id]

    bot.get_channel = lambda channel_id: channel if channel_id == channel.id else world.channels.get(channel_id)
    bot.fetch_channel = get_channel
    yield world
    await bot.delivery.close()
    await listener.close()


db = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@db
class IntakeTests:
    async def test_a_mention_in_a_channel_answers_in_a_new_thread_named_from_the_message(self, world, fake_ollama):
        fake_ollama.script("Paris.\n\n```python\nprint('  ok')\n```\n")
        message = world.say(world.alice, "What is the capital of France?", mention=True)

        await world.post(message)
        assert message.reactions == [WORKING]
        request = await world.run_worker()

        [thread] = message.threads
        assert thread.name == "What is the capital of France?"
        assert thread.shown == ["Paris.\n\n```python\nprint('  ok')\n```\n"]
        assert world.channel.sent == []  # nothing in the channel itself
        assert request.status == Request.Status.DONE and request.delivered_at is not None
        stored = await Thread.objects.aget(pk=request.thread_id)
        assert stored.external_id == str(thread.id) and stored.parent_channel_id == str(world.channel.id)
        assert message.reactions == [DONE]  # ⏳ replaced by ✅
        assert thread.typing_sessions == 1

    async def test_the_hourglass_comes_off_after_its_limit_if_the_answer_never_ends(self, world, monkeypatch):
        monkeypatch.setattr("bots.client.WORKING_LIMIT", 0.05)
        message = world.say(world.alice, "never answered", mention=True)

        await world.post(message)
        assert message.reactions == [WORKING]

        # The only task the bot has spawned here: the one that takes ⏳ off after the limit.
        await asyncio.wait_for(asyncio.gather(*world.bot._background), timeout=5)
        assert message.reactions == []
        [thread] = message.threads
        assert thread.typing_sessions == 0  # queued all along: never "typing"

    async def test_mentions_of_other_people_reach_the_model_as_names(self, world, fake_ollama):
        message = world.say(world.alice, f"ask {world.bob.mention} about owls", mention=True)
        message.mentions.append(world.bob)

        await world.post(message)

        request = await Request.objects.select_related("message").aget()
        assert request.message.content == "ask @Bob about owls"
        assert message.threads[0].name == "ask @Bob about owls"

    async def test_in_the_bots_thread_a_follow_up_needs_no_mention(self, world, fake_ollama):
        fake_ollama.script("First answer.")
        first = world.say(world.alice, "Tell me about owls", mention=True)
        await world.post(first)
        await world.run_worker()
        [thread] = first.threads

        fake_ollama.script("Second answer.")
        await world.post(world.say(world.bob, "and their eyes?", channel=thread))
        request = await world.run_worker()

        assert thread.shown == ["First answer.", "Second answer."]
        assert await Message.objects.filter(thread_id=request.thread_id, role="user").acount() == 2
        last_call = fake_ollama.chats[-1].body["messages"]
        assert "Tell me about owls" in str(last_call) and "First answer." in str(last_call)

    async def test_a_mention_in_someone_elses_thread_answers_there(self, world, fake_ollama):
        fake_ollama.script("Here.")
        theirs = FakeChannel(type=discord.ChannelType.public_thread, guild=world.guild, owner_id=world.bob.id)
        message = world.say(world.alice, "help", channel=theirs, mention=True)

        await world.post(message)
        await world.run_worker()

        assert message.threads == [] and theirs.shown == ["Here."]

    async def test_without_a_mention_other_threads_are_left_alone(self, world):
        theirs = FakeChannel(type=discord.ChannelType.public_thread, guild=world.guild, owner_id=world.bob.id)

        await world.post(world.say(world.alice, "just chatting", channel=theirs))

        assert await Request.objects.acount() == 0 and theirs.sent == []

    async def test_a_dm_is_its_own_conversation(self, world, fake_ollama):
        fake_ollama.script("Hi in private.")
        dm = FakeChannel(type=discord.ChannelType.private, name="")
        message = world.say(world.alice, "hello", channel=dm)

        await world.post(message)
        request = await world.run_worker()

        assert dm.shown == ["Hi in private."] and message.threads == []
        thread = await Thread.objects.aget(pk=request.thread_id)
        assert thread.external_id == str(dm.id) and thread.guild_id == ""

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda w: w.say(FakeUser("otherbot", bot=True), "hi", mention=True), id="another bot"),
            pytest.param(lambda w: FakeMessage(w.me, "echo", w.channel, mentions=[w.me]), id="itself"),
            pytest.param(lambda w: w.say(w.alice, "@everyone meeting now"), id="@everyone"),
            pytest.param(
                lambda w: FakeMessage(w.alice, "", w.channel, type=discord.MessageType.pins_add), id="system message"
            ),
        ],
    )
    async def test_it_ignores_bots_itself_everyone_pings_and_system_messages(self, world, make):
        message = make(world)

        await world.post(message)

        assert await Request.objects.acount() == 0
        assert message.replies == [] and message.reactions == [] and world.channel.sent == []

    async def test_the_authors_discord_roles_decide_their_tier(self, world):
        admin_tier = await Tier.objects.aget(slug="admin")
        await RoleTier.objects.acreate(role_id="4242", tier=admin_tier)
        world.alice.roles = [FakeRole(7), FakeRole(4242)]

        await world.post(world.say(world.alice, "hello", mention=True))

        role_tier = await UserRoleTier.objects.select_related("tier").aget(user__external_id=str(world.alice.id))
        assert role_tier.tier == admin_tier

    async def test_a_refusal_is_a_reply_in_words(self, world, settings):
        settings.MAX_MESSAGE_CHARS = 10
        message = world.say(world.alice, "this message is far too long", mention=True)

        await world.post(message)

        [reply] = message.replies
        assert "the limit is 10" in reply and "send the text as a file" in reply
        assert await Request.objects.acount() == 0

    async def test_a_failure_is_shown_with_its_reason_and_a_cross(self, world, fake_ollama):
        fake_ollama.remove_model("gpt-oss:20b")
        message = world.say(world.alice, "hello", mention=True)

        await world.post(message)
        request = await world.run_worker()

        [thread] = message.threads
        assert request.status == Request.Status.FAILED
        assert thread.shown == [FAILED + " " + request.error]
        assert message.reactions == [FAILED]


@db
class CancelTests:
    async def start(self, world, fake_ollama) -> tuple[FakeMessage, Request]:
        fake_ollama.script("word " * 400, tokens_per_second=40)
        message = world.say(world.alice, "write a lot", mention=True)
        await world.post(message)
        request = await Request.objects.aget()
        return message, request

    async def run_and_cancel(self, world, request, cancel) -> Request:
        """Run the worker, and call ``cancel()`` once the answer shows in Discord."""

        async def cancel_when_visible() -> None:
            [thread] = world.channels.values()
            await thread.wait_until(lambda channel: bool(channel.sent) and "word" in channel.sent[0].content)
            await cancel(thread)

        await asyncio.gather(world.run_worker(), cancel_when_visible())
        await request.arefresh_from_db()
        return request

    async def test_saying_cancel_in_the_thread_stops_the_answer(self, world, fake_ollama):
        _, request = await self.start(world, fake_ollama)

        async def cancel(thread):
            await world.post(world.say(world.alice, "cancel", channel=thread))

        request = await self.run_and_cancel(world, request, cancel)

        assert request.status == Request.Status.CANCELLED
        [thread] = world.channels.values()
        assert thread.shown[-1].endswith(CANCELLED_TEXT)
        assert await sync_to_async(fake_ollama.wait_for_hangup)() is not None

    async def test_a_cross_reaction_by_the_requester_on_the_answer_stops_it(self, world, fake_ollama):
        _, request = await self.start(world, fake_ollama)

        async def cancel(thread):
            answer = thread.sent[0]
            await world.bot.on_raw_reaction_add(reaction(answer.id, world.bob))  # not theirs: ignored
            await world.bot.on_raw_reaction_add(reaction(answer.id, world.alice))

        request = await self.run_and_cancel(world, request, cancel)

        assert request.status == Request.Status.CANCELLED
        assert world.channels.popitem()[1].shown[-1].endswith(CANCELLED_TEXT)

    async def test_a_cross_reaction_by_someone_else_changes_nothing(self, world, fake_ollama):
        fake_ollama.script("short answer", tokens_per_second=20)
        message = world.say(world.alice, "hi", mention=True)
        await world.post(message)
        request = await Request.objects.aget()

        async def react_as_bob() -> None:
            [thread] = world.channels.values()
            await thread.wait_until(lambda channel: bool(channel.sent))
            await world.bot.on_raw_reaction_add(reaction(thread.sent[0].id, world.bob))

        await asyncio.gather(world.run_worker(), react_as_bob())

        await request.arefresh_from_db()
        assert request.status == Request.Status.DONE

    async def test_deleting_the_question_stops_the_answer(self, world, fake_ollama):
        message, request = await self.start(world, fake_ollama)

        async def cancel(thread):
            await world.bot.on_raw_message_delete(deleted(message.id))

        request = await self.run_and_cancel(world, request, cancel)

        assert request.status == Request.Status.CANCELLED

    async def test_slash_cancel_stops_the_callers_request(self, world, fake_ollama):
        _, request = await self.start(world, fake_ollama)
        log: list[str] = []

        async def cancel(thread):
            interaction = FakeInteraction(world.alice, thread)
            await world.bot.tree.get_command("cancel").callback(interaction)
            log.extend(interaction.log)

        request = await self.run_and_cancel(world, request, cancel)

        assert request.status == Request.Status.CANCELLED
        assert log == ["defer(ephemeral=True)", "followup(ephemeral=True): Cancelling your request."]


@db
class CommandTests:
    async def invoke(self, world, name: str, user: FakeUser, channel: FakeChannel) -> FakeInteraction:
        interaction = FakeInteraction(user, channel)
        await world.bot.tree.get_command(name).callback(interaction)
        return interaction

    async def test_help_is_acknowledged_first_and_lists_commands_and_routes(self, world):
        interaction = await self.invoke(world, "help", world.alice, world.channel)

        assert interaction.log[0] == "defer(ephemeral=True)"
        [text] = interaction.replies
        assert "/cancel" in text and "`general`: General chat (gpt-oss:20b)" in text

    async def test_cancel_with_nothing_running_says_so(self, world):
        interaction = await self.invoke(world, "cancel", world.alice, world.channel)

        assert interaction.log == [
            "defer(ephemeral=True)",
            "followup(ephemeral=True): Nothing of yours is queued or running in this channel.",
        ]

    async def test_cancel_cannot_touch_someone_elses_request_but_a_moderator_can(self, world):
        message = world.say(world.alice, "queued question", mention=True)
        await world.post(message)
        [thread] = message.threads

        denied = await self.invoke(world, "cancel", world.bob, thread)
        assert denied.replies == ["Nothing of yours is queued or running in this channel."]
        assert (await Request.objects.aget()).status == Request.Status.QUEUED

        allowed = await self.invoke(world, "cancel", world.moderator, thread)
        assert allowed.replies == ["Cancelling Alice (Discord)'s request."]
        assert (await Request.objects.aget()).status == Request.Status.CANCELLED

    async def test_reset_defers_privately_then_lets_only_the_owner_or_a_moderator_reset(self, world):
        message = world.say(world.alice, "question", mention=True)
        await world.post(message)
        [thread] = message.threads

        denied = await self.invoke(world, "reset", world.bob, thread)
        assert denied.log == [
            "defer(ephemeral=True)",
            "followup(ephemeral=True): Only the person who started this conversation, or a moderator, can do that.",
        ]
        assert await Message.objects.filter(thread__external_id=str(thread.id)).acount() == 1

        nowhere = await self.invoke(world, "reset", world.bob, world.channel)
        assert nowhere.log[0] == "defer(ephemeral=True)"
        assert nowhere.replies == ["There is no conversation with me in this channel yet. Mention me to start one."]

        allowed = await self.invoke(world, "reset", world.moderator, thread)
        assert allowed.log == [
            "defer(ephemeral=True)",
            "delete_original_response()",
            "followup(ephemeral=False): Mod reset this conversation: I've forgotten its 1 message. "
            "Your next message starts afresh, here.",
        ]
        assert await Message.objects.filter(thread__external_id=str(thread.id)).acount() == 0

    async def test_summarize_with_no_conversation_answers_privately(self, world):
        interaction = await self.invoke(world, "summarize", world.alice, world.channel)

        assert interaction.log == [
            "defer(ephemeral=True)",
            "followup(ephemeral=True): There is no conversation with me in this channel yet. Mention me to start one.",
        ]

    async def test_a_summary_is_posted_for_the_channel(self, world, fake_ollama):
        message = world.say(world.alice, "tell me about otters", mention=True)
        await world.post(message)
        [thread] = message.threads
        fake_ollama.script("They hold hands.")
        await world.run_worker()
        fake_ollama.script("Alice asked about otters.", match="Write the updated summary")

        interaction = await self.invoke(world, "summarize", world.bob, thread)

        assert interaction.log == [
            "defer(ephemeral=True)",
            "delete_original_response()",
            "followup(ephemeral=False): **Summary of this conversation**\n\nAlice asked about otters.",
        ]

    async def test_a_denied_or_failed_command_is_still_answered(self, world):
        fresh = FakeInteraction(world.bob, world.channel)
        await world.bot.on_command_error(fresh, Denied("Only the owner can do that."))
        assert fresh.log == ["send_message(ephemeral=True): Only the owner can do that."]

        deferred = FakeInteraction(world.bob, world.channel)
        await deferred.response.defer(ephemeral=True)
        await world.bot.on_command_error(deferred, discord.app_commands.AppCommandError("boom"))
        assert deferred.log[-1].startswith("followup(ephemeral=True): Something went wrong running that command.")


@db
class OutboxTests:
    async def answered_while_away(self, world, fake_ollama) -> tuple[FakeChannel, Request]:
        """A question asked, then the bot dies and a worker answers it with nobody left to render the events."""
        fake_ollama.script("Answer written while the bot was down.")
        message = world.say(world.alice, "question", mention=True)
        await world.post(message)
        [thread] = message.threads
        request = await Request.objects.aget()
        await world.bot.delivery.close()
        await sync_to_async(process_request)(request_id=request.pk)
        return thread, request

    def restarted(self, world) -> TrollamaBot:
        bot = TrollamaBot()
        bot._connection.user = world.me
        # The restarted bot looks channels up in the same fake world as the first one.
        bot.get_channel = world.bot.get_channel  # type: ignore[method-assign]
        bot.fetch_channel = world.bot.fetch_channel  # type: ignore[method-assign]
        return bot

    async def test_answers_finished_while_the_bot_was_away_are_delivered_once(self, world, fake_ollama):
        thread, request = await self.answered_while_away(world, fake_ollama)

        restarted = self.restarted(world)
        await restarted.reconcile()
        await restarted.reconcile()  # a reconnect: nothing more
        await asyncio.wait_for(thread.wait_until(lambda shown: len(shown.shown) == 1), timeout=RENDER_WAIT)

        assert thread.shown == ["Answer written while the bot was down."]
        await request.arefresh_from_db()
        assert request.delivered_at is not None

    async def test_an_outbox_answer_brings_its_stored_notices_as_a_footer(self, world, fake_ollama):
        thread, request = await self.answered_while_away(world, fake_ollama)
        await Request.objects.filter(pk=request.pk).aupdate(notices=[{"code": "turns_dropped", "count": 3}])

        await self.restarted(world).reconcile()
        await asyncio.wait_for(thread.wait_until(lambda shown: len(shown.shown) == 1), timeout=RENDER_WAIT)

        assert thread.shown == [
            "Answer written while the bot was down.\n\n"
            "-# 🧵 The model did not see the 3 oldest messages of this thread: they no longer fit its context window."
        ]


def reaction(message_id: int, user: FakeUser) -> discord.RawReactionActionEvent:
    data = {"message_id": message_id, "channel_id": 1, "user_id": user.id, "type": 0, "burst": False}
    return discord.RawReactionActionEvent(data, discord.PartialEmoji(name=FAILED), "REACTION_ADD")  # type: ignore[arg-type]  # the gateway payload, built by hand


def deleted(message_id: int) -> discord.RawMessageDeleteEvent:
    return discord.RawMessageDeleteEvent({"id": message_id, "channel_id": 1})


@db
class OperatorNoticeTests:
    """A reset or close made from the console is said in the conversation's Discord thread."""

    async def conversation(self, world, fake_ollama) -> tuple[FakeChannel, Thread]:
        fake_ollama.script("Noted.")
        message = world.say(world.alice, "my locker is 42", mention=True)
        await world.post(message)
        request = await world.run_worker()
        [channel] = message.threads
        return channel, await Thread.objects.aget(pk=request.thread_id)

    async def test_a_reset_from_the_console_is_announced_in_the_thread(self, world, fake_ollama):
        channel, thread = await self.conversation(world, fake_ollama)

        await sync_to_async(reset_thread)(thread=thread, by="console:ada", notify=True)
        await world.deliver_until_shown(channel, lambda shown: len(shown.shown) == 2)

        assert channel.shown[-1].startswith("An operator reset this conversation: I've forgotten its 2 messages.")
        assert not channel.locked

    async def test_a_close_from_the_console_is_announced_and_the_thread_archived_and_locked(self, world, fake_ollama):
        channel, thread = await self.conversation(world, fake_ollama)

        await sync_to_async(close_thread)(thread=thread, by="console:ada", notify=True)
        await world.deliver_until_shown(channel, lambda shown: shown.locked)

        assert channel.shown[-1] == CLOSE_NOTICE
        assert channel.archived and channel.locked

    async def test_without_manage_threads_the_close_is_still_announced(self, world, fake_ollama, caplog):
        channel, thread = await self.conversation(world, fake_ollama)
        channel.may_manage_threads = False

        await sync_to_async(close_thread)(thread=thread, by="console:ada", notify=True)
        await world.deliver_until_shown(channel, lambda shown: shown.edits == 1)

        assert channel.shown[-1] == CLOSE_NOTICE and not channel.locked
        assert "lacks Manage Threads" in caplog.text

    async def test_a_notice_waits_for_the_channels_write_budget_the_answers_there_share(self, world):
        budget = world.bot.delivery.budget_of(ChannelTarget(world.channel))
        for _ in range(budget.window_writes):  # the answers in this channel spent its sends
            budget.done(budget.take("send"))

        posting = asyncio.create_task(world.bot.post_notice(world.channel.id, "An operator reset this conversation."))
        await asyncio.sleep(0.2)  # far inside the 5 s window: the notice must still be waiting
        assert world.channel.sent == [] and not posting.done()
        posting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await posting

        budget._slots["send"].clear()  # the window has passed
        assert await world.bot.post_notice(world.channel.id, "Closed.") is world.channel
        assert [sent.content for sent in world.channel.sent] == ["Closed."]
        assert len(budget._slots["send"]) == 1  # counted, so the answers' next sends wait for it


@db
class RefusalTests:
    """Every intake refusal reaches the person as a reply in words, never only a reaction."""

    async def refused(self, world, message: FakeMessage) -> str:
        await world.post(message)
        assert message.reactions == []
        assert message.threads == []  # checked before a thread is started: none is left empty
        [reply] = message.replies
        return reply

    async def test_a_banned_user_is_told_why(self, world):
        await world.post(world.say(world.alice, "first", mention=True))
        await ChatUser.objects.filter(external_id=str(world.alice.id)).aupdate(banned=True, ban_reason="spamming")

        reply = await self.refused(world, world.say(world.alice, "again", mention=True))

        assert "spamming" in reply

    async def test_the_rate_limit_says_when_to_try_again(self, world, settings):
        settings.RATE_LIMIT_PER_MINUTE = 1
        await world.post(world.say(world.alice, "one", mention=True))

        reply = await self.refused(world, world.say(world.alice, "two", mention=True))

        assert "second" in reply

    async def test_a_spent_budget_says_how_much_was_used_and_when_it_resets(self, world, settings):
        settings.FREE_TIER_WEEKLY_BUDGET = 100
        await world.post(world.say(world.alice, "one", mention=True))
        user = await ChatUser.objects.aget(external_id=str(world.alice.id))
        await sync_to_async(record_usage)(user=user, kind="answer", model="m", prompt_tokens=60, completion_tokens=40)

        reply = await self.refused(world, world.say(world.alice, "two", mention=True))

        assert "100 of 100 tokens" in reply and "It resets Monday" in reply and "00:00 UTC (in " in reply

    async def test_a_full_queue_says_to_try_again_later(self, world, settings):
        settings.MAX_QUEUE_SIZE = 1
        await world.post(world.say(world.bob, "first", mention=True))

        reply = await self.refused(world, world.say(world.alice, "second", mention=True))

        assert "at capacity" in reply and "try again" in reply

    async def test_soft_maintenance_holds_the_message_and_answers_it_when_maintenance_ends(self, world, fake_ollama):
        await sync_to_async(set_maintenance)(mode="soft", message="Swapping models.", changed_by="ops")
        fake_ollama.script("Back, and here is your answer.")
        message = world.say(world.alice, "are you there?", mention=True)

        await world.post(message)
        [thread] = message.threads
        await world.deliver_until_shown(thread, lambda shown: any("Held: Swapping models." in t for t in shown.shown))
        assert message.replies == [] and await Request.objects.filter(status=Request.Status.HELD).aexists()

        await sync_to_async(set_maintenance)(mode="off", changed_by="ops")
        request = await world.run_worker()

        assert request.status == Request.Status.DONE
        assert thread.shown == ["Back, and here is your answer."]
        assert message.reactions == [DONE]

    async def test_hard_maintenance_refuses_with_the_operators_message(self, world):
        await sync_to_async(set_maintenance)(mode="hard", message="Upgrading the GPU, back at 18:00.", changed_by="ops")

        reply = await self.refused(world, world.say(world.alice, "hello", mention=True))

        assert "Upgrading the GPU, back at 18:00." in reply
        assert await Request.objects.acount() == 0
