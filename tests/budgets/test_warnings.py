"""Warning before the cut-off: the answer that takes the week past 80 % and 95 % says so, and /usage shows it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from budgets.selectors import budget_status
from budgets.texts import usage_text
from conversations.models import Request
from pipeline.footnotes import notice_lines
from pipeline.processing import process_request
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from tests import personas
from tests.budgets.helpers import spend


def answer(user, fake_ollama, *, tokens: int) -> Request:
    fake_ollama.script("Fine.", prompt_tokens=tokens - 2, completion_tokens=2)
    thread = personas.thread_of(user, name=f"thread-{Request.objects.count()}")
    request = submit_request(user=user, thread=thread, content="hello", enqueue=False).request
    assert process_request(request_id=request.pk) is Outcome.DONE
    return Request.objects.get(pk=request.pk)


def warnings(request: Request) -> list[dict]:
    return [notice for notice in request.notices if notice["code"] == "budget_warning"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class BudgetWarningTests:
    def test_the_answer_that_passes_80_percent_ends_with_a_warning_once(self, fake_ollama):
        user = personas.discord_user()
        spend(user, 79_000)

        crossing = answer(user, fake_ollama, tokens=2_000)
        after = answer(user, fake_ollama, tokens=1_000)

        assert [w["percent"] for w in warnings(crossing)] == [80]
        assert warnings(crossing)[0]["used_percent"] == 81
        assert warnings(crossing)[0]["remaining"] == 19_000
        assert crossing.budget_warning == 80
        assert warnings(after) == [] and after.budget_warning == 0
        line = notice_lines(crossing.notices)[-1]
        assert line.startswith("⚠️ You have used 81% of this week's token budget: 19,000 tokens are left")

    def test_passing_95_percent_warns_again(self, fake_ollama):
        user = personas.discord_user()
        spend(user, 79_000)
        answer(user, fake_ollama, tokens=2_000)

        crossing = answer(user, fake_ollama, tokens=15_000)

        assert [w["percent"] for w in warnings(crossing)] == [95]
        assert crossing.budget_warning == 95

    def test_usage_pushed_over_by_something_else_is_warned_about_at_the_next_answer(self, fake_ollama):
        user = personas.discord_user()
        spend(user, 85_000, kind="summary")

        request = answer(user, fake_ollama, tokens=100)

        assert [w["percent"] for w in warnings(request)] == [80]

    def test_below_80_percent_nothing_is_said(self, fake_ollama):
        user = personas.discord_user()

        request = answer(user, fake_ollama, tokens=5_000)

        assert request.notices == [] and request.budget_warning == 0

    def test_with_budgets_off_nothing_is_said(self, fake_ollama, settings):
        settings.DISABLE_TOKEN_BUDGET = True
        user = personas.discord_user()
        spend(user, 90_000)

        assert warnings(answer(user, fake_ollama, tokens=100)) == []


@pytest.mark.django_db
class UsageWarningTests:
    def test_usage_shows_the_warning_past_80_and_95_percent(self):
        user = personas.discord_user()
        now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        spend(user, 81_000, at=now)

        at_81 = usage_text(budget_status(user=user, now=now), now=now)
        spend(user, 15_000, at=now)
        at_96 = usage_text(budget_status(user=user, now=now), now=now)

        assert "⚠️ You have used over 80% of this week's budget" in at_81
        assert "⚠️ You have used over 95% of this week's budget" in at_96

    def test_usage_below_80_percent_has_no_warning(self):
        user = personas.discord_user()
        spend(user, 10_000)
        now = datetime.now(UTC)

        assert "⚠️" not in usage_text(budget_status(user=user, now=now), now=now)
