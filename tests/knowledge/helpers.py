"""Making indexed channels and messages the way the bot records them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from knowledge import services
from knowledge.services import SeenMessage

GUILD = 900_000_000_000_000_001
_ids = itertools.count(1_300_000_000_000_000_000)


def index_channel(channel_id: int, name: str = "general", *, guild_id: int = GUILD) -> None:
    services.set_indexing(guild_id=guild_id, channel_id=channel_id, name=name, on=True, by="test")


def said(
    text: str,
    *,
    channel_id: int,
    author_id: int = 1,
    author: str = "Alice",
    at: datetime | None = None,
    posted_in: int | None = None,
    guild_id: int = GUILD,
) -> SeenMessage:
    return SeenMessage(
        message_id=next(_ids),
        channel_id=channel_id,
        posted_in=posted_in or channel_id,
        guild_id=guild_id,
        author_id=author_id,
        author_name=author,
        created_at=at or timezone.now() - timedelta(hours=1),
        text=text,
    )
