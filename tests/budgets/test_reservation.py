"""What a running request reserves: its prompt plus the answer its route usually needs, and waiting over refusing."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections

from budgets.selectors import EXPECTED_ANSWER_MIN_SAMPLES, budget_status, expected_answer_tokens
from budgets.services import (
    MIN_ANSWER_TOKENS,
    BudgetDenied,
    ReservationPending,
    answer_allowance,
    estimate_prompt,
    reserve_for_request,
)
from conversations.models import Request
from pipeline import workers
from pipeline.processing import claim_request, process_request
from pipeline.services import cancel_request, submit_request
from pipeline.streaming import Outcome
from routing.models import Route
from tests import personas
from tests.budgets.helpers import spend

WINDOW = 8192


def submit(user, text="hello there") -> Request:
    thread = personas.thread_of(user, name=f"thread-{Request.objects.count()}")
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


def answered(route: Route, lengths: list[int], *, cap: int | None = None) -> None:
    """Answered requests on ``route`` whose answers were ``lengths`` tokens long."""
    user = personas.discord_user("history", "2002")
    thread = personas.thread_of(user, name=f"history-{Request.objects.count()}")
    for length in lengths:
        message = thread.messages.create(author=user, role="user", content="q")
        Request.objects.create(
            user=user,
            thread=thread,
            message=message,
            route=route,
            status=Request.Status.DONE,
            completion_tokens=length,
            budget_cap=cap,
        )


def reserve(request: Request, *, may_wait: bool = True, num_predict: int | None = None):
    request = Request.objects.select_related("message").get(pk=request.pk)
    messages = [{"role": "user", "content": request.message.content}]
    return reserve_for_request(
        request=request, messages=messages, context_size=WINDOW, num_predict=num_predict, may_wait=may_wait
    )


def hold(user, tokens: int) -> Request:
    """Another request of ``user``, running and holding ``tokens``."""
    other = submit(user, "the other one")
    Request.objects.filter(pk=other.pk).update(status=Request.Status.GENERATING, reserved_tokens=tokens)
    return other


class AnswerAllowanceTests:
    def test_with_plenty_free_the_answer_may_fill_the_window(self):
        assert answer_allowance(free=100_000, cap=8000, expected=500) == 8000

    def test_when_tight_it_is_the_expected_answer_or_a_quarter_of_what_is_free(self):
        assert answer_allowance(free=4000, cap=8000, expected=500) == 1000
        assert answer_allowance(free=1000, cap=8000, expected=500) == 500

    def test_it_never_passes_the_cap(self):
        assert answer_allowance(free=1000, cap=300, expected=500) == 300


@pytest.mark.django_db
class ExpectedAnswerTests:
    def test_a_route_without_history_expects_the_configured_default(self, settings):
        settings.BUDGET_EXPECTED_ANSWER_TOKENS = 700
        route = Route.objects.get(slug="general")
        answered(route, [50] * (EXPECTED_ANSWER_MIN_SAMPLES - 1))

        assert expected_answer_tokens(route_id=route.pk) == 700

    def test_it_learns_a_high_percentile_of_the_routes_recent_answers(self):
        route = Route.objects.get(slug="general")
        answered(route, list(range(10, 1010, 10)))  # 10, 20, … 1000

        assert expected_answer_tokens(route_id=route.pk) == 960

    def test_answers_the_budget_cut_short_are_left_out(self):
        route = Route.objects.get(slug="general")
        answered(route, [400] * 20)
        answered(route, [64] * 40, cap=64)  # they stopped at their budget cap

        assert expected_answer_tokens(route_id=route.pk) == 400


@pytest.mark.django_db
class ReservationTests:
    def test_a_tight_budget_reserves_the_prompt_plus_the_expected_answer_and_clamps_num_predict(self, settings):
        settings.BUDGET_EXPECTED_ANSWER_TOKENS = 600
        user = personas.discord_user()
        request = submit(user)
        claim_request(request_id=request.pk)
        spend(user, 100_000 - 2_000)

        reservation = reserve(request)

        prompt = estimate_prompt([{"content": "hello there"}])
        assert reservation.num_predict == 600
        assert reservation.tokens == prompt + 600
        request.refresh_from_db()
        assert request.reserved_tokens == prompt + 600
        assert request.budget_cap == 600
        assert budget_status(user=user).remaining == 2_000 - prompt - 600

    def test_the_routes_num_predict_caps_the_answer(self):
        request = submit(personas.discord_user())

        assert reserve(request, num_predict=100).num_predict == 100

    def test_it_says_pending_while_the_users_other_requests_hold_what_it_needs(self, settings):
        settings.BUDGET_EXPECTED_ANSWER_TOKENS = 600
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        hold(user, 900)

        with pytest.raises(ReservationPending):
            reserve(request)

        request.refresh_from_db()
        assert request.reserved_tokens == 0

    def test_once_it_may_wait_no_longer_it_takes_what_is_left(self, settings):
        settings.BUDGET_EXPECTED_ANSWER_TOKENS = 600
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        hold(user, 900)

        reservation = reserve(request, may_wait=False)

        assert reservation.tokens == 100
        assert reservation.num_predict == 100 - estimate_prompt([{"content": "hello there"}])

    def test_with_nothing_held_elsewhere_too_little_left_is_refused_at_once(self):
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - MIN_ANSWER_TOKENS // 2)

        with pytest.raises(BudgetDenied) as denied:
            reserve(request)

        assert not isinstance(denied.value, ReservationPending)
        assert denied.value.code == "budget_too_low"


def work_on(request_id: int, outcomes: list) -> None:
    try:
        outcomes.append(process_request(request_id=request_id))
    finally:
        connections.close_all()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class WaitingForBudgetTests:
    def test_a_request_waits_for_another_to_give_back_its_reservation_then_runs(self, fake_ollama, settings):
        settings.BUDGET_EXPECTED_ANSWER_TOKENS = 600
        fake_ollama.script("Short answer.", prompt_tokens=20, completion_tokens=3)
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        other = hold(user, 900)
        outcomes: list = []
        worker = threading.Thread(target=work_on, args=(request.pk, outcomes))
        worker.start()
        try:
            wait_until(lambda: Request.objects.get(pk=request.pk).phase == "budget")
            assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]
            Request.objects.filter(pk=other.pk).update(status=Request.Status.DONE, reserved_tokens=0)
        finally:
            worker.join(timeout=10)

        assert outcomes == [Outcome.DONE]
        request.refresh_from_db()
        assert request.status == Request.Status.DONE and request.reserved_tokens == 0
        body = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body
        assert body["options"]["num_predict"] == 600

    def test_a_request_cancelled_while_it_waits_ends_cancelled(self, fake_ollama, settings):
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        hold(user, 990)
        outcomes: list = []
        worker = threading.Thread(target=work_on, args=(request.pk, outcomes))
        worker.start()
        try:
            wait_until(lambda: Request.objects.get(pk=request.pk).phase == "budget")
            cancel_request(request=Request.objects.get(pk=request.pk))
        finally:
            worker.join(timeout=10)

        assert outcomes == [Outcome.CANCELLED]
        request.refresh_from_db()
        assert request.status == Request.Status.CANCELLED and request.reserved_tokens == 0

    def test_a_worker_stopping_while_it_waits_hands_the_request_back(self, fake_ollama, settings):
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        hold(user, 990)
        outcomes: list = []
        workers.reset_stop()
        worker = threading.Thread(target=work_on, args=(request.pk, outcomes))
        worker.start()
        try:
            wait_until(lambda: Request.objects.get(pk=request.pk).phase == "budget")
            workers.request_stop()
        finally:
            worker.join(timeout=10)
            workers.reset_stop()

        assert outcomes == [Outcome.STOPPED]
        request.refresh_from_db()
        assert request.status == Request.Status.QUEUED and request.handbacks == 1
        assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]

    def test_after_the_wait_it_answers_with_what_is_left(self, fake_ollama, settings):
        settings.BUDGET_WAIT_SECONDS = 0.3
        settings.BUDGET_EXPECTED_ANSWER_TOKENS = 600
        fake_ollama.script("word " * 500)
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        hold(user, 800)

        assert process_request(request_id=request.pk) is Outcome.DONE

        body = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body
        assert body["options"]["num_predict"] == 200 - estimate_prompt(body["messages"])
        request.refresh_from_db()
        assert {"code": "answer_capped", "tokens": request.budget_cap} in request.notices

    def test_a_claimed_request_is_not_held_back_by_its_own_reservation(self, fake_ollama):
        user = personas.discord_user()
        request = submit(user)
        spend(user, 100_000 - 1_000)
        claim_request(request_id=request.pk)
        Request.objects.filter(pk=request.pk).update(reserved_tokens=900)  # a previous attempt's

        assert reserve(request).tokens > 0
