"""What the context builder records for the user: files cut, earlier turns left out, a new summary."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Attachment, Request, Thread
from pipeline.context import build_chat_messages
from routing.models import Route
from tests.conversations.helpers import History


def general() -> Route:
    return Route.objects.get(slug="general")


@pytest.mark.django_db
class ContextNoticeTests:
    def test_a_file_cut_when_it_was_read_is_noted_with_its_name(self):
        history = History()
        request = history.ask("what does it say?")
        Attachment.objects.create(
            message=request.message,
            kind=Attachment.Kind.TEXT,
            filename="log.txt",
            size=90_000,
            extracted_text="x" * 100,
            note="Only the first 40,000 of 90,000 characters of this file were read.",
        )

        build_chat_messages(request=request, route=general(), system_prompt="")

        request.refresh_from_db()
        assert request.notices == [
            {
                "code": "file_cut",
                "file": "log.txt",
                "detail": "Only the first 40,000 of 90,000 characters of this file were read.",
            }
        ]

    def test_a_summary_is_noted_once_at_the_first_request_that_reads_it(self):
        history = History()
        covered = [history.say("one"), history.answer("two")]
        earlier = history.ask("three")
        Request.objects.filter(pk=earlier.pk).update(started_at=timezone.now() - timedelta(minutes=5))
        Thread.objects.filter(pk=history.thread.pk).update(
            summary="One and two.", summary_until=covered[-1], summarized_at=timezone.now() - timedelta(minutes=1)
        )
        first = Request.objects.select_related("thread", "message").get(pk=history.ask("four").pk)

        build_chat_messages(request=first, route=general(), system_prompt="")
        Request.objects.filter(pk=first.pk).update(started_at=timezone.now())
        second = Request.objects.select_related("thread", "message").get(pk=history.ask("five").pk)
        build_chat_messages(request=second, route=general(), system_prompt="")

        first.refresh_from_db()
        second.refresh_from_db()
        assert first.notices == [{"code": "summarized", "covered": 2}]
        assert second.notices == []

    def test_a_message_that_fits_with_its_whole_thread_gets_no_notice(self):
        history = History()
        history.say("hi")
        history.answer("hello")
        request = history.ask("how are you?")

        build_chat_messages(request=request, route=general(), system_prompt="Be brief.")

        request.refresh_from_db()
        assert request.notices == []
        assert request.prompt_estimate is not None
