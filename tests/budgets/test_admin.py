"""The chat-user admin's budget columns, filters, grant history and "Grant tokens" action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from budgets.models import Grant, Tier
from budgets.services import grant_tokens
from tests import personas
from tests.budgets.helpers import spend, tier

CHANGELIST = reverse("admin:conversations_chatuser_changelist")


@pytest.fixture
def staff(client, db):
    admin = personas.staff_admin()
    client.force_login(admin)
    return admin


@pytest.mark.django_db
class ChatUserListTests:
    def test_it_shows_tier_usage_this_week_and_remaining(self, client, staff):
        alice = personas.discord_user()
        spend(alice, 30_000)
        grant_tokens(user=alice, amount=10_000, reason="event")

        response = client.get(CHANGELIST)

        assert response.status_code == 200
        row = response.context["cl"].result_list.get(pk=alice.pk)
        assert (row.tier_name, row.used_this_week, row.remaining) == ("Free", 30_000, 80_000)
        assert "30,000" in response.text and "80,000 of 110,000" in response.text

    def test_the_list_costs_the_same_queries_for_3_users_as_for_30(self, client, staff):
        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(CHANGELIST).status_code == 200
            return len(captured)

        for n in range(3):
            spend(personas.discord_user(f"user{n}", str(2000 + n)), 10)
        few = queries()
        for n in range(3, 30):
            user = personas.discord_user(f"user{n}", str(2000 + n))
            spend(user, 10)
            grant_tokens(user=user, amount=5, reason="x")

        assert queries() == few

    def test_it_filters_by_budget_state_and_tier(self, client, staff):
        spent = personas.discord_user("spent", "1")
        personas.discord_user("fresh", "2")
        boss = personas.discord_user("boss", "3")
        boss.tier = tier("admin")
        boss.save()
        spend(spent, 100_000)

        def names(query: str) -> set[str]:
            response = client.get(CHANGELIST + query)
            assert response.status_code == 200
            return {user.username for user in response.context["cl"].result_list}

        assert names("?budget=spent") == {"spent"}
        assert names("?budget=unused") == {"fresh", "boss"}
        assert names(f"?tier={tier('admin').pk}") == {"boss"}
        assert names(f"?tier={tier('free').pk}") == {"spent", "fresh"}

    def test_it_sorts_by_what_remains(self, client, staff):
        for name, used in [("most", 0), ("least", 90_000), ("middle", 50_000)]:
            spend(personas.discord_user(name, name), used)
        column = client.get(CHANGELIST).context["cl"].list_display.index("remaining_column")

        response = client.get(CHANGELIST, {"o": str(column)})  # 1-based after the action checkbox

        assert [u.username for u in response.context["cl"].result_list] == ["least", "middle", "most"]

    def test_the_users_page_shows_the_grant_history(self, client, staff):
        alice = personas.discord_user()
        grant_tokens(user=alice, amount=12_345, reason="helped moderate", granted_by=staff)

        response = client.get(reverse("admin:conversations_chatuser_change", args=[alice.pk]))

        assert response.status_code == 200
        assert "helped moderate" in response.text and "12345" in response.text.replace(",", "")

    def test_anonymous_visitors_are_sent_to_sign_in(self, client, db):
        response = client.get(CHANGELIST)

        assert response.status_code == 302 and "/login/" in response.url


@pytest.mark.django_db
class GrantTokensActionTests:
    def select(self, client, users, **extra):
        data = {"action": "grant_tokens_action", "_selected_action": [u.pk for u in users], **extra}
        return client.post(CHANGELIST, data)

    def test_it_asks_for_amount_reason_and_expiry_prefilled_with_the_next_reset(self, client, staff):
        alice = personas.discord_user()

        response = self.select(client, [alice])

        assert response.status_code == 200
        assert "Grant tokens" in response.text and str(alice) in response.text
        assert response.context["form"].initial["expires_at"] > timezone.now()
        assert not Grant.objects.exists()

    def test_it_grants_to_every_selected_user_and_records_who_granted(self, client, staff):
        alice, carol = personas.discord_user(), personas.discord_user("carol", "1002")
        expires = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")

        response = self.select(
            client, [alice, carol], apply="1", amount="25000", reason="launch week", expires_at=expires
        )

        assert response.status_code == 302
        grants = Grant.objects.order_by("user__username")
        assert [(g.user, g.amount, g.reason, g.granted_by) for g in grants] == [
            (alice, 25_000, "launch week", staff),
            (carol, 25_000, "launch week", staff),
        ]
        assert all(g.expires_at and g.expires_at > timezone.now() for g in grants)

    @pytest.mark.parametrize(
        ("amount", "reason", "expires_at", "error"),
        [
            ("0", "x", "", "greater than or equal to 1"),
            ("lots", "x", "", "Enter a whole number"),
            ("100", "", "", "This field is required"),
            ("100", "x", "2001-01-01 00:00", "The expiry is in the past"),
        ],
    )
    def test_bad_input_is_shown_on_the_form_and_grants_nothing(self, client, staff, amount, reason, expires_at, error):
        alice = personas.discord_user()

        response = self.select(client, [alice], apply="1", amount=amount, reason=reason, expires_at=expires_at)

        assert response.status_code == 200
        assert error in response.text
        assert not Grant.objects.exists()


@pytest.mark.django_db
class TierAdminTests:
    def test_a_second_default_tier_is_refused_on_the_form(self, client, staff):
        response = client.post(
            reverse("admin:budgets_tier_add"),
            {"slug": "gold", "name": "Gold", "weekly_allowance": "300000", "is_default": "on"},
        )

        assert response.status_code == 200
        assert "Another tier is already the default: untick it there first." in response.text
        assert not Tier.objects.filter(slug="gold").exists()

    def test_only_the_free_and_admin_tiers_may_follow_a_setting(self, client, staff):
        response = client.post(reverse("admin:budgets_tier_add"), {"slug": "gold", "name": "Gold"})

        assert response.status_code == 200
        assert "only the free and admin tiers can follow a setting" in response.text
        assert not Tier.objects.filter(slug="gold").exists()

    def test_the_list_shows_which_allowance_follows_a_setting(self, client, staff, settings):
        settings.FREE_TIER_WEEKLY_BUDGET = 42_000

        response = client.get(reverse("admin:budgets_tier_changelist"))

        assert "42,000 (from FREE_TIER_WEEKLY_BUDGET)" in response.text
