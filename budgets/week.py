"""The budget week and how long until it resets. Pure: no Django state.

A week starts Monday 00:00 local time in the budget's time zone. It is
computed from the calendar, never by adding 168 hours, so a week that
contains a daylight-saving change is 167 or 169 hours long, as on the wall
clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant ``day`` begins in ``zone``, in UTC.

    Where a zone skips midnight (e.g. America/Havana springs forward at 00:00),
    zoneinfo reads the missing 00:00 with the offset in force before the
    change (PEP 495, fold=0), which is exactly the instant the day began.
    """
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def week_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """The Monday 00:00 (in ``zone``) at or before ``moment``, in UTC."""
    local = moment.astimezone(zone)
    return local_midnight(local.date() - timedelta(days=local.weekday()), zone)


def next_reset(moment: datetime, zone: ZoneInfo) -> datetime:
    """The Monday 00:00 (in ``zone``) strictly after ``moment``, in UTC."""
    local = moment.astimezone(zone)
    return local_midnight(local.date() + timedelta(days=7 - local.weekday()), zone)


def countdown(delta: timedelta) -> str:
    """``2 days 4 hours``, ``3 hours 12 minutes``, ``5 minutes``: two units at most, rounded down."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    units = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    first = next(index for index, (amount, _) in enumerate(units) if amount)
    shown = [(amount, name) for amount, name in units[first : first + 2] if amount]
    return " ".join(f"{amount} {name}{'' if amount == 1 else 's'}" for amount, name in shown)


def reset_moment(reset: datetime, zone: ZoneInfo) -> str:
    """``Monday 23 November at 00:00 UTC``: true whenever it is read, so it can be stored."""
    local = reset.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M} {zone.key}"


def reset_phrase(reset: datetime, zone: ZoneInfo, *, now: datetime) -> str:
    """``Monday 23 November at 00:00 UTC (in 2 days 4 hours)``."""
    return f"{reset_moment(reset, zone)} (in {countdown(reset - now)})"
