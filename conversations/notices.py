"""Notices about a whole conversation, for the people in it.

A ``thread.*`` event with a ``notice`` text: the bot posts the notice in the
thread's Discord channel (``bots.delivery.thread_notice``), and every other
listener sees what changed. Sent after the transaction commits, like every event.
"""

from __future__ import annotations

from conversations.models import Thread
from trollama import events


def count_messages(count: int) -> str:
    """``"1 message"``, ``"3 messages"``: how every notice about a thread counts what it held."""
    return f"{count} message{'s' if count != 1 else ''}"


def publish_thread_notice(thread: Thread, *, kind: str, notice: str, **details: object) -> None:
    events.publish(
        {
            "type": kind,
            "thread_id": thread.pk,
            "platform": thread.platform,
            "thread_external_id": thread.external_id,
            **details,
            "notice": notice,
        }
    )
