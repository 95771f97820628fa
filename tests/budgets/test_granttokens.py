"""``manage.py granttokens USER AMOUNT --reason TEXT [--expires DATE]``."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from budgets.models import Grant
from conversations.models import Platform
from pipeline.services import get_or_create_chat_user
from tests import personas


def run(*args: str) -> str:
    out = StringIO()
    call_command("granttokens", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class GrantTokensCommandTests:
    def test_it_grants_to_a_discord_id_and_reports_what_is_left(self):
        alice = personas.discord_user("alice", "1001")

        output = run("1001", "50,000", "--reason", "helped test the bot")

        grant = Grant.objects.get()
        assert (grant.user, grant.amount, grant.reason, grant.expires_at, grant.granted_by) == (
            alice,
            50_000,
            "helped test the bot",
            None,
            None,
        )
        assert output.startswith("Granted 50,000 tokens to alice (Discord, id 1001) with no expiry.")
        assert "They have 150,000 of 150,000 tokens left this week." in output

    def test_it_finds_a_discord_username_and_a_local_username(self):
        alice, bob = personas.discord_user("Alice", "1001"), personas.local_user("bob")

        run("alice", "10", "--reason", "r")
        run("@bob", "20", "--reason", "r")

        assert {(g.user, g.amount) for g in Grant.objects.all()} == {(alice, 10), (bob, 20)}

    def test_an_expiry_date_ends_the_grant_at_midnight_in_budget_timezone(self, settings):
        settings.BUDGET_TIMEZONE = "Europe/Berlin"
        personas.discord_user()

        output = run("alice", "100", "--reason", "r", "--expires", "2099-07-01")

        assert Grant.objects.get().expires_at == datetime(2099, 6, 30, 22, tzinfo=UTC)
        assert "until Wednesday 1 July at 00:00 Europe/Berlin" in output

    def test_it_records_the_operator_given_with_by(self):
        admin = personas.staff_admin()
        personas.discord_user()

        run("alice", "100", "--reason", "r", "--by", admin.username)

        assert Grant.objects.get().granted_by == admin

    def test_an_ambiguous_name_lists_the_matches_and_grants_nothing(self):
        personas.discord_user("sam", "1001")
        get_or_create_chat_user(platform=Platform.LOCAL, external_id="sam", username="sam")

        with pytest.raises(CommandError) as error:
            run("sam", "100", "--reason", "r")

        assert error.value.returncode == 2
        message = str(error.value)
        assert "'sam' matches 2 chat users:" in message
        assert "sam (Discord, id 1001)" in message and "sam (Local terminal, id sam)" in message
        assert "Give the Discord id" in message
        assert not Grant.objects.exists()

    # argparse's own errors (a bad amount) have returncode 1 under call_command and exit 2 from a shell.
    @pytest.mark.parametrize(
        ("args", "error", "code"),
        [
            (["nobody", "100", "--reason", "r"], "No chat user matches 'nobody'", 2),
            (["alice", "0", "--reason", "r"], "positive number of tokens", 1),
            (["alice", "many", "--reason", "r"], "'many' is not a whole number", 1),
            (["alice", "100", "--reason", "  "], "Give a reason", 2),
            (["alice", "100", "--reason", "r", "--expires", "next week"], "--expires 'next week' is not a date", 2),
            (["alice", "100", "--reason", "r", "--expires", "2001-01-01"], "The expiry is in the past", 2),
            (["alice", "100", "--reason", "r", "--by", "ghost"], "no admin account called 'ghost'", 2),
        ],
    )
    def test_bad_input_is_refused_clearly_and_grants_nothing(self, args, error, code):
        personas.discord_user()

        with pytest.raises(CommandError) as refused:
            run(*args)

        assert error in str(refused.value)
        assert refused.value.returncode == code
        assert not Grant.objects.exists()
