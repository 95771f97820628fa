"""Which Discord messages become turns: pure decisions, no discord.py objects.

The client turns a ``discord.Message`` into ``MessageFacts`` and acts on the
returned ``Intake``; keeping the rules here lets them be tested as plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

# Discord's limit for a thread name.
THREAD_NAME_LIMIT = 100
CANCEL_WORDS = frozenset({"cancel", "stop"})


class ChannelKind(Enum):
    TEXT = "text"
    THREAD = "thread"
    DM = "dm"
    OTHER = "other"


class Intake(Enum):
    IGNORE = "ignore"
    START_THREAD = "start_thread"  # mention in a text channel: answer in a new thread
    TURN = "turn"  # answer where the message was written
    CANCEL = "cancel"  # "cancel" / "stop" in a conversation with a running request


@dataclass(frozen=True)
class MessageFacts:
    author_is_bot: bool
    is_system: bool
    mentions_bot: bool  # the bot itself, not @everyone/@here or a role
    channel: ChannelKind
    in_thread_started_by_bot: bool = False
    guild_id: int | None = None
    channel_id: int | None = None
    parent_channel_id: int | None = None
    content: str = ""


@dataclass(frozen=True)
class Allowlist:
    """Empty sets allow everything."""

    guilds: frozenset[int] = frozenset()
    channels: frozenset[int] = frozenset()

    def allows(self, facts: MessageFacts) -> bool:
        if facts.channel is ChannelKind.DM:
            return True
        if self.guilds and facts.guild_id not in self.guilds:
            return False
        return not self.channels or bool({facts.channel_id, facts.parent_channel_id} & self.channels)


def decide(facts: MessageFacts, *, allowlist: Allowlist = Allowlist()) -> Intake:
    if facts.author_is_bot or facts.is_system or not allowlist.allows(facts):
        return Intake.IGNORE
    addressed = (
        facts.channel is ChannelKind.DM
        or facts.mentions_bot
        or (facts.channel is ChannelKind.THREAD and facts.in_thread_started_by_bot)
    )
    if not addressed:
        return Intake.IGNORE
    if strip_mentions(facts.content).strip().lower().rstrip(".!") in CANCEL_WORDS:
        return Intake.CANCEL
    if facts.channel is ChannelKind.TEXT:
        return Intake.START_THREAD
    if facts.channel in (ChannelKind.THREAD, ChannelKind.DM):
        return Intake.TURN
    return Intake.IGNORE


_MENTION = re.compile(r"<@!?\d+>")


def strip_mentions(content: str) -> str:
    """The text without user mentions (the bot's own mention starts most turns)."""
    return _MENTION.sub("", content).strip()


def thread_name(content: str) -> str:
    """A thread title from the first words of the message, within Discord's limit."""
    words = " ".join(strip_mentions(content).split())
    if not words:
        return "Conversation"
    if len(words) <= THREAD_NAME_LIMIT:
        return words
    cut = words[: THREAD_NAME_LIMIT - 1]
    if " " in cut[THREAD_NAME_LIMIT // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut + "…"
