"""The bot's database side: submitting Discord messages, the outbox, /cancel lookups."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bots import services
from bots.models import CommandSync
from conversations.models import Message, Request, Thread
from routing.models import NextMessageRoute, Route
from routing.services import set_next_route

ALICE = services.DiscordAuthor(id=1001, username="alice", display_name="Alice")


def submit(content: str = "hello", *, channel_id: int = 555, message_id: int = 9001, author=ALICE) -> Request:
    return services.submit_discord_message(
        author=author, channel_id=channel_id, channel_title="a thread", content=content, message_id=message_id
    ).request


@pytest.mark.django_db
class SubmitDiscordMessageTests:
    def test_the_channel_becomes_the_conversation_and_the_message_keeps_its_discord_id(self):
        first = submit("one", message_id=1)
        second = submit("two", message_id=2)

        assert first.thread == second.thread
        thread = Thread.objects.get()
        assert (thread.platform, thread.external_id, thread.owner.username) == ("discord", "555", "alice")
        assert list(Message.objects.values_list("external_id", flat=True)) == ["1", "2"]

    def test_a_guild_thread_remembers_its_server_and_parent_channel(self):
        services.submit_discord_message(
            author=ALICE,
            channel_id=777,
            channel_title="t",
            content="hi",
            message_id=5,
            guild_id=42,
            parent_channel_id=9,
        )

        thread = Thread.objects.get(external_id="777")
        assert (thread.guild_id, thread.parent_channel_id) == ("42", "9")


@pytest.mark.django_db
class NextRouteTests:
    def test_a_route_chosen_in_a_channel_follows_the_mention_into_the_thread_it_opens(self):
        user = services.discord_chat_user(author=ALICE)
        parent = Thread.objects.create(platform="discord", external_id="9", owner=user)
        set_next_route(user=user, thread=parent, route=Route.objects.get(slug="math"))

        request = services.submit_discord_message(
            author=ALICE, channel_id=4242, channel_title="t", content="hi", message_id=4242, parent_channel_id=9
        ).request

        forced = NextMessageRoute.objects.get()
        assert forced.thread == request.thread and forced.route.slug == "math"

    def test_a_message_in_an_existing_thread_leaves_the_channels_choice_alone(self):
        user = services.discord_chat_user(author=ALICE)
        parent = Thread.objects.create(platform="discord", external_id="9", owner=user)
        set_next_route(user=user, thread=parent, route=Route.objects.get(slug="math"))

        services.submit_discord_message(
            author=ALICE, channel_id=4242, channel_title="t", content="hi", message_id=77, parent_channel_id=9
        )

        assert NextMessageRoute.objects.get().thread == parent


@pytest.mark.django_db
class CommandSyncTests:
    def test_commands_count_as_changed_until_their_hash_is_recorded_for_that_scope(self):
        scope = {"application_id": 5, "guild_id": None}
        assert services.commands_changed(**scope, tree_hash="a") is True

        services.record_command_sync(**scope, tree_hash="a")

        assert services.commands_changed(**scope, tree_hash="a") is False
        assert services.commands_changed(**scope, tree_hash="b") is True
        assert services.commands_changed(application_id=5, guild_id=77, tree_hash="a") is True
        services.record_command_sync(**scope, tree_hash="b")
        assert CommandSync.objects.get().tree_hash == "b"


@pytest.mark.django_db
class OutboxTests:
    def test_finished_undelivered_requests_are_listed_once_claimed(self):
        done = submit("a", message_id=1)
        Request.objects.filter(pk=done.pk).update(status=Request.Status.DONE, finished_at=timezone.now())
        running = submit("b", message_id=2)
        Request.objects.filter(pk=running.pk).update(status=Request.Status.GENERATING)
        old = submit("c", message_id=3)
        Request.objects.filter(pk=old.pk).update(
            status=Request.Status.DONE, finished_at=timezone.now() - timedelta(days=3)
        )

        assert [r.pk for r in services.undelivered_requests()] == [done.pk]
        assert services.claim_undelivered(request_id=done.pk) is True
        assert services.claim_undelivered(request_id=done.pk) is False  # never twice
        assert services.undelivered_requests() == []


@pytest.mark.django_db
class ActiveRequestTests:
    def test_it_finds_the_callers_unfinished_request_in_the_channel(self):
        mine = submit("mine", message_id=1)
        bob = services.DiscordAuthor(id=2002, username="bob", display_name="Bob")
        theirs = submit("theirs", message_id=2, author=bob)

        assert services.active_request_in_channel(channel_id=555, user_id=1001) == mine
        assert services.active_request_in_channel(channel_id=555, user_id=None) == theirs  # a moderator: the newest
        assert services.active_request_in_channel(channel_id=556, user_id=1001) is None


def answer(request: Request, content: str, *, shown_in: list[int]) -> Message:
    """Store ``content`` as the finished answer to ``request``, shown in the bot's Discord messages ``shown_in``."""
    reply = Message.objects.create(thread=request.thread, role=Message.Role.ASSISTANT, content=content)
    Request.objects.filter(pk=request.pk).update(
        reply=reply, status=Request.Status.DONE, finished_at=timezone.now(), discord_message_ids=shown_in
    )
    return reply


@pytest.mark.django_db
class ReplyChainTests:
    def test_a_reply_to_the_latest_answer_is_a_follow_up_and_to_an_earlier_one_a_branch(self):
        first = submit("one", message_id=1)
        first_reply = answer(first, "answer one", shown_in=[101, 102])
        second = submit("two", message_id=2)
        answer(second, "answer two", shown_in=[201])

        assert services.branch_source(channel_id=555, replied_id=201) is None
        assert services.branch_source(channel_id=555, replied_id=2) is None
        assert services.branch_source(channel_id=555, replied_id=102) == first_reply.pk
        assert services.branch_source(channel_id=555, replied_id=1) == first.message.pk
        assert services.branch_source(channel_id=555, replied_id=999) is None  # not one of ours

    def test_a_bot_message_is_only_looked_for_among_the_answers_shown_in_that_channel(self):
        reply = answer(submit("one", message_id=1), "answer one", shown_in=[101])

        assert services.stored_message(channel_id=556, message_id=101) is None
        assert services.stored_message(channel_id=555, message_id=101) == reply

    def test_a_branch_in_a_dm_sets_the_conversation_there_aside_and_takes_its_place(self):
        first = submit("one", message_id=1)
        first_reply = answer(first, "answer one", shown_in=[101])
        answer(submit("two", message_id=2), "answer two", shown_in=[201])
        old = first.thread

        branched = services.submit_discord_message(
            author=ALICE,
            channel_id=555,
            channel_title="DM",
            content="three",
            message_id=3,
            branch_from=first_reply.pk,
        ).request

        old.refresh_from_db()
        assert old.external_id == f"555@{old.pk}"
        assert branched.thread.external_id == "555" and branched.thread.branched_from == first_reply
        assert list(branched.thread.messages.values_list("content", flat=True)) == ["one", "answer one", "three"]
        follow_up = submit("four", message_id=4)
        assert follow_up.thread == branched.thread
        # The answers of the conversation set aside are still found, and never taken over as a channel.
        assert services.stored_message(channel_id=555, message_id=201).content == "answer two"
        assert services.branch_source(channel_id=555, replied_id=201) is not None
        assert old.pk not in {r.thread_id for r in services.requests_to_take_over()}

    def test_a_dm_with_an_answer_in_progress_is_not_branched(self):
        first = submit("one", message_id=1)
        first_reply = answer(first, "answer one", shown_in=[101])
        submit("two", message_id=2)  # still queued

        with pytest.raises(services.Refusal) as caught:
            services.submit_discord_message(
                author=ALICE, channel_id=555, channel_title="DM", content="x", message_id=3, branch_from=first_reply.pk
            )

        assert caught.value.message == services.BRANCH_BUSY
        assert Thread.objects.get().external_id == "555"
        assert not Message.objects.filter(content="x").exists()
