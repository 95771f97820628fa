"""The budget week: Monday 00:00 in the budget's time zone, across zones and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from budgets.week import countdown, local_midnight, next_reset, reset_phrase, week_start

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class WeekStartTests:
    def test_a_week_starts_monday_midnight_utc_by_default(self):
        assert week_start(utc(2026, 11, 21, 1, 30), UTC_ZONE) == utc(2026, 11, 16)
        assert next_reset(utc(2026, 11, 21, 1, 30), UTC_ZONE) == utc(2026, 11, 23)

    def test_monday_midnight_itself_belongs_to_the_new_week(self):
        assert week_start(utc(2026, 11, 23), UTC_ZONE) == utc(2026, 11, 23)
        assert next_reset(utc(2026, 11, 23), UTC_ZONE) == utc(2026, 11, 30)
        assert week_start(utc(2026, 11, 22, 23, 59, 59), UTC_ZONE) == utc(2026, 11, 16)

    def test_the_same_instant_is_in_different_weeks_in_different_zones(self):
        # Sunday 23:30 UTC is already Monday 00:30 in Berlin, and still Sunday in New York.
        moment = utc(2026, 11, 22, 23, 30)

        assert week_start(moment, BERLIN) == utc(2026, 11, 22, 23)  # Monday 00:00 CET
        assert week_start(moment, NEW_YORK) == utc(2026, 11, 16, 5)  # Monday 00:00 EST
        assert week_start(moment, UTC_ZONE) == utc(2026, 11, 16)

    def test_a_week_with_the_spring_dst_change_is_167_hours_long(self):
        # Berlin moves to summer time on Sunday 29 March 2026.
        moment = utc(2026, 3, 27, 12)

        start, reset = week_start(moment, BERLIN), next_reset(moment, BERLIN)

        assert start == utc(2026, 3, 22, 23)  # Monday 23 March 00:00 CET (+1)
        assert reset == utc(2026, 3, 29, 22)  # Monday 30 March 00:00 CEST (+2)
        assert reset - start == timedelta(hours=167)
        assert reset.astimezone(BERLIN).hour == 0

    def test_a_week_with_the_autumn_dst_change_is_169_hours_long(self):
        moment = utc(2026, 10, 28, 12)  # New York falls back on Sunday 1 November 2026

        start, reset = week_start(moment, NEW_YORK), next_reset(moment, NEW_YORK)

        assert reset - start == timedelta(hours=169)
        assert (start.astimezone(NEW_YORK).hour, reset.astimezone(NEW_YORK).hour) == (0, 0)

    def test_a_day_whose_midnight_is_skipped_begins_at_the_change(self):
        havana = ZoneInfo("America/Havana")  # springs forward at 00:00 → 01:00 on Sunday 8 March 2026

        begins = local_midnight(date(2026, 3, 8), havana)

        assert begins == utc(2026, 3, 8, 5)
        assert begins.astimezone(havana).hour == 1
        assert (begins - timedelta(seconds=1)).astimezone(havana).day == 7

    @pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
    def test_every_instant_lies_in_its_week(self, zone):
        tz = ZoneInfo(zone)
        moment = utc(2026, 1, 1)
        while moment < utc(2027, 1, 1):
            start, reset = week_start(moment, tz), next_reset(moment, tz)
            assert start <= moment < reset
            assert start.astimezone(tz).weekday() == 0 and reset.astimezone(tz).weekday() == 0
            moment += timedelta(hours=7, minutes=13)


class CountdownTests:
    @pytest.mark.parametrize(
        ("delta", "text"),
        [
            (timedelta(days=2, hours=4, minutes=59), "2 days 4 hours"),
            (timedelta(days=1), "1 day"),
            (timedelta(days=1, minutes=5), "1 day"),
            (timedelta(hours=3, minutes=12), "3 hours 12 minutes"),
            (timedelta(hours=1, minutes=1), "1 hour 1 minute"),
            (timedelta(minutes=5, seconds=30), "5 minutes"),
            (timedelta(seconds=59), "less than a minute"),
        ],
    )
    def test_it_shows_at_most_two_units_rounded_down(self, delta, text):
        assert countdown(delta) == text

    def test_the_reset_phrase_names_the_day_the_date_the_local_time_and_the_zone(self):
        now = utc(2026, 11, 21, 1, 30)

        assert reset_phrase(utc(2026, 11, 23), UTC_ZONE, now=now) == (
            "Monday 23 November at 00:00 UTC (in 1 day 22 hours)"
        )
        assert reset_phrase(utc(2026, 11, 22, 23), BERLIN, now=now).startswith(
            "Monday 23 November at 00:00 Europe/Berlin"
        )
