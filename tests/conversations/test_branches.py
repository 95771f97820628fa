"""Branches: a conversation continued from an earlier message, copied up to it."""

from __future__ import annotations

import pytest

from conversations.branches import branch_point, branch_thread, is_latest
from conversations.models import Attachment, Message, Platform, Request, Thread
from pipeline.context import build_chat_messages
from routing.models import Route
from tests.conversations.helpers import History


def answered(history: History, question: str, answer: str) -> tuple[Message, Message]:
    request = history.ask(question)
    reply = history.answer(answer, tokens=12)
    Request.objects.filter(pk=request.pk).update(reply=reply, status=Request.Status.DONE)
    return request.message, reply


def branch_of(source: Message, external_id: str = "branch-1") -> Thread:
    return branch_thread(
        source=source, platform=Platform.DISCORD, external_id=external_id, title="Branch", owner=source.author
    )


@pytest.mark.django_db
class BranchTests:
    def test_a_branch_from_an_answer_holds_the_conversation_up_to_that_answer(self):
        history = History()
        _, first = answered(history, "one", "answer one")
        answered(history, "two", "answer two")

        branch = branch_of(first)

        assert [(m.role, m.content) for m in branch.messages.all()] == [("user", "one"), ("assistant", "answer one")]
        assert branch.messages.get(role="assistant").token_count == 12
        assert branch.branched_from == first
        assert [m.content for m in history.thread.messages.all()] == ["one", "answer one", "two", "answer two"]

    def test_a_branch_from_an_answered_question_keeps_its_answer(self):
        history = History()
        question, reply = answered(history, "one", "answer one")
        answered(history, "two", "answer two")

        assert branch_point(question) == reply
        assert [m.content for m in branch_of(question).messages.all()] == ["one", "answer one"]

    def test_only_the_last_exchange_is_latest(self):
        history = History()
        first_question, _ = answered(history, "one", "answer one")
        last_question, last_answer = answered(history, "two", "answer two")

        assert is_latest(last_answer) and is_latest(last_question)
        assert not is_latest(first_question)

    def test_files_keep_their_text_but_not_the_stored_upload(self):
        history = History()
        question, reply = answered(history, "read it", "done")
        Attachment.objects.create(
            message=question, kind="text", filename="a.txt", size=3, extracted_text="abc", file="uploads/a.txt"
        )

        [copy] = Attachment.objects.filter(message__thread=branch_of(reply))

        assert (copy.filename, copy.extracted_text, copy.file.name) == ("a.txt", "abc", "")

    def test_the_summary_comes_along_only_when_it_covers_copied_messages(self):
        history = History()
        _, first = answered(history, "one", "answer one")
        _, second = answered(history, "two", "answer two")
        answered(history, "three", "answer three")
        Thread.objects.filter(pk=history.thread.pk).update(summary="They said one.", summary_until=first)

        kept = branch_of(second, "b1")
        dropped = branch_of(first.thread.messages.get(content="one"), "b2")
        dropped_too = Thread.objects.get(pk=dropped.pk)

        assert kept.summary == "They said one."
        assert kept.summary_until == kept.messages.get(content="answer one")
        assert kept.summarized_at is None
        assert dropped_too.summary == "They said one."  # the point is the answer, which the summary covers
        Thread.objects.filter(pk=history.thread.pk).update(summary_until=second)
        assert branch_of(first, "b3").summary == ""

    def test_the_first_answer_of_a_branch_says_it_branched_and_later_ones_do_not(self):
        history = History()
        _, first = answered(history, "one", "answer one")
        answered(history, "two", "answer two")
        branch = branch_of(first)
        route = Route.objects.get(slug="general")

        asked = Request.objects.create(
            user=history.owner,
            thread=branch,
            message=Message.objects.create(thread=branch, author=history.owner, role="user", content="again"),
        )
        build_chat_messages(request=asked, route=route, system_prompt="")
        later = Request.objects.create(
            user=history.owner,
            thread=branch,
            message=Message.objects.create(thread=branch, author=history.owner, role="user", content="more"),
        )
        messages = build_chat_messages(request=later, route=route, system_prompt="")

        asked.refresh_from_db()
        later.refresh_from_db()
        assert {"code": "branched"} in asked.notices
        assert {"code": "branched"} not in later.notices
        assert [m["content"] for m in messages] == ["one", "answer one", "again", "more"]
