"""Many requests racing for a user's last tokens, in real threads.

The reservation race only means something on PostgreSQL (SQLite serialises
every writer and ignores SELECT … FOR UPDATE), so those tests skip elsewhere;
the false-refusal race (16 requests that all fit what is left) runs on both.
"""

from __future__ import annotations

import pytest
from django.db import connection

from budgets.models import UsageEntry
from budgets.selectors import budget_status
from budgets.services import MIN_ANSWER_TOKENS, BudgetDenied, reserve_for_request
from conversations.models import Request
from pipeline.processing import claim_request, process_request
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from routing.models import Route
from tests import personas
from tests.budgets.helpers import spend
from tests.concurrency import race

RACERS = 16
CONTEXT = 1_000  # the most one request may reserve
LEFT = 3_500  # what the user has left when the race starts


def racers(*, context: int, left: int) -> tuple[object, list[Request]]:
    Route.objects.filter(slug="general").update(context_size=context)
    user = personas.discord_user()
    requests = [
        submit_request(
            user=user, thread=personas.thread_of(user, f"race-{n}"), content=f"question {n}", enqueue=False
        ).request
        for n in range(RACERS)
    ]
    spend(user, 100_000 - left)
    return user, requests


@pytest.fixture
def racing_user(settings, db):
    if connection.vendor != "postgresql":
        pytest.skip("the reservation race needs PostgreSQL (DATABASE_URL=postgres://...)")
    settings.RATE_LIMIT_PER_MINUTE = 0
    return racers(context=CONTEXT, left=LEFT)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ConcurrencyTests:
    def test_concurrent_reservations_never_add_up_to_more_than_is_left(self, racing_user):
        user, requests = racing_user
        for request in requests:
            assert claim_request(request_id=request.pk) is not None

        def reserve(request_id: int) -> object:
            request = Request.objects.get(pk=request_id)
            messages = [{"role": "user", "content": request.message.content}]
            return reserve_for_request(request=request, messages=messages, context_size=CONTEXT)

        results = race(reserve, [r.pk for r in requests])

        granted = [r for r in results if not isinstance(r, Exception)]
        denied = [r for r in results if isinstance(r, BudgetDenied)]
        assert len(granted) + len(denied) == RACERS, results
        total = sum(Request.objects.filter(user=user).values_list("reserved_tokens", flat=True))
        assert total <= LEFT
        assert LEFT - total < CONTEXT  # nothing useful was left unreserved
        assert budget_status(user=user).remaining == LEFT - total
        # Those that found too little free were told to wait for the others, not refused.
        assert {denial.code for denial in denied} == {"budget_pending"}

    def test_racing_requests_overspend_by_at_most_one_requests_worth_and_fail_only_once_spent(
        self, racing_user, fake_ollama
    ):
        user, requests = racing_user
        fake_ollama.script("word " * 2_000, tokens_per_second=2_000)  # longer than any allowed answer

        outcomes = race(lambda request_id: process_request(request_id=request_id), [r.pk for r in requests])

        assert all(isinstance(outcome, Outcome) for outcome in outcomes), outcomes
        assert Outcome.DONE in outcomes and Outcome.FAILED in outcomes
        status = budget_status(user=user)
        assert status.used - 100_000 <= CONTEXT, f"overspent by {status.used - 100_000}"
        assert sum(Request.objects.filter(user=user).values_list("reserved_tokens", flat=True)) == 0
        failed = Request.objects.filter(user=user, status=Request.Status.FAILED)
        assert all(r.error.startswith(("Your weekly budget is spent", "You have")) for r in failed)
        # Nobody was refused while a useful answer still fitted what was left.
        assert status.remaining < 16 + MIN_ANSWER_TOKENS
        assert UsageEntry.objects.filter(user=user, request__isnull=False).count() == outcomes.count(Outcome.DONE)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class FalseRefusalTests:
    def test_sixteen_requests_that_all_fit_what_is_left_are_all_answered(self, settings, fake_ollama):
        # The race: 5,000 tokens left, an 8,192-token window, short answers.
        settings.RATE_LIMIT_PER_MINUTE = 0
        user, requests = racers(context=8_192, left=5_000)
        fake_ollama.script("A short answer.", prompt_tokens=40, completion_tokens=20, tokens_per_second=200)

        outcomes = race(lambda request_id: process_request(request_id=request_id), [r.pk for r in requests])

        refused = list(Request.objects.filter(user=user, status=Request.Status.FAILED).values_list("error", flat=True))
        assert outcomes == [Outcome.DONE] * RACERS, refused
        status = budget_status(user=user)
        assert status.used == 100_000 - 5_000 + RACERS * 60
        assert status.reserved == 0
