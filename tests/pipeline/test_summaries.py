"""Automatic summaries: when they trigger, what they cover, where they go, what they cost."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from bots.delivery import thread_notice
from budgets.models import UsageEntry
from conversations.models import Message, Request, Thread
from pipeline import tasks
from pipeline.processing import process_request
from pipeline.services import submit_request
from pipeline.summaries import (
    NOTICE,
    SUMMARIZE_TASK,
    after_answer,
    record_turn_tokens,
    summarize_if_needed,
    threshold,
    update_summary,
)
from routing.models import Route
from tests.conversations.helpers import History, drain_queue
from tests.layer import listening
from trollama import events

SUMMARY_PROMPT = "Write the updated summary"


def long_history(exchanges: int = 8) -> History:
    history = History()
    for n in range(exchanges):
        history.say(f"question {n}: " + "q" * 200)
        history.answer(f"answer {n}: " + "a" * 200)
    return history


def summarizer_calls(fake_ollama) -> list[dict]:
    return [
        r.body
        for r in fake_ollama.requests
        if r.path == "/api/chat" and SUMMARY_PROMPT in r.body["messages"][-1]["content"]
    ]


class ThresholdTests:
    def test_it_is_the_token_threshold_or_the_share_of_the_window_whichever_comes_first(self, settings):
        settings.SUMMARY_THRESHOLD_TOKENS = 9000
        settings.SUMMARY_THRESHOLD_RATIO = 0.75

        assert threshold(Route(context_size=8192)) == 6144
        assert threshold(Route(context_size=32768)) == 9000


@pytest.fixture
def fresh_cache():
    """The cache remembers summary tasks in flight; tests start and end without any."""
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("fresh_cache")
class AutomaticSummaryTests:
    def test_an_answer_that_takes_the_thread_past_the_threshold_enqueues_the_summarizer(self, fake_ollama, settings):
        settings.SUMMARY_THRESHOLD_TOKENS = 300
        history = long_history()
        drain_queue()
        request = submit_request(user=history.owner, thread=history.thread, content="newest", enqueue=False).request

        process_request(request_id=request.pk)

        queued = drain_queue()
        assert [(task["func"], task["args"]) for task in queued] == [
            (SUMMARIZE_TASK, (history.thread.pk, history.owner.pk))
        ]
        history.thread.refresh_from_db()
        assert history.thread.summary == ""  # nobody waited for it

        after_answer(request_id=request.pk)  # another answer while the task waits
        assert drain_queue() == []

    def test_a_thread_under_the_threshold_is_left_alone(self, fake_ollama):
        history = History()
        history.say("hi")
        history.answer("hello")
        drain_queue()
        request = submit_request(user=history.owner, thread=history.thread, content="more", enqueue=False).request

        process_request(request_id=request.pk)

        assert drain_queue() == []

    def test_the_task_summarizes_all_but_the_last_five_turns_records_usage_and_posts_a_notice(
        self, fake_ollama, settings
    ):
        settings.SUMMARY_THRESHOLD_TOKENS = 300
        history = long_history()
        fake_ollama.script("They asked eight questions.", match=SUMMARY_PROMPT, prompt_tokens=900, completion_tokens=40)
        messages = list(history.thread.messages.order_by("created_at"))

        with listening(events.SYSTEM_GROUP) as received:
            assert tasks.summarize_thread(history.thread.pk, history.owner.pk) == "summarized"
            notices = [e for e in received() if e["type"] == "thread.summarized"]

        thread = Thread.objects.get(pk=history.thread.pk)
        assert thread.summary == "They asked eight questions."
        assert thread.summary_until == messages[-6]  # the last five stay verbatim
        assert thread.summary_token_count == 40
        assert thread.summarized_at is not None
        sent = summarizer_calls(fake_ollama)[0]
        assert sent["model"] == settings.SUMMARIZER_MODEL
        assert "question 0" in sent["messages"][-1]["content"]
        assert "question 5" in sent["messages"][-1]["content"]
        assert "answer 5" not in sent["messages"][-1]["content"]
        usage = UsageEntry.objects.get(kind="summary")
        assert (usage.user, usage.model, usage.prompt_tokens, usage.completion_tokens) == (
            history.owner,
            settings.SUMMARIZER_MODEL,
            900,
            40,
        )
        assert notices == [
            {
                "type": "thread.summarized",
                "thread_id": thread.pk,
                "platform": thread.platform,
                "thread_external_id": thread.external_id,
                "covered": 11,
                "notice": NOTICE,
            }
        ]

    def test_the_next_request_sees_the_summary_before_the_kept_turns(self, fake_ollama, settings):
        settings.SUMMARY_THRESHOLD_TOKENS = 300
        history = long_history()
        fake_ollama.script("SUMMARY OF EARLIER TURNS", match=SUMMARY_PROMPT)
        summarize_if_needed(thread_id=history.thread.pk)
        request = submit_request(user=history.owner, thread=history.thread, content="go on", enqueue=False).request

        process_request(request_id=request.pk)

        sent = [r.body for r in fake_ollama.requests if r.path == "/api/chat"][-1]["messages"]
        assert sent[0]["role"] == "system" and sent[1]["role"] == "system"
        assert sent[1]["content"].endswith("SUMMARY OF EARLIER TURNS")
        assert [m["content"][:10] for m in sent[2:]] == [
            "answer 5: ",
            "question 6",
            "answer 6: ",
            "question 7",
            "answer 7: ",
            "go on",
        ]
        request.refresh_from_db()
        assert request.dropped_turns == 0

    def test_summaries_are_incremental_from_the_previous_summary_and_the_newer_turns(self, fake_ollama, settings):
        history = long_history(4)
        fake_ollama.script("FIRST SUMMARY", match=SUMMARY_PROMPT, times=1)
        assert update_summary(thread=history.thread)
        for n in range(4, 8):
            history.say(f"question {n}: later")
            history.answer(f"answer {n}: later")
        fake_ollama.script("SECOND SUMMARY", match=SUMMARY_PROMPT, times=1)

        assert update_summary(thread=history.thread)

        second = summarizer_calls(fake_ollama)[-1]["messages"][-1]["content"]
        assert second.startswith("Summary so far:\nFIRST SUMMARY\n")
        assert "question 0" not in second  # already in the first summary
        assert "answer 1:" in second and "question 5: later" in second
        thread = Thread.objects.get(pk=history.thread.pk)
        assert thread.summary == "SECOND SUMMARY"
        assert thread.summary_until == list(thread.messages.order_by("created_at"))[-6]
        assert UsageEntry.objects.filter(kind="summary").count() == 2

    def test_a_failing_summarizer_leaves_the_thread_as_it_was(self, fake_ollama, settings):
        settings.SUMMARY_THRESHOLD_TOKENS = 300
        fake_ollama.remove_model(settings.SUMMARIZER_MODEL)
        history = long_history()

        assert summarize_if_needed(thread_id=history.thread.pk) is False

        thread = Thread.objects.get(pk=history.thread.pk)
        assert (thread.summary, thread.summary_until) == ("", None)
        assert not UsageEntry.objects.filter(kind="summary").exists()

    def test_a_summary_task_for_a_deleted_thread_does_nothing(self, fake_ollama):
        assert tasks.summarize_thread(987654, None) == "skipped"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class TurnTokenTests:
    def test_the_user_turns_count_is_derived_from_consecutive_prompt_counts(self, fake_ollama):
        history = History()
        fake_ollama.script("First.", prompt_tokens=100, completion_tokens=20, times=1)
        first = submit_request(user=history.owner, thread=history.thread, content="one", enqueue=False).request
        process_request(request_id=first.pk)
        fake_ollama.script("Second.", prompt_tokens=150, completion_tokens=5, times=1)
        second = submit_request(user=history.owner, thread=history.thread, content="two", enqueue=False).request

        process_request(request_id=second.pk)

        assert Message.objects.get(pk=second.message_id).token_count == 30  # 150 - 100 - 20
        assert Message.objects.get(pk=first.message_id).token_count is None  # nothing to compare with
        first.refresh_from_db()
        assert first.reply.token_count == 20

    def test_no_count_is_derived_when_turns_were_dropped(self, fake_ollama):
        history = History()
        fake_ollama.script("First.", prompt_tokens=100, completion_tokens=20, times=1)
        first = submit_request(user=history.owner, thread=history.thread, content="one", enqueue=False).request
        process_request(request_id=first.pk)
        second = submit_request(user=history.owner, thread=history.thread, content="two", enqueue=False).request
        Request.objects.filter(pk=second.pk).update(status=Request.Status.DONE, prompt_tokens=150, dropped_turns=1)

        record_turn_tokens(Request.objects.select_related("thread", "message").get(pk=second.pk))

        assert Message.objects.get(pk=second.message_id).token_count is None


class SummaryNoticeTests:
    def test_the_bot_posts_the_notice_in_the_discord_thread_that_was_summarized(self):
        event = {
            "type": "thread.summarized",
            "thread_id": 3,
            "platform": "discord",
            "thread_external_id": "5550001",
            "covered": 11,
            "notice": NOTICE,
        }

        assert thread_notice(event) == (5550001, NOTICE)
        assert "Earlier conversation was summarized" in NOTICE

    def test_local_threads_and_other_events_get_no_discord_notice(self):
        assert thread_notice({"type": "thread.summarized", "platform": "local", "thread_external_id": "x"}) is None
        assert thread_notice({"type": "request.done", "request_id": 1}) is None
