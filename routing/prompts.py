"""The system prompt, composed in one place.

Order: who the assistant is, how Discord renders text, the route's own
prompt, the server's and channel's instructions, extra instructions from
other capabilities (e.g. file formats), and today's date. The result is stored
on the request, so the console shows exactly what the model was told.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from conversations.models import Platform, Thread
from routing.models import Route, ServerInstructions

BASE_ROLE = (
    "You are Trollama, an assistant that answers people in a Discord community. Be accurate and helpful, "
    "and say so when you are unsure instead of guessing."
)

DISCORD_FORMATTING = (
    "Format for Discord: Markdown with short paragraphs, bullet lists and **bold**; no tables and no LaTeX "
    "(Discord shows them raw); headings only with #, ## or ###; code in fenced blocks with a language."
)

PLAIN_FORMATTING = "Format with plain Markdown: short paragraphs, lists, and fenced code blocks with a language."


def server_instructions(thread: Thread) -> list[str]:
    """The admin's instructions for the thread's server, then for its channel (or the thread itself)."""
    if not thread.guild_id:
        return []
    places = {thread.parent_channel_id, thread.external_id} - {""}
    rows = ServerInstructions.objects.filter(guild_id=thread.guild_id, enabled=True).filter(
        Q(channel_id="") | Q(channel_id__in=places)
    )
    # The whole server's rules first, then the narrower channel's.
    return [row.instructions.strip() for row in sorted(rows, key=lambda row: row.channel_id != "")]


def compose_system_prompt(
    *, route: Route, thread: Thread, now: datetime | None = None, extra: Sequence[str] = ()
) -> str:
    now = timezone.localtime(now or timezone.now())
    formatting = DISCORD_FORMATTING if thread.platform == Platform.DISCORD else PLAIN_FORMATTING
    parts = [
        BASE_ROLE,
        formatting,
        route.system_prompt.strip(),
        *server_instructions(thread),
        *(text.strip() for text in extra),
        f"Today is {now:%A, %d %B %Y} ({now.tzname()}).",
    ]
    return "\n\n".join(part for part in parts if part)
