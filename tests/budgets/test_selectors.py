"""The one-user statement and the admin's annotated queryset compute the same figures."""

from __future__ import annotations

import pytest

from budgets.models import RoleTier, Tier
from budgets.selectors import annotate_budget, budget_status
from budgets.services import grant_tokens, sync_role_tier
from conversations.models import ChatUser, Request
from pipeline.services import submit_request
from tests import personas
from tests.budgets.helpers import spend, tier


@pytest.mark.django_db
class BudgetFiguresTests:
    def test_both_ways_agree_for_every_kind_of_user(self, settings):
        settings.FREE_TIER_WEEKLY_BUDGET = 70_000
        default = personas.discord_user("default", "1")
        explicit = personas.discord_user("explicit", "2")
        explicit.tier = Tier.objects.create(slug="gold", name="Gold", weekly_allowance=250_000)
        explicit.save()
        by_role = personas.discord_user("by-role", "3")
        RoleTier.objects.create(role_id="9", tier=tier("admin"))
        sync_role_tier(user=by_role, role_ids=[9])
        spend(default, 1_000)
        grant_tokens(user=explicit, amount=5_000, reason="r")
        running = submit_request(user=by_role, thread=personas.thread_of(by_role), content="hi", enqueue=False).request
        Request.objects.filter(pk=running.pk).update(status=Request.Status.GENERATING, reserved_tokens=777)

        rows = {user.pk: user for user in annotate_budget(ChatUser.objects.all())}

        expected = {
            default.pk: ("Free", 70_000, 0, 1_000, 0),
            explicit.pk: ("Gold", 250_000, 5_000, 0, 0),
            by_role.pk: ("Admin", 500_000, 0, 0, 777),
        }
        for pk, (name, allowance, granted, used, reserved) in expected.items():
            status, row = budget_status(user=pk), rows[pk]
            assert (status.tier_name, status.allowance, status.granted, status.used, status.reserved) == (
                name,
                allowance,
                granted,
                used,
                reserved,
            )
            assert (row.tier_name, row.allowance, row.granted, row.used_this_week, row.reserved) == (
                name,
                allowance,
                granted,
                used,
                reserved,
            )
            assert row.remaining == status.remaining
        assert budget_status(user=by_role).rate_limit_exempt is True
        assert budget_status(user=by_role, exclude_request=running.pk).reserved == 0
