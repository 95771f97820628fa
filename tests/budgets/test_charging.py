"""What a request costs: the reservation while it runs, the num_predict cap and the final charge."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from budgets.models import UsageEntry
from budgets.selectors import budget_status
from budgets.services import MIN_ANSWER_TOKENS, estimate_prompt
from conversations.models import Request
from pipeline.context import estimate_tokens
from pipeline.processing import process_request
from pipeline.services import cancel_request, submit_request
from pipeline.streaming import Outcome
from tests import personas
from tests.budgets.helpers import spend


def submit(user=None, text="hello there") -> Request:
    user = user or personas.discord_user()
    thread = personas.thread_of(user, name=f"thread-{Request.objects.count()}")
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


def chat_body(fake_ollama) -> dict:
    return [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body


def work_on(request_id: int) -> None:
    """Run a request as a worker thread does, closing the thread's database connection after."""
    try:
        process_request(request_id=request_id)
    finally:
        connections.close_all()


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChargingTests:
    def test_the_answer_is_charged_with_ollamas_real_counts_and_the_reservation_released(self, fake_ollama):
        fake_ollama.script("Hi!", prompt_tokens=321, completion_tokens=45)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        entry = UsageEntry.objects.get()
        assert (entry.kind, entry.model, entry.route.slug) == ("answer", "gpt-oss:20b", "general")
        assert (entry.prompt_tokens, entry.completion_tokens, entry.total_tokens) == (321, 45, 366)
        assert entry.request_id == request.pk and entry.user_id == request.user_id and not entry.estimated
        request.refresh_from_db()
        assert request.reserved_tokens == 0
        assert budget_status(user=request.user).used == 366

    def test_num_predict_is_capped_at_what_remains(self, fake_ollama):
        user = personas.discord_user()
        spend(user, 100_000 - 500)
        request = submit(user)

        process_request(request_id=request.pk)

        body = chat_body(fake_ollama)
        assert body["options"]["num_predict"] == 500 - estimate_prompt(body["messages"])

    def test_with_plenty_left_an_answer_may_fill_the_context_window(self, fake_ollama):
        request = submit()

        process_request(request_id=request.pk)

        body = chat_body(fake_ollama)
        assert body["options"]["num_predict"] == body["options"]["num_ctx"] - estimate_prompt(body["messages"])

    def test_the_request_is_reserved_while_it_runs(self, fake_ollama):
        fake_ollama.script("word " * 400, tokens_per_second=40)
        request = submit()
        worker = threading.Thread(target=work_on, args=(request.pk,))
        worker.start()
        try:
            wait_until(lambda: Request.objects.get(pk=request.pk).first_token_at is not None)
            running = Request.objects.get(pk=request.pk)
            assert running.reserved_tokens == running.route.context_size
            assert budget_status(user=request.user).reserved == running.reserved_tokens
        finally:
            cancel_request(request=Request.objects.get(pk=request.pk))
            worker.join(timeout=5)

        request.refresh_from_db()
        assert request.status == Request.Status.CANCELLED
        assert request.reserved_tokens == 0
        assert budget_status(user=request.user).reserved == 0

    def test_a_cancelled_answer_is_charged_an_estimate_of_what_it_produced(self, fake_ollama):
        fake_ollama.script("word " * 400, tokens_per_second=40)
        request = submit()
        worker = threading.Thread(target=work_on, args=(request.pk,))
        worker.start()
        wait_until(lambda: Request.objects.get(pk=request.pk).first_token_at is not None)
        time.sleep(0.3)
        cancel_request(request=Request.objects.get(pk=request.pk))
        worker.join(timeout=5)

        request.refresh_from_db()
        entry = UsageEntry.objects.get()
        assert entry.estimated
        assert entry.completion_tokens == estimate_tokens(request.partial_content)
        assert entry.prompt_tokens == estimate_prompt(chat_body(fake_ollama)["messages"])

    def test_an_attempt_that_produced_nothing_costs_nothing(self, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 1
        fake_ollama.script(error=(500, "out of memory"))
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        assert not UsageEntry.objects.exists()
        request.refresh_from_db()
        assert request.reserved_tokens == 0

    def test_a_broken_attempt_is_charged_an_estimate_and_the_retry_its_real_counts(self, fake_ollama):
        fake_ollama.script("Whole answer.", prompt_tokens=10, completion_tokens=3)
        fake_ollama.script("Partial answer that breaks", break_after=2, times=1)  # newest rule is tried first
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        assert UsageEntry.objects.count() == 2
        assert UsageEntry.objects.get(estimated=False).total_tokens == 13
        assert UsageEntry.objects.get(estimated=True).completion_tokens >= 1

    def test_a_request_finding_the_budget_spent_when_it_starts_fails_with_the_reason(self, fake_ollama):
        request = submit()
        spend(request.user, 100_000)  # spent by something else while it waited

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert request.error.startswith("Your weekly budget is spent: 100,000 of 100,000 tokens.")
        assert request.reserved_tokens == 0
        assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]

    def test_too_little_left_for_a_useful_answer_fails_with_advice(self, fake_ollama):
        user = personas.discord_user()
        spend(user, 100_000 - MIN_ANSWER_TOKENS // 2)
        request = submit(user)

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert request.error.startswith(f"You have {MIN_ANSWER_TOKENS // 2:,} tokens left this week")
        assert "Start a new thread" in request.error

    def test_disabled_budgets_neither_cap_nor_refuse_but_still_record(self, fake_ollama, settings):
        settings.DISABLE_TOKEN_BUDGET = True
        fake_ollama.script("Fine.", prompt_tokens=7, completion_tokens=2)
        user = personas.discord_user()
        spend(user, 1_000_000)
        request = submit(user)

        assert process_request(request_id=request.pk) is Outcome.DONE

        assert "num_predict" not in chat_body(fake_ollama)["options"]
        assert UsageEntry.objects.filter(request=request).get().total_tokens == 9
        request.refresh_from_db()
        assert request.reserved_tokens == 0
