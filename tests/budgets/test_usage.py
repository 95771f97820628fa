"""``/usage``: its text (a pure function) and what it reads; roles passed at intake."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bots.commands import COMMAND_MODULES
from bots.commands.general import COMMAND_HELP
from bots.commands.usage import usage_reply
from bots.services import DiscordAuthor, submit_discord_message
from budgets.models import RoleTier, UserRoleTier
from budgets.selectors import budget_status
from budgets.services import grant_tokens
from budgets.texts import BudgetStatus, bar, budget_spent_text, rate_limited_text, usage_text
from conversations.models import ChatUser
from pipeline.services import Refusal
from tests import personas
from tests.budgets.helpers import spend, tier

NOW = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)  # a Saturday
RESET = datetime(2026, 11, 23, tzinfo=UTC)
ALICE = DiscordAuthor(id=1001, username="alice", display_name="Alice")


def status(**overrides) -> BudgetStatus:
    values = {
        "tier_name": "Free",
        "allowance": 100_000,
        "granted": 0,
        "used": 25_000,
        "reserved": 0,
        "resets_at": RESET,
        "zone": ZoneInfo("UTC"),
    }
    return BudgetStatus(**{**values, **overrides})


class UsageTextTests:
    def test_it_shows_used_allowance_remaining_a_bar_and_the_reset(self):
        assert usage_text(status(), now=NOW) == (
            "**Your token budget this week** (Free tier)\n"
            "`▓▓▓░░░░░░░` 25% used\n"
            "• Used: 25,000 tokens\n"
            "• Weekly allowance: 100,000\n"
            "• Remaining: 75,000\n"
            "Resets Monday 23 November at 00:00 UTC (in 1 day 22 hours)."
        )

    def test_it_shows_grants_and_what_a_running_request_holds(self):
        text = usage_text(status(granted=20_000, reserved=8_192), now=NOW)

        assert "• Extra granted: 20,000" in text
        assert "• Held for your running request: 8,192" in text
        assert "• Remaining: 86,808" in text
        assert "`▓▓▓░░░░░░░` 28% used" in text

    def test_an_overspent_week_shows_a_full_bar_and_nothing_remaining(self):
        text = usage_text(status(used=100_700), now=NOW)

        assert "`▓▓▓▓▓▓▓▓▓▓` 100% used" in text and "• Remaining: 0" in text

    def test_it_says_when_budgets_are_switched_off(self):
        assert "Budgets are switched off" in usage_text(status(enforced=False), now=NOW)

    @pytest.mark.parametrize(
        ("fraction", "drawn"), [(0, "░" * 10), (0.04, "░" * 10), (0.06, "▓" + "░" * 9), (2, "▓" * 10)]
    )
    def test_the_bar_is_clamped_and_rounded(self, fraction, drawn):
        assert bar(fraction) == drawn


class RefusalTextTests:
    def test_the_budget_refusal_says_used_of_allowance_and_when_it_resets(self):
        text = budget_spent_text(status(used=100_000), now=datetime(2026, 11, 20, 19, 45, tzinfo=UTC))

        assert text == (
            "Your weekly budget is spent: 100,000 of 100,000 tokens. "
            "It resets Monday 23 November at 00:00 UTC (in 2 days 4 hours)."
        )

    def test_the_budget_refusal_counts_what_a_running_request_holds(self):
        text = budget_spent_text(status(used=95_000, reserved=5_000), now=NOW)

        assert text.startswith(
            "Your weekly budget is spent: 100,000 of 100,000 tokens. 5,000 of them are held by your request that is "
            "running now; what it doesn't use comes back when it finishes. It resets Monday 23 November"
        )

    def test_the_budget_refusal_in_another_zone_names_it(self):
        berlin = ZoneInfo("Europe/Berlin")
        text = budget_spent_text(
            status(used=100_000, zone=berlin, resets_at=datetime(2026, 11, 22, 23, tzinfo=UTC)), now=NOW
        )

        assert "It resets Monday 23 November at 00:00 Europe/Berlin (in 1 day 21 hours)." in text

    def test_the_rate_limit_refusal_rounds_the_wait_up(self):
        assert rate_limited_text(limit=10, retry_after=0.2) == (
            "You're sending messages faster than I take them: at most 10 a minute. Try again in 1 second."
        )
        assert rate_limited_text(limit=10, retry_after=41.3).endswith("Try again in 42 seconds.")


@pytest.mark.django_db
class UsageReplyTests:
    def test_it_reports_the_callers_own_week(self):
        alice = personas.discord_user("alice", "1001")
        spend(alice, 1_234)
        grant_tokens(user=alice, amount=500, reason="r")

        text = usage_reply(author=ALICE, role_ids=None)

        assert "• Used: 1,234 tokens" in text and "• Extra granted: 500" in text and "• Remaining: 99,266" in text

    def test_someone_new_gets_the_default_tier(self):
        text = usage_reply(author=DiscordAuthor(id=77, username="newbie", display_name="Newbie"), role_ids=[])

        assert "(Free tier)" in text and "• Remaining: 100,000" in text
        assert ChatUser.objects.filter(external_id="77").exists()

    def test_roles_given_in_a_server_decide_the_tier(self):
        RoleTier.objects.create(role_id="500", tier=tier("admin"))

        assert "(Admin tier)" in usage_reply(author=ALICE, role_ids=[500])
        assert "(Admin tier)" in usage_reply(author=ALICE, role_ids=None)  # a DM keeps the last known roles
        assert "(Free tier)" in usage_reply(author=ALICE, role_ids=[501])

    def test_it_is_registered_with_a_help_line(self):
        assert "bots.commands.usage" in COMMAND_MODULES
        assert any(name == "/usage" for name, _ in COMMAND_HELP)


@pytest.mark.django_db
class RolesAtIntakeTests:
    def submit(self, role_ids, message_id=1):
        return submit_discord_message(
            author=ALICE, channel_id=555, channel_title="t", content="hi", message_id=message_id, role_ids=role_ids
        )

    def test_the_authors_roles_set_their_tier_before_the_budget_check(self):
        RoleTier.objects.create(role_id="500", tier=tier("admin"))
        alice = personas.discord_user("alice", "1001")
        spend(alice, 100_000)  # spent on the free tier, not on the admin tier

        submission = self.submit([500])

        assert submission.request.pk
        assert UserRoleTier.objects.get(user=alice).tier == tier("admin")
        assert budget_status(user=alice).allowance == 500_000

    def test_a_refused_message_does_not_keep_the_role_change(self):
        RoleTier.objects.create(role_id="500", tier=tier("admin"))
        alice = personas.discord_user("alice", "1001")
        self.submit([500])
        alice.banned = True
        alice.save()

        with pytest.raises(Refusal):
            self.submit([], message_id=2)

        assert UserRoleTier.objects.get(user=alice).tier == tier("admin")


@pytest.mark.django_db
class RouterUsageSignalTests:
    def test_what_routing_reports_by_its_signal_is_recorded_as_usage(self):
        """Routing never imports budgets: ``routing.signals.record_usage`` reaches ``budgets.usage`` by a signal."""
        from budgets.models import UsageEntry
        from routing.signals import record_usage

        user = ChatUser.objects.create(platform="discord", external_id="1001", display_name="Alice")
        record_usage(user=user.pk, kind="router", model="gpt-oss:20b", prompt_tokens=30, completion_tokens=2)

        entry = UsageEntry.objects.get(user=user)
        assert (entry.kind, entry.model, entry.prompt_tokens, entry.completion_tokens, entry.total_tokens) == (
            "router",
            "gpt-oss:20b",
            30,
            2,
            32,
        )
