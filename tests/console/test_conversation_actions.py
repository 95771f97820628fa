"""Resetting and closing a conversation from its console page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from bots.delivery import thread_notice
from conversations.models import Message, Request, Thread
from pipeline.services import submit_request
from tests import personas
from tests.layer import listening
from trollama import events

CHANNEL_ID = 5550001
ACTIONS = ["console:conversation-reset", "console:conversation-close"]


def discord_conversation() -> tuple[Thread, Request]:
    """A Discord thread with an answered question and a second one still waiting."""
    alice = personas.discord_user()
    thread = Thread.objects.create(platform="discord", external_id=str(CHANNEL_ID), title="bread", owner=alice)
    submit_request(user=alice, thread=thread, content="how do I bake bread?", enqueue=False)
    Message.objects.create(thread=thread, role=Message.Role.ASSISTANT, content="Knead it.")
    waiting = submit_request(user=alice, thread=thread, content="and rye?", enqueue=False).request
    return thread, waiting


def url(name: str, thread_id: int) -> str:
    return reverse(name, kwargs={"thread_id": thread_id})


def notes(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def thread_events(received) -> list[dict]:
    return [event for event in received() if event["type"].startswith("thread.")]


@pytest.mark.django_db
class ConversationPageActionsTests:
    def test_the_page_has_reset_and_close_forms_with_csrf_tokens_and_says_what_they_do(self, staff_client):
        thread, _ = discord_conversation()

        html = staff_client.get(url("console:conversation", thread.pk)).content.decode()

        assert f'action="{url("console:conversation-reset", thread.pk)}"' in html
        assert f'action="{url("console:conversation-close", thread.pk)}"' in html
        assert html.count("csrfmiddlewaretoken") >= 3  # both forms and the logout button
        assert "Deletes its 3 messages" in html
        assert "the bot posts a notice in its Discord channel" in html


def local_conversation() -> Thread:
    """A terminal (``manage.py chat``) thread with one waiting request."""
    bob = personas.local_user()
    thread = personas.thread_of(bob, "notes")
    submit_request(user=bob, thread=thread, content="hi", enqueue=False)
    return thread


@pytest.mark.django_db
class ResetTests:
    def test_it_forgets_the_messages_keeps_the_thread_cancels_what_waits_and_says_so(
        self, staff_client, django_capture_on_commit_callbacks
    ):
        thread, waiting = discord_conversation()

        with listening(events.SYSTEM_GROUP) as received:
            with django_capture_on_commit_callbacks(execute=True):
                response = staff_client.post(url("console:conversation-reset", thread.pk), follow=True)
            (event,) = thread_events(received)

        assert response.redirect_chain == [(url("console:conversation", thread.pk), 302)]
        assert notes(response) == [
            "Forgot 3 messages of “bread” and cancelled anything still running in it. The thread stays; its next "
            "message starts afresh. The bot posts a notice about it in the Discord channel."
        ]
        assert "Forgot 3 messages" in response.content.decode()
        assert Thread.objects.filter(pk=thread.pk).exists()
        assert not Message.objects.filter(thread=thread).exists()
        assert not Request.objects.filter(pk=waiting.pk).exists()  # cancelled, then deleted with its message
        assert event["type"] == "thread.reset" and event["forgotten"] == 3
        assert thread_notice(event) == (
            CHANNEL_ID,
            "An operator reset this conversation: I've forgotten its 3 messages. Your next message starts afresh, "
            "here.",
        )

    def test_the_cancelled_request_is_announced_to_its_listeners(
        self, staff_client, django_capture_on_commit_callbacks
    ):
        thread, waiting = discord_conversation()

        with listening(events.request_group(waiting.pk)) as received:
            with django_capture_on_commit_callbacks(execute=True):
                staff_client.post(url("console:conversation-reset", thread.pk))
            kinds = [event["type"] for event in received()]

        assert kinds == ["request.cancelled"]

    def test_a_local_thread_is_reset_without_mention_of_discord(self, staff_client):
        thread = local_conversation()

        response = staff_client.post(url("console:conversation-reset", thread.pk), follow=True)

        (note,) = notes(response)
        assert note.startswith("Forgot 1 message of “notes”") and "Discord" not in note
        assert Thread.objects.filter(pk=thread.pk).exists()


@pytest.mark.django_db
class CloseTests:
    def test_it_deletes_the_thread_returns_to_the_list_and_the_channel_is_told(
        self, staff_client, django_capture_on_commit_callbacks
    ):
        thread, _ = discord_conversation()

        with listening(events.SYSTEM_GROUP) as received:
            with django_capture_on_commit_callbacks(execute=True):
                response = staff_client.post(url("console:conversation-close", thread.pk), follow=True)
            (event,) = thread_events(received)

        assert response.redirect_chain == [(reverse("console:conversations"), 302)]
        assert notes(response) == [
            "Closed “bread”: deleted it with its 3 messages and cancelled anything still running in it. A new message "
            "in its channel starts a new conversation. The bot posts a notice about it in the Discord channel, and "
            "archives and locks the channel if it is a thread."
        ]
        assert not Thread.objects.filter(pk=thread.pk).exists()
        assert not Message.objects.exists() and not Request.objects.exists()
        assert event["type"] == "thread.closed" and event["thread_id"] == thread.pk
        assert thread_notice(event) == (
            CHANNEL_ID,
            "An operator closed this conversation and deleted its history. Write to me again any time to start a "
            "new one.",
        )

    def test_a_local_thread_is_closed_with_how_to_start_anew_from_the_terminal(self, staff_client):
        thread = local_conversation()

        response = staff_client.post(url("console:conversation-close", thread.pk), follow=True)

        (note,) = notes(response)
        assert note.endswith("`manage.py chat` without --thread starts a new conversation.")
        assert "Discord" not in note
        assert not Thread.objects.filter(pk=thread.pk).exists()


@pytest.mark.django_db
class ActionAccessTests:
    @pytest.mark.parametrize("name", ACTIONS)
    def test_an_anonymous_visitor_is_sent_to_the_login_page_and_nothing_changes(self, name):
        thread, _ = discord_conversation()

        response = Client().post(url(name, thread.pk))

        assert response.status_code == 302
        assert response["Location"] == f"{reverse('console:login')}?next={url(name, thread.pk)}"
        assert Message.objects.filter(thread=thread).count() == 3

    @pytest.mark.parametrize("name", ACTIONS)
    def test_a_non_staff_user_gets_403_and_nothing_changes(self, name, outsider_client):
        thread, _ = discord_conversation()

        assert outsider_client.post(url(name, thread.pk)).status_code == 403
        assert Message.objects.filter(thread=thread).count() == 3

    @pytest.mark.parametrize("name", ACTIONS)
    def test_it_only_answers_post(self, name, staff_client):
        thread, _ = discord_conversation()

        assert staff_client.get(url(name, thread.pk)).status_code == 405
        assert Message.objects.filter(thread=thread).count() == 3

    @pytest.mark.parametrize("name", ACTIONS)
    def test_without_a_csrf_token_it_is_refused(self, name):
        thread, _ = discord_conversation()
        client = Client(enforce_csrf_checks=True)
        client.force_login(personas.staff_admin())

        assert client.post(url(name, thread.pk)).status_code == 403
        assert Message.objects.filter(thread=thread).count() == 3

    @pytest.mark.parametrize("name", ACTIONS)
    def test_an_unknown_thread_is_404(self, name, staff_client):
        assert staff_client.post(url(name, 999_999)).status_code == 404
