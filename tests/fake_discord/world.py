"""What the fake Discord knows: users, one guild with its roles, channels and threads, DMs, messages.

Plain data and payload builders, no I/O. Every ``*_payload`` function returns
the JSON Discord's API v10 would send for that object, with the fields
discord.py 2.7 reads (``discord/types/*.py`` lists them); the server sends
these over REST and the gateway alike.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
GUILD_TEXT, DM, PUBLIC_THREAD, PRIVATE_THREAD = 0, 1, 11, 12
THREAD_TYPES = frozenset({PUBLIC_THREAD, PRIVATE_THREAD, 10})

# Message types and flags.
DEFAULT, REPLY, CHAT_INPUT_COMMAND = 0, 19, 20
HAS_THREAD, EPHEMERAL, LOADING = 1 << 5, 1 << 6, 1 << 7

# Permission bits.
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
MANAGE_THREADS = 1 << 34
# View, send, embed, attach, read history, react, create public threads, send in
# threads, manage threads (to lock a closed conversation): what the README's invite link grants the bot.
BOT_PERMISSIONS = 326_417_632_320
# The same for everyone, plus using application commands.
EVERYONE_PERMISSIONS = 311_385_246_784
MODERATOR_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES | MANAGE_THREADS
MANAGE_GUILD = 1 << 5


class Snowflakes:
    """Real Discord ids: the creation time in the top bits, so discord.py's ``snowflake_time`` works."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._increment = itertools.count()
        self._past: set[int] = set()

    def __call__(self) -> int:
        with self._lock:
            candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22 | (next(self._increment) & 0xFFF)
            self._last = max(candidate, self._last + 1)
            return self._last

    def at(self, epoch: float) -> int:
        """An id made at ``epoch`` (in the past), for history that predates the test."""
        with self._lock:
            candidate = (int(epoch * 1000) - DISCORD_EPOCH_MS) << 22 | (next(self._increment) & 0xFFF)
            while candidate in self._past:
                candidate += 1
            self._past.add(candidate)
            return candidate


def iso(epoch: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC).isoformat()


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class Member:
    user: User
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso)

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class Role:
    id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class Channel:
    """A guild text channel, a thread (``parent_id`` set) or a DM (``recipient`` set)."""

    id: int
    type: int
    name: str = ""
    guild_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    recipient: User | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    last_message_id: int | None = None
    message_count: int = 0
    position: int = 0
    created_at: float = field(default_factory=time.time)
    archived_at: float | None = None
    # Discord's permission overwrites: {"id", "type" (0 role, 1 member), "allow", "deny"} (bit sets as strings).
    overwrites: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    def payload(self) -> dict[str, Any]:
        last = str(self.last_message_id) if self.last_message_id else None
        if self.is_dm:
            assert self.recipient is not None
            return {"id": str(self.id), "type": DM, "last_message_id": last, "recipients": [self.recipient.payload()]}
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "last_message_id": last,
            "rate_limit_per_user": 0,
            "flags": 0,
            "nsfw": False,
        }
        if self.is_thread:
            data.update(
                parent_id=str(self.parent_id),
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=1,
                thread_metadata={
                    "archived": self.archived,
                    "locked": self.locked,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": iso(self.archived_at or self.created_at),
                    "create_timestamp": iso(self.created_at),
                },
            )
        else:
            data.update(
                position=self.position,
                permission_overwrites=list(self.overwrites),
                parent_id=None,
                topic=None,
                default_auto_archive_duration=1440,
            )
        return data


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    url: str

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
        }


@dataclass
class Edit:
    """One version of a message: what it said from ``at`` (``time.monotonic()``) on."""

    at: float
    content: str


@dataclass
class Message:
    id: int
    channel_id: int
    author: User
    content: str
    guild_id: int | None = None
    type: int = DEFAULT
    flags: int = 0
    mentions: list[User] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    reference: Message | None = None
    embeds: list[dict[str, Any]] = field(default_factory=list)
    reactions: dict[str, set[int]] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    edited_at: float | None = None
    deleted: bool = False
    thread_id: int | None = None
    interaction_id: int | None = None  # set on an interaction's responses
    history: list[Edit] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append(Edit(time.monotonic(), self.content))

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def edits(self) -> list[Edit]:
        """The versions after the first, each one edit."""
        return self.history[1:]

    def set_content(self, content: str) -> None:
        self.content = content
        self.edited_at = time.time()
        self.history.append(Edit(time.monotonic(), content))

    def payload(self, world: World, *, nested: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [world.mention_payload(user, self.guild_id) for user in self.mentions],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
            "components": [],
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
            member = world.members.get(self.author.id)
            if member is not None:
                data["member"] = member.payload(with_user=False)
        if self.reactions:
            data["reactions"] = [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": world.bot.id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for emoji, users in self.reactions.items()
                if users
            ]
        if self.reference is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": str(self.reference.id),
                "channel_id": str(self.reference.channel_id),
                **({"guild_id": str(self.guild_id)} if self.guild_id else {}),
            }
            if not nested:
                data["referenced_message"] = (
                    None if self.reference.deleted else self.reference.payload(world, nested=True)
                )
        if self.thread_id is not None and not nested:
            thread = world.channels.get(self.thread_id)
            if thread is not None:
                data["thread"] = thread.payload()
        if self.interaction_id is not None:
            data["interaction_metadata"] = {
                "id": str(self.interaction_id),
                "type": 2,
                "user": self.author.payload(),
                "authorizing_integration_owners": {},
            }
        return data


class World:
    """The state of the fake Discord; the server holds its lock around every change."""

    def __init__(self, *, base_url: str, bot_name: str = "Trollama") -> None:
        self.base_url = base_url
        self.next_id = Snowflakes()
        self.bot = User(self.next_id(), bot_name, bot=True)
        self.application_id = self.bot.id  # as for every bot made in the Developer Portal
        self.owner = User(self.next_id(), "owner")
        self.guild_id = self.next_id()
        self.guild_name = "Trollama Test Server"
        self.everyone = Role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS)
        self.moderator_role = Role(self.next_id(), "Moderator", MODERATOR_PERMISSIONS, position=2)
        self.bot_role = Role(self.next_id(), bot_name, BOT_PERMISSIONS, position=1)
        self.roles = [self.everyone, self.moderator_role, self.bot_role]
        self.users: dict[int, User] = {}
        self.members: dict[int, Member] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self._dms: dict[int, int] = {}  # user id -> DM channel id
        self.add_user(self.bot, roles=[self.bot_role.id])
        self.add_user(self.owner)
        self.alice = self.add_user(User(self.next_id(), "alice", global_name="Alice"))
        self.bob = self.add_user(User(self.next_id(), "bob", global_name="Bob"))
        self.mod = self.add_user(User(self.next_id(), "mod", global_name="Mod"), roles=[self.moderator_role.id])
        self.general = self.add_channel("general")
        self.random = self.add_channel("random")
        # A thread someone else started, which the bot can see but did not open.
        self.side_thread = self.add_thread(self.general.id, "side talk", owner=self.alice)

    # -- building -------------------------------------------------------------

    def add_user(self, user: User, *, roles: list[int] | None = None, member: bool = True) -> User:
        self.users[user.id] = user
        if member:
            self.members[user.id] = Member(user, roles=list(roles or []))
        return user

    def add_channel(self, name: str, *, overwrites: list[dict[str, Any]] | None = None) -> Channel:
        channel = Channel(
            self.next_id(),
            GUILD_TEXT,
            name,
            guild_id=self.guild_id,
            position=len(self.channels),
            overwrites=list(overwrites or []),
        )
        self.channels[channel.id] = channel
        return channel

    def add_thread(self, parent_id: int, name: str, *, owner: User, thread_id: int | None = None) -> Channel:
        thread = Channel(
            thread_id or self.next_id(),
            PUBLIC_THREAD,
            name[:100],
            guild_id=self.guild_id,
            parent_id=parent_id,
            owner_id=owner.id,
        )
        self.channels[thread.id] = thread
        return thread

    def dm_with(self, user: User) -> Channel:
        channel_id = self._dms.get(user.id)
        if channel_id is None:
            channel = Channel(self.next_id(), DM, recipient=user)
            self.channels[channel.id] = channel
            self._dms[user.id] = channel_id = channel.id
        return self.channels[channel_id]

    def add_message(self, message: Message) -> Message:
        self.messages[message.id] = message
        channel = self.channels.get(message.channel_id)
        if channel is not None:
            channel.last_message_id = message.id
            channel.message_count += 1
        return message

    def add_attachment(self, channel_id: int, filename: str, data: bytes, content_type: str) -> Attachment:
        attachment_id = self.next_id()
        url = f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{filename}"
        attachment = Attachment(attachment_id, filename, data, content_type, url)
        self.attachments[attachment_id] = attachment
        return attachment

    # -- reading --------------------------------------------------------------

    def permissions_of(self, user_id: int, channel: Channel | None = None) -> int:
        """The member's permissions in the guild, or in ``channel`` with its overwrites applied as Discord does."""
        member = self.members.get(user_id)
        value = self.everyone.permissions
        for role in self.roles:
            if member is not None and role.id in member.roles:
                value |= role.permissions
        if channel is None or not channel.overwrites:
            return value
        by_target = {(int(o["id"]), int(o.get("type", 0))): o for o in channel.overwrites}
        everyone = by_target.get((self.guild_id, 0))
        if everyone:
            value = (value & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for role_id in member.roles if member else []:
            found = by_target.get((role_id, 0))
            if found:
                allow, deny = allow | int(found["allow"]), deny | int(found["deny"])
        value = (value & ~deny) | allow
        mine = by_target.get((user_id, 1))
        if mine:
            value = (value & ~int(mine["deny"])) | int(mine["allow"])
        return value

    def mention_payload(self, user: User, guild_id: int | None) -> dict[str, Any]:
        data = user.payload()
        member = self.members.get(user.id)
        if guild_id is not None and member is not None:
            data["member"] = member.payload(with_user=False)
        return data

    def guild_payload(self, *, all_members: bool = True) -> dict[str, Any]:
        """The GUILD_CREATE payload: the guild with its roles, channels, active threads and members.

        Without ``all_members`` (a session without the privileged members intent) only the bot is listed, as on Discord.
        """
        members = [m for m in self.members.values() if all_members or m.user.id == self.bot.id]
        channels = [c for c in self.channels.values() if c.guild_id == self.guild_id]
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner.id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": str(self.general.id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": iso(),
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.payload() for m in members],
            "channels": [c.payload() for c in channels if not c.is_thread],
            "threads": [c.payload() for c in channels if c.is_thread and not c.archived],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self.bot.username,
            "icon": None,
            "description": "A fake Discord application",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner.payload(),
            "team": None,
            "flags": 1 << 19,  # GATEWAY_MESSAGE_CONTENT_LIMITED: the intent is switched on in the portal
            "bot": self.bot.payload(),
            "interactions_endpoint_url": None,
            "integration_types_config": {"0": {}, "1": {}},
        }
