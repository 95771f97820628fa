"""The budget settings: defaults, values from the environment, and bad values."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.trollama.test_settings import load

BUDGET_VARIABLES = [
    "FREE_TIER_WEEKLY_BUDGET",
    "ADMIN_TIER_WEEKLY_BUDGET",
    "BUDGET_TIMEZONE",
    "DISABLE_TOKEN_BUDGET",
    "RATE_LIMIT_PER_MINUTE",
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in BUDGET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


class BudgetSettingsTests:
    def test_the_defaults(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path)

        assert [settings[name] for name in BUDGET_VARIABLES] == [100_000, 500_000, "UTC", False, 10]

    def test_values_from_the_environment(self, monkeypatch, tmp_path):
        settings = load(
            monkeypatch,
            tmp_path,
            FREE_TIER_WEEKLY_BUDGET="20000",
            ADMIN_TIER_WEEKLY_BUDGET="1000000",
            BUDGET_TIMEZONE="Europe/Berlin",
            DISABLE_TOKEN_BUDGET="true",
            RATE_LIMIT_PER_MINUTE="0",
        )

        assert [settings[name] for name in BUDGET_VARIABLES] == [20_000, 1_000_000, "Europe/Berlin", True, 0]

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("FREE_TIER_WEEKLY_BUDGET", "lots"),
            ("ADMIN_TIER_WEEKLY_BUDGET", "-5"),
            ("BUDGET_TIMEZONE", "Mars/Olympus_Mons"),
            ("DISABLE_TOKEN_BUDGET", "perhaps"),
            ("RATE_LIMIT_PER_MINUTE", "-1"),
        ],
    )
    def test_a_bad_value_stops_start_up_naming_the_variable(self, monkeypatch, tmp_path, variable, value):
        with pytest.raises(ImproperlyConfigured, match=variable):
            load(monkeypatch, tmp_path, **{variable: value})
