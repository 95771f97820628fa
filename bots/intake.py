"""Which Discord messages become turns: pure decisions, no discord.py objects.

The client turns a ``discord.Message`` into ``MessageFacts`` and acts on the
returned ``Intake``; keeping the rules here lets them be tested as plain data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
# Discord's markup for mentions in a message's text: a user (``!`` in old clients), a role, a channel.
_ANY_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")


def strip_mentions(content: str) -> str:
    """The text without user mentions (the bot's own mention starts most turns)."""
    return _MENTION.sub("", content).strip()


def mention_ids(content: str) -> list[tuple[str, int]]:
    """Every mention in the text as ``(kind, id)``: kind ``@`` a user, ``@&`` a role, ``#`` a channel."""
    return [("@" if kind == "@!" else kind, int(ident)) for kind, ident in _ANY_MENTION.findall(content)]


@dataclass(frozen=True)
class Person:
    """A Discord user as a message shows them: the name people see, and their unique username."""

    display_name: str
    username: str


def person_labels(people: Mapping[int, Person]) -> dict[int, str]:
    """``@Name`` for each person; people who share a display name get their username after it.

    The username is unique on Discord and stays the same from message to
    message, so the model can tell ``@Sam (sam_k)`` from ``@Sam (samuel)``.
    """
    holders: dict[str, set[int]] = {}
    for user_id, person in people.items():
        holders.setdefault(person.display_name.casefold(), set()).add(user_id)
    labels = {}
    for user_id, person in people.items():
        shared = len(holders[person.display_name.casefold()]) > 1
        labels[user_id] = f"@{person.display_name} ({person.username})" if shared else f"@{person.display_name}"
    return labels


def readable_mentions(
    content: str,
    *,
    bot_id: int | None,
    people: Mapping[int, Person],
    roles: Mapping[int, str],
    channels: Mapping[int, str],
) -> str:
    """The message's text for the model: the bot's own mention removed, every other mention readable.

    Users become ``@Name`` (see ``person_labels``: ``people`` should hold the
    author too, so a mentioned namesake of theirs is told apart), roles
    ``@Role``, channels ``#channel``. A mention of someone or something not
    in the maps stays as Discord wrote it.
    """
    labels = person_labels(people)

    def readable(match: re.Match[str]) -> str:
        kind, ident = match.group(1), int(match.group(2))
        if kind == "@&":
            return f"@{roles[ident]}" if ident in roles else match.group(0)
        if kind == "#":
            return f"#{channels[ident]}" if ident in channels else match.group(0)
        if ident == bot_id:
            return ""
        return labels.get(ident, match.group(0))

    return _ANY_MENTION.sub(readable, content).strip()


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
