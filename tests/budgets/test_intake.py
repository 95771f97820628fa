"""The intake checks: banned users, the rate limit and the weekly token budget."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from budgets.models import RoleTier, Tier
from budgets.selectors import budget_status, current_week_start
from budgets.services import grant_tokens, sync_role_tier
from conversations.models import Message, Request
from pipeline.services import Refusal, submit_request
from tests import personas
from tests.budgets.helpers import spend, tier

THREADS = itertools.count()


def submit(user, text="hello"):
    thread = personas.thread_of(user, name=f"thread-{next(THREADS)}")
    return submit_request(user=user, thread=thread, content=text, enqueue=False)


@pytest.fixture
def alice(db):
    return personas.discord_user()


@pytest.mark.django_db
class TokenBudgetTests:
    def test_it_refuses_when_the_week_is_spent_and_stores_nothing(self, alice):
        spend(alice, 100_000)

        with pytest.raises(Refusal) as refused:
            submit(alice)

        assert refused.value.code == "budget_spent"
        assert refused.value.message.startswith(
            "Your weekly budget is spent: 100,000 of 100,000 tokens. It resets Monday "
        )
        assert "at 00:00 UTC (in " in refused.value.message
        assert 0 < refused.value.retry_after <= 7 * 24 * 3600
        assert not Request.objects.exists() and not Message.objects.exists()

    def test_it_accepts_while_a_token_remains(self, alice):
        spend(alice, 99_999)

        assert submit(alice).request.status == Request.Status.QUEUED

    def test_last_weeks_usage_does_not_count(self, alice):
        spend(alice, 100_000, at=current_week_start() - timedelta(seconds=1))
        spend(alice, 10, at=current_week_start())

        assert budget_status(user=alice).used == 10
        assert submit(alice).request.pk

    def test_the_week_follows_budget_timezone(self, alice, settings):
        settings.BUDGET_TIMEZONE = "Pacific/Kiritimati"  # UTC+14: its Monday starts on Sunday 10:00 UTC
        start = current_week_start()
        spend(alice, 100_000, at=start - timedelta(minutes=1))

        assert start.astimezone(timezone.get_fixed_timezone(14 * 60)).strftime("%A %H:%M") == "Monday 00:00"
        assert budget_status(user=alice).used == 0

    def test_an_active_grant_adds_to_the_allowance(self, alice):
        spend(alice, 100_000)
        grant_tokens(user=alice, amount=5_000, reason="hackathon")

        status = budget_status(user=alice)

        assert (status.allowance, status.granted, status.remaining) == (100_000, 5_000, 5_000)
        assert submit(alice).request.pk

    def test_an_expired_grant_no_longer_counts(self, alice):
        spend(alice, 100_000)
        grant = grant_tokens(
            user=alice, amount=5_000, reason="last week's event", expires_at=timezone.now() + timedelta(hours=1)
        )
        type(grant).objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

        assert budget_status(user=alice).granted == 0
        with pytest.raises(Refusal) as refused:
            submit(alice)
        assert "100,000 of 100,000 tokens" in refused.value.message

    def test_the_refusal_mentions_grants_when_there_are_some(self, alice):
        grant_tokens(user=alice, amount=20_000, reason="research")
        spend(alice, 120_000)

        with pytest.raises(Refusal) as refused:
            submit(alice)

        assert "120,000 of 120,000 tokens (100,000 allowance + 20,000 granted)" in refused.value.message

    def test_disabled_budgets_accept_anything(self, alice, settings):
        settings.DISABLE_TOKEN_BUDGET = True
        spend(alice, 10_000_000)

        assert submit(alice).request.pk
        assert budget_status(user=alice).enforced is False

    def test_the_free_tier_follows_its_setting_until_an_operator_sets_a_number(self, alice, settings):
        settings.FREE_TIER_WEEKLY_BUDGET = 50
        spend(alice, 50)

        with pytest.raises(Refusal):
            submit(alice)

        Tier.objects.filter(slug="free").update(weekly_allowance=60)
        assert budget_status(user=alice).allowance == 60
        assert submit(alice).request.pk

    def test_the_admin_tier_gets_its_own_allowance(self, alice, settings):
        settings.ADMIN_TIER_WEEKLY_BUDGET = 123_456
        alice.tier = tier("admin")
        alice.save()

        status = budget_status(user=alice)

        assert (status.tier_name, status.allowance) == ("Admin", 123_456)


@pytest.mark.django_db
class RoleTierTests:
    def test_the_best_tier_among_the_users_roles_applies(self, alice):
        gold = Tier.objects.create(slug="gold", name="Gold", weekly_allowance=300_000)
        RoleTier.objects.create(role_id="11", tier=gold)
        RoleTier.objects.create(role_id="12", tier=tier("admin"))

        assert sync_role_tier(user=alice, role_ids=[11, 12, 99]) == tier("admin")
        assert budget_status(user=alice).allowance == 500_000

    def test_losing_the_role_returns_the_user_to_the_default_tier(self, alice):
        RoleTier.objects.create(role_id="12", tier=tier("admin"))
        sync_role_tier(user=alice, role_ids=[12])

        sync_role_tier(user=alice, role_ids=[13])

        assert budget_status(user=alice).tier_name == "Free"

    def test_a_tier_set_by_an_admin_wins_over_roles(self, alice):
        RoleTier.objects.create(role_id="12", tier=tier("admin"))
        sync_role_tier(user=alice, role_ids=[12])
        small = Tier.objects.create(slug="trial", name="Trial", weekly_allowance=1_000)
        alice.tier = small
        alice.save()

        assert budget_status(user=alice).allowance == 1_000


@pytest.mark.django_db
class BannedUserTests:
    def test_a_banned_user_is_refused_with_the_reason(self, alice):
        alice.banned, alice.ban_reason = True, "Spamming the model with prompts from a script."
        alice.save()

        with pytest.raises(Refusal) as refused:
            submit(alice)

        assert refused.value.code == "banned"
        assert refused.value.message == (
            "You can't use this assistant: an operator has banned you. "
            "Reason: Spamming the model with prompts from a script."
        )
        assert not Request.objects.exists()

    def test_the_ban_is_checked_before_the_budget(self, alice):
        alice.banned = True
        alice.save()
        spend(alice, 100_000)

        with pytest.raises(Refusal) as refused:
            submit(alice)

        assert refused.value.code == "banned"


@pytest.mark.django_db
class RateLimitTests:
    def test_it_refuses_the_request_over_the_limit_and_says_when_to_retry(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 3
        for n in range(3):
            submit(alice, f"message {n}")

        with pytest.raises(Refusal) as refused:
            submit(alice, "one too many")

        assert refused.value.code == "rate_limited"
        assert 1 <= refused.value.retry_after <= 60
        assert refused.value.message.startswith(
            "You're sending messages faster than I take them: at most 3 a minute. Try again in "
        )
        assert Request.objects.count() == 3

    def test_the_retry_time_is_when_the_oldest_request_leaves_the_window(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 2
        first = submit(alice, "first").request
        submit(alice, "second")
        Request.objects.filter(pk=first.pk).update(queued_at=timezone.now() - timedelta(seconds=50))

        with pytest.raises(Refusal) as refused:
            submit(alice, "third")

        assert 9 <= refused.value.retry_after <= 11

    def test_requests_older_than_a_minute_do_not_count(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 1
        first = submit(alice, "first").request
        Request.objects.filter(pk=first.pk).update(queued_at=timezone.now() - timedelta(seconds=61))

        assert submit(alice, "second").request.pk

    def test_it_is_per_user(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 1
        submit(alice, "first")

        assert submit(personas.discord_user("carol", "1002"), "mine").request.pk

    def test_an_exempt_tier_is_not_limited(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 1
        alice.tier = tier("admin")
        alice.save()

        for n in range(3):
            submit(alice, f"message {n}")

        assert Request.objects.filter(user=alice).count() == 3

    def test_zero_switches_the_limit_off(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 0

        for n in range(12):
            submit(alice, f"message {n}")

    def test_the_rate_limit_is_checked_before_the_budget(self, alice, settings):
        settings.RATE_LIMIT_PER_MINUTE = 1
        submit(alice, "first")
        spend(alice, 100_000)

        with pytest.raises(Refusal) as refused:
            submit(alice, "second")

        assert refused.value.code == "rate_limited"
