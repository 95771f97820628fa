from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template

from console.navigation import SECTIONS

register = template.Library()


@register.inclusion_tag("console/_nav.html", takes_context=True)
def console_nav(context: template.Context) -> dict[str, Any]:
    return {"sections": SECTIONS, "current": context.get("section"), "user": context.get("user")}


@register.filter
def seconds(value: timedelta | float | None) -> str:
    """A duration as "0.42 s" or "12.3 s": the unit the console reports latencies in."""
    if value is None:
        return "—"
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return f"{total:.2f} s" if total < 10 else f"{total:.1f} s"
