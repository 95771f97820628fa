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
    author_id: int | None = None
    # The author's roles: in the server for a server message; in a DM, those
    # known from the servers the bot shares with them (None: none known).
    role_ids: frozenset[int] | None = None
    replies_to_bot: bool = False  # a reply to one of the bot's own messages


class Access(Enum):
    ALLOWED = "allowed"
    IGNORED = "ignored"  # say nothing
    REFUSED = "refused"  # tell the author why (``AccessPolicy.refusal``)


DMS_OFF = "I don't answer direct messages here. Mention me in a server channel where I'm allowed to talk instead."
OUTSIDE = "I'm not set up to answer in this channel. Ask a server admin where I'm allowed to talk."
BLOCKED = "You can't use me here."
NOT_ALLOWED = (
    "Only some members may talk to me here, and you're not one of them yet. "
    "Ask a server admin to give you an allowed role if you need me."
)


@dataclass(frozen=True)
class AccessPolicy:
    """Who the bot answers where. Empty sets allow everything; a block beats an allow.

    - ``guilds``/``channels``: outside them the bot stays silent (it may sit in
      servers or channels it is not meant for).
    - ``dms``: direct messages answered at all.
    - ``blocked_users``/``blocked_roles``: silently ignored, everywhere. A
      blocked troll who got an answer to every mention could still make the
      bot talk, and would have something to argue with; the owner who blocked
      them knows why.
    - ``allowed_users``/``allowed_roles``: when either is set, only those users
      and members with one of those roles are answered; the rest are told,
      quietly, to ask an admin (most often they just lack the role yet, and
      silence would look like a broken bot).
    """

    guilds: frozenset[int] = frozenset()
    channels: frozenset[int] = frozenset()
    dms: bool = True
    allowed_users: frozenset[int] = frozenset()
    blocked_users: frozenset[int] = frozenset()
    allowed_roles: frozenset[int] = frozenset()
    blocked_roles: frozenset[int] = frozenset()

    def allows(self, facts: MessageFacts) -> bool:
        """The place: a DM, or an allowed server and channel (a thread counts as its parent channel)."""
        if facts.channel is ChannelKind.DM:
            return True
        if self.guilds and facts.guild_id not in self.guilds:
            return False
        return not self.channels or bool({facts.channel_id, facts.parent_channel_id} & self.channels)

    def access(self, facts: MessageFacts) -> Access:
        """Whether the author of a message addressed to the bot may be answered there."""
        roles = facts.role_ids or frozenset()
        if facts.author_id in self.blocked_users or roles & self.blocked_roles:
            return Access.IGNORED
        if facts.channel is ChannelKind.DM and not self.dms:
            return Access.REFUSED
        if not (self.allowed_users or self.allowed_roles):
            return Access.ALLOWED
        if facts.author_id in self.allowed_users or roles & self.allowed_roles:
            return Access.ALLOWED
        return Access.REFUSED

    def command_refusal(self, facts: MessageFacts) -> str | None:
        """What a slash command's caller is told when the rules keep them out, or None when they may use it.

        Unlike a message, a command is answered even when the caller is blocked
        or the place is not allowed: the answer is ephemeral, so only they see
        it, and Discord would otherwise show them "the application did not respond".
        """
        if not self.allows(facts):
            return OUTSIDE
        access = self.access(facts)
        if access is Access.IGNORED:
            return BLOCKED
        return self.refusal(facts) if access is Access.REFUSED else None

    def describe(self) -> str:
        """The rules in a line, for the log: "everyone, everywhere" or what limits them."""
        lists = [
            ("servers", self.guilds),
            ("channels", self.channels),
            ("allowed users", self.allowed_users),
            ("allowed roles", self.allowed_roles),
            ("blocked users", self.blocked_users),
            ("blocked roles", self.blocked_roles),
        ]
        parts = [f"{name} {', '.join(map(str, sorted(ids)))}" for name, ids in lists if ids]
        if not self.dms:
            parts.append("DMs off")
        return "; ".join(parts) or "everyone, everywhere"

    def refusal(self, facts: MessageFacts) -> str:
        """What a refused author is told (``access`` said REFUSED)."""
        return DMS_OFF if facts.channel is ChannelKind.DM and not self.dms else NOT_ALLOWED


# Kept for callers that name the place checks alone.
Allowlist = AccessPolicy


def decide(facts: MessageFacts, *, allowlist: AccessPolicy = AccessPolicy()) -> Intake:
    """What to do with a message; who its author is (``AccessPolicy.access``) is checked after, for those not ignored."""
    if facts.author_is_bot or facts.is_system or not allowlist.allows(facts):
        return Intake.IGNORE
    addressed = (
        facts.channel is ChannelKind.DM
        or facts.mentions_bot
        or facts.replies_to_bot
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


# -- Questions about the server's own past (answered from the knowledge index) -------------------

# Who, in the server, said or took on something: "who said they'd fix…", "who volunteered…".
_WHO_SAID = (
    r"\bwho\s+(?:said|says|mentioned|offered|volunteered|promised|posted|suggested|proposed|agreed|claimed|"
    r"took|picked\s+up|signed\s+up|(?:was|were|is)\s+(?:going|supposed)\s+to)\b"
)
# "we" (or people here) deciding, agreeing, saying: "what did we decide", "did anyone mention", "we agreed".
_PEOPLE = r"(?:we|y'?all|you\s+guys|everyone|anyone|anybody|someone|somebody|the\s+team|the\s+mods|the\s+admins)"
_SAY = (
    r"(?:decide|agree|say|mention|plan|pick|choose|settle|discuss|talk|announce|vote|conclude|post|share|suggest|"
    r"recommend|promise)"
)
_SAID = (
    r"(?:decided|agreed|said|mentioned|planned|picked|chose|settled|discussed|talked|announced|voted|concluded|"
    r"posted|shared|suggested|recommended|promised)"
)
_WE_DECIDED = (
    rf"\b(?:did|have|has|had)\s+{_PEOPLE}\s+(?:\w+\s+)?(?:{_SAY}|{_SAID})\b|\b{_PEOPLE}\s+(?:all\s+)?{_SAID}\b"
)
# "what was decided / announced", "was it agreed".
_WAS_DECIDED = r"\b(?:what|which|when|where|how)\s+(?:was|were|has\s+been|had\s+been)\s+(?:it\s+)?(?:decided|agreed|announced|said|mentioned|planned|posted|discussed|settled|chosen)\b|\bwas\s+it\s+(?:decided|agreed|announced|said|mentioned)\b"
# The community's own calendar: "the next community event", "our next meetup".
_EVENTS = (
    r"(?:event|meetup|meet-up|meeting|game\s+night|movie\s+night|stream|call|tournament|hangout|session|raid|quiz)"
)
_OUR_NEXT = rf"\b(?:our|the)\s+(?:next|upcoming)\s+(?:community\s+|server\s+|group\s+|team\s+)?{_EVENTS}s?\b"
# Said here: "in this server", "in #general", "in this channel", "earlier today".
_SAID_HERE = (
    r"\b(?:said|mentioned|posted|discussed|announced|decided|agreed|shared)\s+(?:\w+\s+)?"
    r"(?:in\s+(?:this|the)\s+(?:server|channel|discord|chat)|here|in\s+#\S+|<#\d+>)"
)
_SERVER_PAST = re.compile("|".join(f"(?:{p})" for p in (_WHO_SAID, _WE_DECIDED, _WAS_DECIDED, _OUR_NEXT, _SAID_HERE)))


def asks_about_the_server(content: str) -> bool:
    """Whether a message to the bot clearly asks about what was said or decided in the server.

    A cheap rule, tuned for precision: only phrasings that point at the
    server's people or its own past ("what did we decide about…", "who said
    they'd fix…", "when is the next community event?") count. A general
    question with the same topic words ("what is a release date in semver?")
    does not. The caller also needs an indexed channel the member can read
    before it answers from the index.
    """
    text = " ".join(
        strip_mentions(_ANY_MENTION.sub(lambda m: m.group(0) if m.group(1) == "#" else "", content)).split()
    )
    return bool(_SERVER_PAST.search(text.lower()))
