"""/summarize, /reset and /close through the real command tree, with faked discord.py objects at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

import discord
import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from artifacts.models import Artifact
from artifacts.services import store_answer_artifacts
from bots.client import TrollamaBot
from bots.commands.general import help_text
from bots.commands.threads import NO_CONVERSATION
from bots.delivery import thread_notice
from bots.services import set_aside_id
from budgets.models import UsageEntry
from conversations.models import Attachment, Message, Request, Thread
from pipeline.services import CLOSE_NOTICE, close_thread, reset_thread
from routing.models import Route
from tests import personas
from tests.conversations.helpers import History
from tests.layer import listening
from trollama import events

CHANNEL_ID = 4242
OWNER = SimpleNamespace(id=1001, name="alice", display_name="Alice")
STRANGER = SimpleNamespace(id=3003, name="mallory", display_name="Mallory")


@dataclass
class FakeResponse:
    calls: list[tuple[str, dict]] = field(default_factory=list)

    async def defer(self, **kwargs: Any) -> None:
        self.calls.append(("defer", kwargs))

    def is_done(self) -> bool:
        return bool(self.calls)

    async def send_message(self, content: str, **kwargs: Any) -> None:
        self.calls.append(("send_message", {"content": content, **kwargs}))


@dataclass
class FakeFollowup:
    sent: list[tuple[str, bool]] = field(default_factory=list)

    async def send(self, content: str, *, ephemeral: bool = False, **kwargs: Any) -> None:
        self.sent.append((content, ephemeral))


@dataclass
class FakeInteraction:
    user: Any
    channel: Any
    guild: Any = field(default_factory=lambda: SimpleNamespace(id=1))
    channel_id: int = CHANNEL_ID
    command: Any = None
    response: FakeResponse = field(default_factory=FakeResponse)
    followup: FakeFollowup = field(default_factory=FakeFollowup)

    deleted_original: bool = False

    async def delete_original_response(self) -> None:
        """A public answer replaces the private "thinking…" placeholder (bots.commands.send_reply)."""
        self.deleted_original = True

    @property
    def texts(self) -> list[str]:
        return [text for text, _ in self.followup.sent]


def discord_thread_channel(*, moderators: tuple[int, ...] = ()) -> Any:
    channel = mock.Mock(spec=discord.Thread)
    channel.id = CHANNEL_ID
    channel.type = discord.ChannelType.public_thread
    channel.edit = mock.AsyncMock()

    def permissions_for(member: Any) -> SimpleNamespace:
        allowed = member.id in moderators
        return SimpleNamespace(manage_messages=allowed, manage_threads=allowed)

    channel.permissions_for = permissions_for
    return channel


def moderator() -> Any:
    member = mock.Mock(spec=discord.Member)
    member.id, member.name, member.display_name = 5005, "mod", "Mod"
    return member


@pytest.fixture
def bot() -> TrollamaBot:
    return TrollamaBot()


def invoke(bot: TrollamaBot, name: str, interaction: FakeInteraction) -> None:
    """Run a command as discord.py does: its checks, then its callback; a failure goes to the error handler."""
    command: Any = bot.tree.get_command(name)
    assert command is not None
    interaction.command = command

    async def run() -> None:
        try:
            for check in command.checks:
                await check(interaction)
            await command.callback(interaction)
        except discord.app_commands.AppCommandError as error:
            await bot.on_command_error(interaction, error)  # type: ignore[arg-type]

    async_to_sync(run)()


def conversation(owner_id: str = "1001") -> History:
    history = History()
    Thread.objects.filter(pk=history.thread.pk).update(external_id=str(CHANNEL_ID), platform="discord")
    history.thread.refresh_from_db()
    history.say("remember 42")
    history.answer("Noted.")
    return history


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # commands work in a thread of their own (bots.blocking)
class ResetCommandTests:
    def test_the_owner_resets_the_history_and_the_thread_stays(self, bot):
        history = conversation()
        interaction = FakeInteraction(user=OWNER, channel=discord_thread_channel())

        invoke(bot, "reset", interaction)

        assert interaction.response.calls[0][0] == "defer"
        assert interaction.texts == [
            "Alice reset this conversation: I've forgotten its 2 messages. Your next message starts afresh, here."
        ]
        assert Thread.objects.filter(pk=history.thread.pk).exists()
        assert not Message.objects.filter(thread=history.thread).exists()

    def test_the_callers_branches_set_aside_here_are_forgotten_too_and_nobody_elses(self, bot):
        history = conversation()  # a forum post, where branches are set aside as in a DM
        own = personas.thread_of(history.owner, name="own branch")
        other = personas.thread_of(personas.discord_user("bob", external_id="2002"), name="bob's branch")
        for aside in (own, other):
            Message.objects.create(thread=aside, author=aside.owner, role=Message.Role.USER, content="set aside")
            Thread.objects.filter(pk=aside.pk).update(
                platform="discord", external_id=set_aside_id(CHANNEL_ID, aside.pk)
            )
        interaction = FakeInteraction(user=OWNER, channel=discord_thread_channel())

        invoke(bot, "reset", interaction)

        assert interaction.texts[0].startswith("Alice reset this conversation: I've forgotten its 3 messages.")
        assert not Thread.objects.filter(pk=own.pk).exists()
        assert Message.objects.filter(thread=other).count() == 1
        assert Thread.objects.filter(pk=history.thread.pk).exists()

    def test_a_moderator_may_reset_someone_elses_conversation(self, bot):
        history = conversation()
        mod = moderator()

        invoke(bot, "reset", FakeInteraction(user=mod, channel=discord_thread_channel(moderators=(mod.id,))))

        assert not Message.objects.filter(thread=history.thread).exists()

    def test_anyone_else_is_denied_in_words_and_nothing_is_forgotten(self, bot):
        history = conversation()
        interaction = FakeInteraction(user=STRANGER, channel=discord_thread_channel())

        invoke(bot, "reset", interaction)

        assert interaction.response.calls == [("defer", {"ephemeral": True, "thinking": True})]  # before any query
        assert interaction.followup.sent == [
            ("Only the person who started this conversation, or a moderator, can do that.", True)
        ]
        assert Message.objects.filter(thread=history.thread).count() == 2

    def test_resetting_cancels_what_is_still_running_and_clears_the_summary(self):
        history = conversation()
        running = history.ask("still going")
        Request.objects.filter(pk=running.pk).update(status=Request.Status.GENERATING)
        Thread.objects.filter(pk=history.thread.pk).update(summary="old")

        assert reset_thread(thread=history.thread, by="test") == 3

        thread = Thread.objects.get(pk=history.thread.pk)
        assert (thread.summary, thread.summary_until) == ("", None)
        assert not Request.objects.exists()


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # commands work in a thread of their own (bots.blocking)
class CloseCommandTests:
    def test_the_owner_closes_it_the_history_is_deleted_and_the_thread_archived_and_locked(self, bot):
        history = conversation()
        channel = discord_thread_channel()
        interaction = FakeInteraction(user=OWNER, channel=channel)

        invoke(bot, "close", interaction)

        assert interaction.response.calls[0][0] == "defer"
        assert interaction.texts == [
            "Alice closed this conversation. I've deleted its history. I'm archiving and locking this thread."
        ]
        channel.edit.assert_awaited_once_with(archived=True, locked=True)
        assert not Thread.objects.filter(pk=history.thread.pk).exists()
        assert not Message.objects.exists()

    def test_anyone_else_is_denied_and_the_thread_stays_open(self, bot):
        history = conversation()
        channel = discord_thread_channel()
        interaction = FakeInteraction(user=STRANGER, channel=channel)

        invoke(bot, "close", interaction)

        assert interaction.response.calls[0][1]["ephemeral"] is True
        channel.edit.assert_not_awaited()
        assert Message.objects.filter(thread=history.thread).count() == 2

    def test_closing_deletes_the_uploaded_files_too(self):
        history = conversation()
        message = history.say("see file")
        attachment = Attachment.objects.create(
            message=message, kind=Attachment.Kind.TEXT, filename="a.txt", size=2, extracted_text="hi"
        )
        attachment.file.save("a.txt", ContentFile(b"hi"))
        name = attachment.file.name

        with self.capture_commits():
            close_thread(thread=history.thread, by="test")

        assert not default_storage.exists(name)
        assert not Attachment.objects.exists()

    @pytest.mark.parametrize("forget", [reset_thread, close_thread])
    def test_resetting_or_closing_deletes_the_stored_files_made_from_its_answers(self, forget):
        history = conversation()
        request = history.ask("save it as a.py")
        (artifact,) = store_answer_artifacts(
            request=request, content='```python title="a.py"\nprint(1)\n```\n', wanted=True
        ).artifacts
        storage, name = artifact.file.storage, artifact.file.name
        assert storage.exists(name)

        with self.capture_commits():
            forget(thread=history.thread, by="test")

        assert not storage.exists(name)
        assert not Artifact.objects.exists()

    @staticmethod
    def capture_commits():
        from django.test import TestCase

        return TestCase.captureOnCommitCallbacks(execute=True)


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # commands work in a thread of their own (bots.blocking)
class DeletedThreadTests:
    def test_deleting_the_thread_in_discord_removes_its_history(self, bot):
        history = conversation()
        payload = SimpleNamespace(thread_id=CHANNEL_ID, guild_id=1, parent_id=9)

        async_to_sync(bot.on_raw_thread_delete)(payload)

        assert not Thread.objects.filter(pk=history.thread.pk).exists()
        assert not Message.objects.exists()


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # commands work in a thread of their own (bots.blocking)
class SummarizeCommandTests:
    def test_it_defers_then_posts_the_summary_and_charges_the_caller(self, bot, fake_ollama):
        conversation()
        fake_ollama.script("Alice asked me to remember 42.", prompt_tokens=50, completion_tokens=9)
        interaction = FakeInteraction(user=OWNER, channel=discord_thread_channel())

        invoke(bot, "summarize", interaction)

        assert interaction.response.calls == [("defer", {"ephemeral": True, "thinking": True})]
        assert interaction.deleted_original  # the private placeholder gives way to the public summary
        assert interaction.followup.sent == [
            ("**Summary of this conversation**\n\nAlice asked me to remember 42.", False)
        ]
        usage = UsageEntry.objects.get(kind="summary")
        assert (usage.user.external_id, usage.total_tokens) == ("1001", 59)

    def test_anyone_in_the_conversation_may_ask_for_the_summary(self, bot, fake_ollama):
        conversation()
        fake_ollama.script("A summary.")
        interaction = FakeInteraction(user=STRANGER, channel=discord_thread_channel())

        invoke(bot, "summarize", interaction)

        assert interaction.texts == ["**Summary of this conversation**\n\nA summary."]

    def test_a_channel_without_a_conversation_says_so(self, bot, fake_ollama):
        interaction = FakeInteraction(user=OWNER, channel=discord_thread_channel())

        invoke(bot, "summarize", interaction)

        assert interaction.followup.sent == [(NO_CONVERSATION, True)]

    def test_a_summarizer_failure_is_explained(self, bot, fake_ollama, settings):
        conversation()
        fake_ollama.remove_model(settings.SUMMARIZER_MODEL)
        interaction = FakeInteraction(user=OWNER, channel=discord_thread_channel())

        invoke(bot, "summarize", interaction)

        assert interaction.texts[0].startswith("I couldn't write a summary: The summarizer model")


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # commands work in a thread of their own (bots.blocking)
def test_help_lists_the_thread_commands():
    text = help_text(Route.objects.none())

    assert "/summarize" in text and "/reset" in text and "/close" in text


def thread_events(received) -> list[dict]:
    return [event for event in received() if event["type"].startswith("thread.")]


@pytest.mark.django_db(
    transaction=True, serialized_rollback=True
)  # commands work in a thread of their own (bots.blocking)
class OperatorNoticeTests:
    """A reset or close made outside the conversation (the console) is said in its Discord channel."""

    def test_a_notified_reset_publishes_a_notice_the_bot_posts_in_the_channel(self, django_capture_on_commit_callbacks):
        history = conversation()

        with listening(events.SYSTEM_GROUP) as received:
            with django_capture_on_commit_callbacks(execute=True):
                reset_thread(thread=history.thread, by="console:ada", notify=True)
            (event,) = thread_events(received)

        notice = (
            "An operator reset this conversation: I've forgotten its 2 messages. Your next message starts afresh, here."
        )
        assert event == {
            "type": "thread.reset",
            "thread_id": history.thread.pk,
            "platform": "discord",
            "thread_external_id": str(CHANNEL_ID),
            "forgotten": 2,
            "notice": notice,
        }
        assert thread_notice(event) == (CHANNEL_ID, notice)

    def test_a_notified_close_publishes_a_notice_the_bot_posts_in_the_channel(self, django_capture_on_commit_callbacks):
        history = conversation()

        with listening(events.SYSTEM_GROUP) as received:
            with django_capture_on_commit_callbacks(execute=True):
                close_thread(thread=history.thread, by="console:ada", notify=True)
            (event,) = thread_events(received)

        assert not Thread.objects.filter(pk=history.thread.pk).exists()
        assert (event["type"], event["thread_id"], event["deleted"]) == ("thread.closed", history.thread.pk, 2)
        assert thread_notice(event) == (CHANNEL_ID, CLOSE_NOTICE)
        assert "Write to me again" in CLOSE_NOTICE

    def test_without_notify_nothing_is_announced_because_the_command_answers_in_the_channel_itself(
        self, django_capture_on_commit_callbacks
    ):
        first, second = conversation(), History()

        with listening(events.SYSTEM_GROUP) as received:
            with django_capture_on_commit_callbacks(execute=True):
                reset_thread(thread=first.thread, by="discord:1001 (Alice)")
                close_thread(thread=second.thread, by="discord:1001 (Alice)")
            assert thread_events(received) == []

    def test_the_bot_posts_reset_and_close_notices_of_discord_threads_only(self):
        reset = {"type": "thread.reset", "platform": "discord", "thread_external_id": "5550001", "notice": "Reset."}
        closed = {**reset, "type": "thread.closed", "notice": "Closed."}

        assert thread_notice(reset) == (5550001, "Reset.")
        assert thread_notice(closed) == (5550001, "Closed.")
        assert thread_notice({**reset, "platform": "local", "thread_external_id": "general-chat"}) is None
        assert thread_notice({**reset, "notice": ""}) is None
        assert thread_notice({**reset, "type": "thread.renamed"}) is None
