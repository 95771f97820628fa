"""Intake: storing a request, refusing clearly, and announcing it."""

from __future__ import annotations

import pytest

from conversations.models import Message, Request, Thread
from pipeline.services import Refusal, cancel_request, find_local_thread, submit_request
from tests import personas
from tests.layer import listening
from trollama import events


@pytest.fixture
def listener():
    """A channel joined to the ``requests`` group, read after the fact."""
    with listening(events.REQUESTS_GROUP) as received:
        yield received


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class SubmitRequestTests:
    def test_it_stores_the_message_and_a_queued_request_and_announces_its_position(self, listener):
        user = personas.discord_user()
        thread = personas.thread_of(user)
        submit_request(user=user, thread=thread, content="first", enqueue=False)

        submission = submit_request(user=user, thread=thread, content="second", enqueue=False)

        assert submission.position == 2
        request = Request.objects.get(pk=submission.request.pk)
        assert request.status == Request.Status.QUEUED
        assert request.message.content == "second"
        assert request.message.author == user
        queued = [e for e in listener() if e["type"] == "request.queued"]
        assert [e["position"] for e in queued] == [1, 2]
        assert queued[1]["request_id"] == request.pk

    def test_it_enqueues_the_worker_task_after_commit(self):
        from django_q.models import OrmQ

        user = personas.local_user()
        submission = submit_request(user=user, thread=personas.thread_of(user), content="hi")

        from django.conf import settings

        if settings.REDIS_URL:
            from django_q.brokers import get_broker

            assert get_broker().queue_size() >= 1
        else:
            assert OrmQ.objects.count() == 1
        assert submission.request.pk

    def test_a_full_queue_refuses_and_stores_nothing(self, settings):
        settings.MAX_QUEUE_SIZE = 2
        user = personas.discord_user()
        thread = personas.thread_of(user)
        for text in ("one", "two"):
            submit_request(user=user, thread=thread, content=text, enqueue=False)

        with pytest.raises(Refusal) as refusal:
            submit_request(user=user, thread=thread, content="three", enqueue=False)

        assert refusal.value.code == "queue_full"
        assert "try again in a minute" in refusal.value.message
        assert Request.objects.count() == 2
        assert not Message.objects.filter(content="three").exists()

    @pytest.mark.parametrize(
        ("content", "code", "phrase"),
        [
            ("", "empty", "Your message is empty"),
            ("   \n\t ", "empty", "Your message is empty"),
            ("x" * 100_000, "too_long", "100,000 characters long and the limit is 20,000"),
        ],
    )
    def test_bad_input_is_refused_with_a_clear_message_and_nothing_stored(self, content, code, phrase):
        user = personas.discord_user()
        thread = personas.thread_of(user)

        with pytest.raises(Refusal) as refusal:
            submit_request(user=user, thread=thread, content=content, enqueue=False)

        assert refusal.value.code == code
        assert phrase in refusal.value.message
        assert not Request.objects.exists() and not Message.objects.exists()

    def test_an_unknown_route_is_refused_with_the_available_ones(self):
        user = personas.discord_user()

        with pytest.raises(Refusal) as refusal:
            submit_request(
                user=user, thread=personas.thread_of(user), content="hi", route_slug="astrology", enqueue=False
            )

        assert "no enabled route called 'astrology'" in refusal.value.message
        assert "general" in refusal.value.message
        assert not Request.objects.exists()

    def test_an_unknown_local_thread_is_refused_with_known_names(self):
        user = personas.local_user()
        Thread.objects.create(platform="local", external_id="recipes-1a2b", owner=user)

        with pytest.raises(Refusal) as refusal:
            find_local_thread(name="nope")

        assert "no local thread called 'nope'" in refusal.value.message
        assert "recipes-1a2b" in refusal.value.message


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class CancelRequestTests:
    def test_a_queued_request_is_cancelled_at_once_and_announced(self, listener):
        user = personas.discord_user()
        request = submit_request(user=user, thread=personas.thread_of(user), content="hi", enqueue=False).request

        cancel_request(request=request)

        request.refresh_from_db()
        assert request.status == Request.Status.CANCELLED
        assert request.finished_at is not None
        assert "request.cancelled" in [e["type"] for e in listener()]

    def test_a_running_request_is_only_flagged(self):
        user = personas.discord_user()
        request = submit_request(user=user, thread=personas.thread_of(user), content="hi", enqueue=False).request
        Request.objects.filter(pk=request.pk).update(status=Request.Status.GENERATING)

        cancel_request(request=request)

        request.refresh_from_db()
        assert request.status == Request.Status.GENERATING
        assert request.cancel_requested is True

    def test_a_finished_request_is_left_as_it_was(self):
        user = personas.discord_user()
        request = submit_request(user=user, thread=personas.thread_of(user), content="hi", enqueue=False).request
        Request.objects.filter(pk=request.pk).update(status=Request.Status.DONE)

        cancel_request(request=request)

        request.refresh_from_db()
        assert request.status == Request.Status.DONE
        assert request.cancel_requested is False
