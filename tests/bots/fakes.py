"""Plain fakes of the discord.py objects the bot's handlers touch.

Only the attributes and coroutines the handlers use exist, so a handler that
starts using something new fails loudly here instead of passing on a mock.
Every call that would reach Discord is recorded on the fake it was made on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import discord

_ids = itertools.count(10_000)
# Every message a fake channel holds, by id, as Discord would find it.
_messages: dict[int, Any] = {}


def next_id() -> int:
    return next(_ids)


@dataclass(eq=False)
class FakeUser:
    name: str
    id: int = field(default_factory=next_id)
    bot: bool = False
    guild: FakeGuild | None = None  # set for guild members
    moderator: bool = False
    roles: list[FakeRole] = field(default_factory=list)  # a member's roles in its guild

    @property
    def display_name(self) -> str:
        return self.name.title()

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeUser) and other.id == self.id

    def __hash__(self) -> int:
        return self.id


@dataclass(frozen=True)
class FakeRole:
    id: int


@dataclass(eq=False)
class FakeGuild:
    id: int = field(default_factory=next_id)
    filesize_limit: int = 10 * 1024 * 1024

    def get_role(self, role_id: int) -> None:
        return None  # the fakes' roles carry no names: a role mention stays as written

    def get_member(self, user_id: int) -> None:
        return None


@dataclass
class Permissions:
    manage_messages: bool
    manage_threads: bool


@dataclass(eq=False)
class FakeSentMessage:
    """A message the bot sent; ``content`` is what Discord shows now."""

    channel: FakeChannel
    content: str
    id: int = field(default_factory=next_id)
    deleted: bool = False
    edits: int = 0

    def __post_init__(self) -> None:
        _messages[self.id] = self

    async def edit(self, *, content: str, allowed_mentions: Any = None) -> None:
        if self.deleted:
            raise discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), "Unknown Message")
        self.content = content
        self.edits += 1
        self.channel.changed.set()

    async def delete(self) -> None:
        self.deleted = True


@dataclass(eq=False)
class FakeChannel:
    type: discord.ChannelType
    name: str = "general"
    guild: FakeGuild | None = None
    owner_id: int | None = None  # threads: who started it
    parent_id: int | None = None  # threads: the channel it is in
    id: int = field(default_factory=next_id)
    sent: list[FakeSentMessage] = field(default_factory=list)
    typing_sessions: int = 0
    archived: bool = False
    locked: bool = False
    may_manage_threads: bool = True  # the bot's permission here: without it, locking is Forbidden
    edits: int = 0  # attempts to change the channel itself, refused ones included
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def edit(self, *, archived: bool | None = None, locked: bool | None = None) -> FakeChannel:
        self.edits += 1
        self.changed.set()
        if not self.may_manage_threads:
            raise discord.Forbidden(SimpleNamespace(status=403, reason="Forbidden"), "Missing Permissions")
        self.archived = self.archived if archived is None else archived
        self.locked = self.locked if locked is None else locked
        self.changed.set()
        return self

    async def send(self, content: str, *, allowed_mentions: Any = None, **_: Any) -> FakeSentMessage:
        message = FakeSentMessage(self, content)
        self.sent.append(message)
        self.changed.set()
        return message

    async def wait_until(self, condition: Callable[[FakeChannel], bool]) -> None:
        """Return once ``condition(self)`` holds, re-checking after every send or edit."""
        while not condition(self):
            self.changed.clear()
            await self.changed.wait()

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        self.typing_sessions += 1
        yield

    def get_partial_message(self, message_id: int) -> Any:
        """The message with that id in this channel, as discord.py's PartialMessage stands for it."""
        message = _messages.get(message_id)
        if message is None or message.channel is not self:
            return FakeSentMessage(self, "", id=message_id, deleted=True)  # Discord would answer 404
        return message

    def permissions_for(self, member: FakeUser) -> Permissions:
        return Permissions(manage_messages=member.moderator, manage_threads=member.moderator)

    @property
    def shown(self) -> list[str]:
        """What a user scrolling the channel sees from the bot, in order."""
        return [message.content for message in self.sent if not message.deleted]


@dataclass(eq=False)
class FakeMessage:
    """A message someone sent, as ``on_message`` receives it."""

    author: FakeUser
    content: str
    channel: FakeChannel
    mentions: list[FakeUser] = field(default_factory=list)
    type: discord.MessageType = discord.MessageType.default
    id: int = field(default_factory=next_id)
    reactions: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    threads: list[FakeChannel] = field(default_factory=list)
    attachments: list[Any] = field(default_factory=list)
    role_mentions: list[Any] = field(default_factory=list)
    reference: Any = None  # a discord.MessageReference when it replies to a message

    def __post_init__(self) -> None:
        _messages[self.id] = self

    @property
    def guild(self) -> FakeGuild | None:
        return self.channel.guild

    async def create_thread(self, *, name: str, auto_archive_duration: int = 1440) -> FakeChannel:
        thread = FakeChannel(
            id=self.id,  # as in Discord: a thread started from a message has the message's id
            type=discord.ChannelType.public_thread,
            name=name,
            guild=self.channel.guild,
            owner_id=self.threads_owner_id,
            parent_id=self.channel.id,
        )
        self.threads.append(thread)
        return thread

    threads_owner_id: int | None = None  # the bot's id, set by the world that made the message

    async def reply(self, content: str, *, allowed_mentions: Any = None) -> None:
        self.replies.append(content)

    async def add_reaction(self, emoji: str) -> None:
        self.reactions.append(emoji)

    async def remove_reaction(self, emoji: str, member: Any) -> None:
        if emoji in self.reactions:
            self.reactions.remove(emoji)


@dataclass
class FakeResponse:
    log: list[str]
    done: bool = False

    def is_done(self) -> bool:
        return self.done

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> None:
        assert not self.done, "an interaction can be acknowledged only once"
        self.done = True
        self.log.append(f"defer(ephemeral={ephemeral})")

    async def send_message(self, content: str, *, ephemeral: bool = False) -> None:
        assert not self.done, "an interaction can be acknowledged only once"
        self.done = True
        self.log.append(f"send_message(ephemeral={ephemeral}): {content}")


@dataclass
class FakeFollowup:
    log: list[str]

    async def send(self, content: str, *, ephemeral: bool = False, allowed_mentions: Any = None) -> None:
        self.log.append(f"followup(ephemeral={ephemeral}): {content}")


class FakeInteraction:
    """A slash-command invocation. ``log`` lists every reply, in order."""

    def __init__(self, user: FakeUser, channel: FakeChannel) -> None:
        self.user = user
        self.channel = channel
        self.channel_id = channel.id
        self.guild = channel.guild
        self.command = None
        self.log: list[str] = []
        self.response = FakeResponse(self.log)
        self.followup = FakeFollowup(self.log)

    async def delete_original_response(self) -> None:
        self.log.append("delete_original_response()")

    @property
    def replies(self) -> list[str]:
        return [entry.split(": ", 1)[1] for entry in self.log if ": " in entry]
