"""A real HTTP and websocket server that speaks Discord's API v10, plus the controller tests script it with.

``FakeDiscord`` runs an aiohttp application on its own event loop in a
background thread (like ``tests.fake_ollama``), so an in-process discord.py
client, a ``manage.py runbot`` subprocess and the test itself all talk to it
over TCP exactly as they would to Discord:

- REST under ``/api/v10`` (point ``DISCORD_API_URL`` at ``fake.api_url``), with
  per-route rate-limit buckets and Discord's headers and 429 answers;
- the gateway at ``/gateway`` (what ``GET /gateway/bot`` returns), with
  ``compress=zlib-stream``, heartbeats, READY + GUILD_CREATE, RESUME with
  replay of missed events, and INVALID_SESSION when a session cannot resume;
- attachment downloads under ``/attachments`` (Discord's CDN);
- a control API: the Python methods below, and ``/_control/*`` over HTTP for
  a fake started on its own (``python -m tests.fake_discord``).

Everything that changes state runs on the fake's loop thread; the controller's
methods hand their work to it and wait, and ``wait_for`` blocks on a condition
notified after every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from aiohttp import WSMsgType, web

from tests.background import BackgroundServer

from .ratelimit import RateLimits
from .records import GatewayConnection, Interaction, RestCall, UploadedFile
from .world import (
    CHAT_INPUT_COMMAND,
    EPHEMERAL,
    GUILD_TEXT,
    HAS_THREAD,
    LOADING,
    PUBLIC_THREAD,
    REPLY,
    VIEW_CHANNEL,
    Channel,
    Message,
    User,
    World,
)

T = TypeVar("T")
API_PREFIX = "/api/v10"
DISCORD_LIMIT = 2000
MAX_UPLOAD = 10 * 1024 * 1024  # a guild without boosts, and DMs
INTERACTION_DEADLINE = 3.0  # seconds Discord gives for the first callback
INTERACTION_TOKEN_LIFETIME = 15 * 60.0
ARCHIVED_THREAD = 50083  # Discord's code for a change it refuses in an archived thread

# Gateway opcodes and intents (https://discord.com/developers/docs/topics/gateway).
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 7, 9, 10, 11
GUILDS, GUILD_MEMBERS, GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS = 1 << 0, 1 << 1, 1 << 9, 1 << 10
DIRECT_MESSAGES, DIRECT_MESSAGE_REACTIONS, MESSAGE_CONTENT = 1 << 12, 1 << 13, 1 << 15
ZLIB_SUFFIX = b"\x00\x00\xff\xff"

MISSING_PERMISSIONS = {"message": "Missing Permissions", "code": 50013}
CREATE_THREAD_ROUTES = (
    "POST /channels/{channel_id}/messages/{message_id}/threads",
    "POST /channels/{channel_id}/threads",
)
SEND_ROUTES = ("POST /channels/{channel_id}/messages",)

FAKE_KEY = web.AppKey("fake_discord", object)
CALL_KEY = web.RequestKey("fake_discord_call", RestCall)


class ApiError(Exception):
    """Answered as Discord's JSON error: ``{"message": ..., "code": ...}`` (plus ``errors`` for form errors)."""

    def __init__(self, status: int, message: str, code: int = 0, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "code": code}
        if errors:
            self.body["errors"] = errors


def form_error(field_name: str, code: str, message: str) -> ApiError:
    return ApiError(400, "Invalid Form Body", 50035, {field_name: {"_errors": [{"code": code, "message": message}]}})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _json(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json", no charset, as Discord sends: discord.py compares
    # the header to that string and treats anything else as text.
    response = web.Response(body=_dumps(obj).encode(), status=status, headers=headers)
    response.headers["Content-Type"] = "application/json"
    return response


@dataclass
class Failure:
    """A scripted error answer for some routes (optionally only in one channel, only ``times`` times)."""

    routes: tuple[str, ...]
    status: int
    body: dict[str, Any]
    channel_id: int | None = None
    times: int | None = None
    used: int = 0

    def applies(self, route: str, channel_id: int | None) -> bool:
        if route not in self.routes or (self.times is not None and self.used >= self.times):
            return False
        return self.channel_id is None or self.channel_id == channel_id


@dataclass
class Session:
    """A gateway session: its sequence and every event dispatched to it, for replay on RESUME."""

    id: str
    intents: int
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    socket: _Socket | None = None
    resumable: bool = True


class _Socket:
    """One gateway websocket; frames go out in order through a queue and one writer task."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        record: GatewayConnection,
        *,
        compress: bool,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.record = record
        self.closing = False
        self._compressor = zlib.compressobj() if compress else None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write())
        self.session: Session | None = None

    def send(self, payload: dict[str, Any]) -> None:
        self._queue.put_nowait(payload)

    async def _write(self) -> None:
        while (payload := await self._queue.get()) is not None:
            text = _dumps(payload)
            try:
                if self._compressor is not None:
                    # zlib-stream: one compression context for the whole connection,
                    # each message ending in a Z_SYNC_FLUSH (discord.py waits for that suffix).
                    data = self._compressor.compress(text.encode()) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int | None) -> None:
        """Close with ``code``, or drop the TCP connection without a close frame when ``code`` is None."""
        if self.closing:
            return
        self.closing = True
        self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, 1.0)
        if code is None:
            if self.transport is not None:
                self.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code)


class FakeDiscord(BackgroundServer):
    """Controller for one fake Discord; see the module docstring."""

    name = "fake Discord"

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        token: str | None = None,
        heartbeat_interval: float = 41.25,
        limits: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        """``token``: the one bot token accepted (None: any). ``limits``: routes' (limit, seconds) instead of Discord's."""
        super().__init__(host=host, port=port)
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        # Seconds the bot has for an interaction's first callback; tests may shorten it.
        self.interaction_deadline = INTERACTION_DEADLINE
        self._initial_limits = limits
        self.rate_limits = RateLimits(limits)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.world = World(base_url=f"http://{host}:{port}")
        self._calls: list[RestCall] = []
        self._failures: list[Failure] = []
        self._sessions: dict[str, Session] = {}
        self._sockets: list[_Socket] = []
        self._connections: list[GatewayConnection] = []
        self._interactions: dict[int, Interaction] = {}
        self._commands: dict[int | None, dict[str, dict[str, Any]]] = {}  # guild id (None: global) -> name -> command

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        return build_app(self)

    @property
    def api_url(self) -> str:
        """What ``DISCORD_API_URL`` should say to use this fake."""
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    def start(self) -> Self:
        super().start()
        self.world.base_url = self.url
        return self

    def stop(self) -> None:
        """Close the gateway websockets (1001, going away), then stop serving."""
        if self._thread is not None:
            with contextlib.suppress(RuntimeError, TimeoutError):
                self._run(self._close_sockets(1001))
        super().stop()

    def _run(self, coroutine: Awaitable[T], timeout: float = 10.0) -> T:
        """Run ``coroutine`` on the fake's loop and wait for its result (from any other thread)."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("FakeDiscord is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def _on_loop(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            with self._changed:
                return fn()

        return self._run(call())

    def reset(self) -> None:
        """Forget records, scripted failures and rate-limit windows; the guild, users and sessions stay."""
        with self._changed:
            self._calls.clear()
            self._failures.clear()
            self._interactions.clear()
            self.rate_limits.reset(self._initial_limits)
            self._changed.notify_all()

    def _changed_now(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ the world, by name

    @property
    def bot(self) -> User:
        return self.world.bot

    @property
    def guild_id(self) -> int:
        return self.world.guild_id

    @property
    def general(self) -> Channel:
        return self.world.general

    @property
    def alice(self) -> User:
        return self.world.alice

    @property
    def bob(self) -> User:
        return self.world.bob

    @property
    def mod(self) -> User:
        return self.world.mod

    def user(self, ref: User | int | str) -> User:
        if isinstance(ref, User):
            return ref
        with self._lock:
            for user in self.world.users.values():
                if ref in (user.id, user.username, str(user.id)):
                    return user
        raise KeyError(f"no user {ref!r}")

    def channel(self, ref: Channel | int | str) -> Channel:
        if isinstance(ref, Channel):
            return ref
        with self._lock:
            for channel in self.world.channels.values():
                if ref in (channel.id, str(channel.id)) or (channel.name and ref == channel.name):
                    return channel
        raise KeyError(f"no channel {ref!r}")

    def add_user(
        self, username: str, *, moderator: bool = False, bot: bool = False, global_name: str | None = None
    ) -> User:
        """A new guild member (sent as GUILD_MEMBER_ADD only in spirit: the bot has no members intent).

        ``global_name`` is the display name people see (several users may share one).
        """
        with self._changed:
            roles = [self.world.moderator_role.id] if moderator else []
            user = self.world.add_user(
                User(self.world.next_id(), username, bot=bot, global_name=global_name), roles=roles
            )
            self._changed.notify_all()
            return user

    def add_channel(self, name: str, *, overwrites: Iterable[Mapping[str, Any]] = ()) -> Channel:
        """A new text channel: CHANNEL_CREATE. ``overwrites``: Discord's permission overwrites (see ``private``)."""

        def create() -> Channel:
            channel = self.world.add_channel(name, overwrites=[dict(o) for o in overwrites])
            self._dispatch("CHANNEL_CREATE", channel.payload())
            return channel

        return self._on_loop(create)

    def private(self, *, readers: Iterable[User | int | str] = (), roles: Iterable[int] = ()) -> list[dict[str, Any]]:
        """Overwrites that hide a channel from @everyone and show it to ``readers``, ``roles`` and the bot."""
        hidden = {"id": str(self.guild_id), "type": 0, "allow": "0", "deny": str(VIEW_CHANNEL)}
        shown = str(VIEW_CHANNEL)
        return [
            hidden,
            {"id": str(self.world.bot_role.id), "type": 0, "allow": shown, "deny": "0"},
            *({"id": str(role), "type": 0, "allow": shown, "deny": "0"} for role in roles),
            *({"id": str(self.user(u).id), "type": 1, "allow": shown, "deny": "0"} for u in readers),
        ]

    def set_overwrites(self, channel: Channel | int | str, overwrites: Iterable[Mapping[str, Any]]) -> None:
        """Change who may see a channel: CHANNEL_UPDATE."""
        target = self.channel(channel)

        def change() -> None:
            target.overwrites = [dict(o) for o in overwrites]
            self._dispatch("CHANNEL_UPDATE", target.payload())

        self._on_loop(change)

    def add_history(
        self, author: User | int | str, channel: Channel | int | str, content: str, *, at: float
    ) -> Message:
        """A message written at ``at`` (epoch seconds, in the past), before the bot was there: no gateway event."""
        user = self.user(author)
        target = self.channel(channel)

        def create() -> Message:
            message = Message(
                self.world.next_id.at(at), target.id, user, content, guild_id=target.guild_id, created_at=at
            )
            self.world.messages[message.id] = message
            target.message_count += 1
            return message

        return self._on_loop(create)

    def edit_message(self, message: Message | int, content: str) -> Message:
        """Its author edits a message: MESSAGE_UPDATE with the whole message, as Discord sends it."""

        def edit() -> Message:
            found = self._message_ref(message)
            assert found is not None
            self._unarchive_for_change(found)
            found.set_content(content)
            self._dispatch("MESSAGE_UPDATE", found.payload(self.world))
            return found

        return self._on_loop(edit)

    def remove_member(self, user: User | int | str) -> None:
        """Someone leaves the server: GUILD_MEMBER_REMOVE (only sessions with the members intent get it)."""
        gone = self.user(user)

        def remove() -> None:
            self.world.members.pop(gone.id, None)
            self._dispatch("GUILD_MEMBER_REMOVE", {"guild_id": str(self.guild_id), "user": gone.payload()})

        self._on_loop(remove)

    # ------------------------------------------------------------------ injecting user activity

    def send_message(
        self,
        author: User | int | str,
        channel: Channel | int | str,
        content: str = "",
        *,
        mention_bot: bool = False,
        mentions: Iterable[User | int | str] = (),
        reply_to: Message | int | None = None,
        attachments: Iterable[tuple[str, bytes, str]] = (),
    ) -> Message:
        """A user writes in a channel or thread: MESSAGE_CREATE. ``mention_bot`` prefixes ``<@bot>``.

        ``attachments`` are ``(filename, data, content_type)``; the bot downloads them from this fake.
        """
        user = self.user(author)
        target = self.channel(channel)
        mentioned = [self.user(m) for m in mentions]
        if mention_bot:
            mentioned.insert(0, self.bot)
            content = f"{self.bot.mention} {content}"

        def create() -> Message:
            reference = self._message_ref(reply_to)
            message = Message(
                self.world.next_id(),
                target.id,
                user,
                content,
                guild_id=target.guild_id,
                type=REPLY if reference else 0,
                mentions=mentioned + ([reference.author] if reference and reference.author not in mentioned else []),
                reference=reference,
            )
            message.attachments = [
                self.world.add_attachment(target.id, name, data, kind) for name, data, kind in attachments
            ]
            self.world.add_message(message)
            self._dispatch("MESSAGE_CREATE", message.payload(self.world))
            return message

        return self._on_loop(create)

    def send_dm(self, author: User | int | str, content: str, **kwargs: Any) -> Message:
        """A user writes to the bot in a DM (the DM channel is made on first use)."""
        user = self.user(author)
        channel = self._on_loop(lambda: self.world.dm_with(user))
        return self.send_message(user, channel, content, **kwargs)

    def delete_message(self, message: Message | int) -> None:
        """Someone deletes a message: MESSAGE_DELETE."""

        def delete() -> None:
            found = self._message_ref(message)
            assert found is not None
            self._unarchive_for_change(found)
            found.deleted = True
            self._dispatch("MESSAGE_DELETE", self._deletion_payload(found))

        self._on_loop(delete)

    def _unarchive_for_change(self, message: Message) -> None:
        """What Discord's own client does before an edit or a deletion in an archived thread (which
        the API refuses otherwise): unarchive it, which moves its archive timestamp to now."""
        channel = self.world.channels.get(message.channel_id)
        if channel is not None and channel.is_thread and channel.archived:
            self._set_archived(channel, False)

    def _set_archived(self, thread: Channel, archived: bool) -> None:
        thread.archived, thread.archived_at = archived, time.time()
        self._dispatch("THREAD_UPDATE", thread.payload())

    def archive_thread(self, thread: Channel | int | str) -> None:
        """A moderator (or Discord's inactivity timer) archives a thread: THREAD_UPDATE."""
        found = self.channel(thread)
        assert found.is_thread
        self._on_loop(lambda: self._set_archived(found, True))

    def delete_thread(self, thread: Channel | int | str) -> None:
        """Someone deletes a thread: THREAD_DELETE (no MESSAGE_DELETE for its messages, as in Discord)."""
        found = self.channel(thread)
        assert found.is_thread

        def delete() -> None:
            self.world.channels.pop(found.id)
            payload = {"id": str(found.id), "guild_id": str(found.guild_id), "parent_id": str(found.parent_id)}
            self._dispatch("THREAD_DELETE", {**payload, "type": found.type})

        self._on_loop(delete)

    def react(self, user: User | int | str, message: Message | int, emoji: str) -> None:
        """A user reacts to a message: MESSAGE_REACTION_ADD."""
        reactor = self.user(user)

        def add() -> None:
            found = self._message_ref(message)
            assert found is not None
            found.reactions.setdefault(emoji, set()).add(reactor.id)
            self._dispatch("MESSAGE_REACTION_ADD", self._reaction_payload(found, reactor, emoji))

        self._on_loop(add)

    def run_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: User | int | str,
        channel: Channel | int | str,
    ) -> Interaction:
        """A user runs a slash command the bot synced: INTERACTION_CREATE. Options are typed from the synced command."""
        caller = self.user(user)
        where = self.channel(channel)
        return self._on_loop(lambda: self._create_interaction(name, dict(options or {}), caller, where))

    # ------------------------------------------------------------------ the gateway, from outside

    def drop_gateway(self, *, code: int | None = 4000, resumable: bool = True) -> int:
        """Close every gateway websocket; returns how many were open.

        ``code`` None drops the TCP connection without a close frame. With
        ``resumable=False`` the sessions are forgotten, so a RESUME gets
        INVALID_SESSION and the client must IDENTIFY afresh.
        """

        async def drop() -> int:
            sockets = list(self._sockets)
            if not resumable:
                for session in self._sessions.values():
                    session.resumable = False
            await self._close_sockets(code)
            return len(sockets)

        return self._run(drop())

    def send_reconnect(self) -> None:
        """Ask every client to reconnect and resume (opcode 7)."""

        def send_to_all() -> None:
            for socket in self._sockets:
                socket.send({"op": RECONNECT, "d": None})

        self._on_loop(send_to_all)

    async def _close_sockets(self, code: int | None) -> None:
        for socket in list(self._sockets):
            await socket.close(code)

    # ------------------------------------------------------------------ failures and limits

    def fail(
        self,
        routes: str | Iterable[str],
        *,
        status: int = 403,
        body: Mapping[str, Any] | None = None,
        channel: Channel | int | str | None = None,
        times: int | None = None,
    ) -> Failure:
        """Answer ``routes`` ("METHOD /path/{template}") with an error, by default 403 Missing Permissions."""
        failure = Failure(
            routes=(routes,) if isinstance(routes, str) else tuple(routes),
            status=status,
            body=dict(body or MISSING_PERMISSIONS),
            channel_id=None if channel is None else self.channel(channel).id,
            times=times,
        )
        with self._lock:
            self._failures.append(failure)
        return failure

    def forbid_thread_creation(self, channel: Channel | int | str | None = None) -> Failure:
        """Thread creation answers 403 ``Missing Permissions`` (code 50013), in ``channel`` or everywhere."""
        return self.fail(CREATE_THREAD_ROUTES, channel=channel)

    def forbid_sending(self, channel: Channel | int | str | None = None) -> Failure:
        """Sending messages answers 403 ``Missing Permissions`` (code 50013), in ``channel`` or everywhere."""
        return self.fail(SEND_ROUTES, channel=channel)

    def allow_everything(self) -> None:
        with self._lock:
            self._failures.clear()

    def set_rate_limit(self, route: str, limit: int, per: float) -> None:
        """E.g. ``set_rate_limit("PATCH /channels/{channel_id}/messages/{message_id}", 5, 5.0)``."""
        self.rate_limits.set_limit(route, limit, per)

    # ------------------------------------------------------------------ reading back

    @property
    def calls(self) -> list[RestCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(
        self, route: str | None = None, *, method: str | None = None, channel: Channel | int | str | None = None
    ) -> list[RestCall]:
        """Calls answered (429s included) to ``route`` (its template, or just "METHOD /path" prefix)."""
        channel_id = None if channel is None else self.channel(channel).id
        with self._lock:
            return [
                call
                for call in self._calls
                if (route is None or call.route == route or call.route.startswith(route + " "))
                and (method is None or call.method == method)
                and (channel_id is None or call.channel_id == channel_id)
            ]

    @property
    def rate_limited(self) -> list[RestCall]:
        """Every request answered 429."""
        with self._lock:
            return [c for c in self._calls if c.rate_limited]

    def message(self, message_id: int) -> Message:
        with self._lock:
            return self.world.messages[message_id]

    def messages_in(self, channel: Channel | int | str, *, by_bot: bool | None = None) -> list[Message]:
        """The channel's messages oldest first, deleted ones left out (ephemeral ones included)."""
        channel_id = self.channel(channel).id
        with self._lock:
            return [
                m
                for m in self.world.messages.values()
                if m.channel_id == channel_id
                and not m.deleted
                and (by_bot is None or (m.author.id == self.bot.id) is by_bot)
            ]

    def bot_messages(self, channel: Channel | int | str) -> list[Message]:
        return self.messages_in(channel, by_bot=True)

    def thread_of(self, message: Message | int) -> Channel | None:
        """The thread started from ``message``, if any."""
        with self._lock:
            found = self._message_ref(message)
            return self.world.channels.get(found.thread_id) if found and found.thread_id else None

    def interaction(self, interaction_id: int) -> Interaction:
        with self._lock:
            return self._interactions[interaction_id]

    @property
    def connections(self) -> list[GatewayConnection]:
        with self._lock:
            return list(self._connections)

    def commands(self, guild: int | None = None) -> dict[str, dict[str, Any]]:
        """The commands the bot synced, globally or for ``guild``."""
        with self._lock:
            return dict(self._commands.get(guild, {}))

    # ------------------------------------------------------------------ waiting

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0, *, what: str = "") -> T:
        """Block until ``predicate()`` is truthy (re-checked after every change here); return its value.

        Raises ``TimeoutError`` naming ``what`` (or the predicate) when ``timeout`` passes first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout} s for {what or getattr(predicate, '__name__', 'a change')}")
                # Also wake now and then: a predicate may read state that changes elsewhere.
                self._changed.wait(min(remaining, 0.25))

    async def until(self, predicate: Callable[[], T | None], timeout: float = 10.0, *, what: str = "") -> T:  # noqa: ASYNC109 -- the wait happens in a thread, where asyncio.timeout cannot reach
        """``wait_for`` for async tests: waits in a thread, so the caller's event loop keeps running."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout, what=what)

    def wait_for_ready(self, timeout: float = 10.0, *, count: int = 1) -> GatewayConnection:
        """Wait until ``count`` sessions have been identified (READY and GUILD_CREATE sent)."""

        def identified() -> GatewayConnection | None:
            done = [c for c in self._connections if c.kind == "identify" and c.session_id]
            return done[count - 1] if len(done) >= count else None

        return self.wait_for(identified, timeout, what=f"{count} IDENTIFY")

    def wait_for_resume(self, timeout: float = 10.0) -> GatewayConnection:
        return self.wait_for(
            lambda: next((c for c in self._connections if c.resumed), None), timeout, what="an accepted RESUME"
        )

    def wait_for_call(
        self, route: str, *, count: int = 1, timeout: float = 10.0, channel: Channel | int | str | None = None
    ) -> list[RestCall]:
        """Wait until ``count`` calls to ``route`` were answered; return them all."""

        def enough() -> list[RestCall] | None:
            found = [c for c in self.calls_to(route, channel=channel) if c.status]
            return found if len(found) >= count else None

        return self.wait_for(enough, timeout, what=f"{count} calls to {route}")

    # ------------------------------------------------------------------ internals (loop thread)

    def _message_ref(self, ref: Message | int | None) -> Message | None:
        if ref is None:
            return None
        return self.world.messages.get(ref.id if isinstance(ref, Message) else int(ref))

    def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway event to every live session (kept for replay while its socket is away)."""
        with self._changed:
            for session in self._sessions.values():
                if not session.resumable or not _wants(session.intents, event, data):
                    continue
                session.seq += 1
                frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": _visible(session.intents, data, self)}
                session.log.append(frame)
                if session.socket is not None:
                    session.socket.send(frame)
            self._changed.notify_all()

    def _deletion_payload(self, message: Message) -> dict[str, Any]:
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        return data

    def _reaction_payload(self, message: Message, user: User, emoji: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "emoji": {"id": None, "name": emoji},
            "message_author_id": str(message.author.id),
            "burst": False,
            "type": 0,
        }
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
            member = self.world.members.get(user.id)
            if member is not None:
                data["member"] = member.payload()
        return data

    def _create_interaction(self, name: str, options: dict[str, Any], caller: User, where: Channel) -> Interaction:
        guild_commands = self._commands.get(where.guild_id, {}) if where.guild_id else {}
        command = guild_commands.get(name) or self._commands.get(None, {}).get(name)
        if command is None:
            known = sorted({*guild_commands, *self._commands.get(None, {})})
            raise KeyError(f"the bot has not synced a command called {name!r} (it synced {known})")
        types = {o["name"]: o.get("type", 3) for o in command.get("options") or []}
        unknown = set(options) - set(types)
        if unknown:
            raise KeyError(f"/{name} has no option(s) {sorted(unknown)}")
        interaction = Interaction(
            id=self.world.next_id(),
            token=secrets.token_urlsafe(32),
            name=name,
            created_monotonic=time.monotonic(),
            channel_id=where.id,
            user_id=caller.id,
        )
        self._interactions[interaction.id] = interaction
        data: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.world.application_id),
            "type": 2,
            "token": interaction.token,
            "version": 1,
            "data": {
                "id": command["id"],
                "name": name,
                "type": 1,
                "options": [{"name": k, "type": types[k], "value": v} for k, v in options.items()],
                **({"guild_id": command["guild_id"]} if command.get("guild_id") else {}),
            },
            "channel_id": str(where.id),
            "channel": {**where.payload(), "permissions": str(self.world.permissions_of(caller.id, where))},
            "app_permissions": str(self.world.permissions_of(self.bot.id, where)),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": MAX_UPLOAD,
        }
        if where.guild_id:
            member = self.world.members[caller.id]
            data.update(
                guild_id=str(where.guild_id),
                guild_locale="en-US",
                guild={"id": str(where.guild_id), "locale": "en-US", "features": []},
                member=member.payload(permissions=self.world.permissions_of(caller.id, where)),
                context=0,
                authorizing_integration_owners={"0": str(where.guild_id)},
            )
        else:
            data.update(user=caller.payload(), context=1, authorizing_integration_owners={"0": "0"})
        self._dispatch("INTERACTION_CREATE", data)
        return interaction

    def _record(self, call: RestCall) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()

    def _failure_for(self, route: str, channel_id: int | None) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.applies(route, channel_id):
                    failure.used += 1
                    return failure
        return None


def _wants(intents: int, event: str, data: dict[str, Any]) -> bool:
    """Whether a session with ``intents`` receives ``event`` (https://discord.com/developers/docs/events/gateway#list-of-intents)."""
    in_guild = "guild_id" in data
    if event.startswith("MESSAGE_REACTION"):
        return bool(intents & (GUILD_MESSAGE_REACTIONS if in_guild else DIRECT_MESSAGE_REACTIONS))
    if event.startswith("MESSAGE_"):
        return bool(intents & (GUILD_MESSAGES if in_guild else DIRECT_MESSAGES))
    if event.startswith("GUILD_MEMBER"):
        return bool(intents & GUILD_MEMBERS)
    if event.startswith(("GUILD_", "CHANNEL_", "THREAD_")):
        return bool(intents & GUILDS)
    return True


def _visible(intents: int, data: dict[str, Any], fake: FakeDiscord) -> dict[str, Any]:
    """Without the message content intent a bot sees no content of guild messages that do not mention it."""
    if intents & MESSAGE_CONTENT or "content" not in data or "guild_id" not in data or "author" not in data:
        return data
    bot_id = str(fake.bot.id)
    if data["author"]["id"] == bot_id or any(m["id"] == bot_id for m in data.get("mentions", [])):
        return data
    return {**data, "content": "", "attachments": [], "embeds": [], "components": []}


# ---------------------------------------------------------------------- the application


class _Api:
    """The REST, gateway and control handlers; ``fake`` holds the state."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.world = fake.world

    # -- helpers ------------------------------------------------------------

    def channel(self, request: web.Request) -> Channel:
        channel = self.world.channels.get(_int(request.match_info["channel_id"]))
        if channel is None:
            raise ApiError(404, "Unknown Channel", 10003)
        return channel

    def message(self, request: web.Request, channel: Channel) -> Message:
        message = self.world.messages.get(_int(request.match_info["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise ApiError(404, "Unknown Message", 10008)
        return message

    def changeable(self, request: web.Request, channel: Channel) -> Message:
        """The message an edit, a deletion or a reaction is for: Discord refuses them in an archived thread.

        Only a new message unarchives a thread (unless it is locked); anything else first needs
        the thread unarchived (``PATCH /channels/{id}`` with ``archived: false``).
        """
        message = self.message(request, channel)
        if channel.is_thread and channel.archived:
            raise ApiError(400, "Operation cannot be performed on an archived thread", ARCHIVED_THREAD)
        return message

    def add_files(self, channel: Channel, call: RestCall, body: dict[str, Any], kept: list[Any]) -> list[Any]:
        """The message's attachments after this request: those in ``body["attachments"]`` (kept or new)."""
        by_field = {f.field: f for f in call.files}
        if sum(len(f.data) for f in call.files) > MAX_UPLOAD:
            raise ApiError(413, "Request entity too large", 40005)
        listed = body.get("attachments")
        if listed is None:  # files without an attachments list: all of them, new
            listed = [{"id": str(i)} for i in range(len(call.files))] if call.files else None
        if listed is None:
            return kept
        by_id = {str(a.id): a for a in kept}
        result = []
        for entry in listed:
            key = str(entry.get("id"))
            if key in by_id:
                result.append(by_id[key])
                continue
            upload = by_field.get(f"files[{key}]")
            if upload is None:
                raise form_error("attachments", "ATTACHMENT_NOT_FOUND", f"No file for attachment {key}")
            filename = entry.get("filename") or upload.filename
            result.append(self.world.add_attachment(channel.id, filename, upload.data, upload.content_type))
        if len(result) > 10:
            raise form_error("attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        return result

    def check_content(self, body: dict[str, Any]) -> str:
        content = body.get("content")
        content = "" if content is None else str(content)
        if len(content) > DISCORD_LIMIT:
            raise form_error("content", "BASE_TYPE_MAX_LENGTH", f"Must be {DISCORD_LIMIT} or fewer in length.")
        return content

    def bot_message(
        self, channel: Channel, call: RestCall, body: dict[str, Any], *, flags: int = 0, interaction: int | None = None
    ) -> Message:
        content = self.check_content(body)
        reference = None
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            reference = self.world.messages.get(int(ref["message_id"]))
            if reference is None and ref.get("fail_if_not_exists", True):
                raise form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
        message = Message(
            self.world.next_id(),
            channel.id,
            self.world.bot,
            content,
            guild_id=channel.guild_id,
            type=CHAT_INPUT_COMMAND if interaction else REPLY if reference else 0,
            flags=flags | (int(body.get("flags") or 0) & EPHEMERAL),
            reference=reference,
            embeds=list(body.get("embeds") or []),
            interaction_id=interaction,
        )
        message.attachments = self.add_files(channel, call, body, [])
        if not (content or message.attachments or message.embeds or body.get("sticker_ids") or flags & LOADING):
            raise ApiError(400, "Cannot send an empty message", 50006)
        if channel.is_thread and channel.archived and not channel.locked:
            channel.archived = False  # sending in an archived thread unarchives it
            self.fake._dispatch("THREAD_UPDATE", channel.payload())
        self.world.add_message(message)
        if not message.ephemeral:
            self.fake._dispatch("MESSAGE_CREATE", message.payload(self.world))
        return message

    def edit(self, message: Message, call: RestCall, body: dict[str, Any]) -> Message:
        if message.author.id != self.world.bot.id:
            raise ApiError(403, "Cannot edit a message authored by another user", 50005)
        if "content" in body:
            message.set_content(self.check_content(body))
        elif message.loading:
            message.set_content("")
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        channel = self.world.channels[message.channel_id]
        message.attachments = self.add_files(channel, call, body, message.attachments)
        message.flags &= ~LOADING
        message.edited_at = time.time()
        if not message.ephemeral:
            self.fake._dispatch("MESSAGE_UPDATE", message.payload(self.world))
        return message

    # -- gateway and identity --------------------------------------------------

    async def gateway(self, request: web.Request) -> web.Response:
        return _json({"url": self.fake.gateway_url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": self.fake.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        return _json({**self.world.bot.payload(), "verified": True, "mfa_enabled": False, "email": None})

    async def application(self, request: web.Request) -> web.Response:
        return _json(self.world.application_payload())

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.world.users.get(_int(request.match_info["user_id"]))
        if user is None:
            raise ApiError(404, "Unknown User", 10013)
        return _json(user.payload())

    async def open_dm(self, request: web.Request) -> web.Response:
        body = request[CALL_KEY].body or {}
        user = self.world.users.get(_int(str(body.get("recipient_id", ""))))
        if user is None:
            raise ApiError(404, "Unknown User", 10013)
        return _json(self.world.dm_with(user).payload())

    # -- application commands ---------------------------------------------------

    def _command_scope(self, request: web.Request) -> int | None:
        if _int(request.match_info["application_id"]) != self.world.application_id:
            raise ApiError(403, "Missing Access", 50001)
        guild = request.match_info.get("guild_id")
        if guild is not None and _int(guild) != self.world.guild_id:
            raise ApiError(403, "Missing Access", 50001)
        return _int(guild) if guild is not None else None

    async def put_commands(self, request: web.Request) -> web.Response:
        guild = self._command_scope(request)
        body = request[CALL_KEY].body
        if not isinstance(body, list):
            raise form_error("_root", "LIST_TYPE_CONVERT", "Expected a list of commands.")
        with self.fake._changed:
            old = self.fake._commands.get(guild, {})
            stored = {}
            for command in body:
                name = command.get("name")
                if not name or len(name) > 32:
                    raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
                stored[name] = {
                    "type": 1,
                    "options": [],
                    "default_member_permissions": None,
                    "nsfw": False,
                    **command,
                    "id": old.get(name, {}).get("id") or str(self.world.next_id()),
                    "application_id": str(self.world.application_id),
                    "version": str(self.world.next_id()),
                    **({"guild_id": str(guild)} if guild else {}),
                }
            self.fake._commands[guild] = stored
            self.fake._changed.notify_all()
        return _json(list(stored.values()))

    async def get_commands(self, request: web.Request) -> web.Response:
        guild = self._command_scope(request)
        return _json(list(self.fake._commands.get(guild, {}).values()))

    # -- channels -----------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        return _json(self.channel(request).payload())

    async def edit_channel(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        body = request[CALL_KEY].body or {}
        if "name" in body:
            channel.name = str(body["name"])[:100]
        if channel.is_thread:
            if "archived" in body:
                channel.archived = bool(body["archived"])
                channel.archived_at = time.time()
            if "locked" in body:
                channel.locked = bool(body["locked"])
            if "auto_archive_duration" in body:
                channel.auto_archive_duration = int(body["auto_archive_duration"])
        self.fake._dispatch("THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE", channel.payload())
        return _json(channel.payload())

    async def delete_channel(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        self.world.channels.pop(channel.id)
        if channel.is_thread:
            self.fake._dispatch(
                "THREAD_DELETE",
                {
                    "id": str(channel.id),
                    "guild_id": str(channel.guild_id),
                    "parent_id": str(channel.parent_id),
                    "type": channel.type,
                },
            )
        return _json(channel.payload())

    async def typing(self, request: web.Request) -> web.Response:
        self.channel(request)
        return web.Response(status=204)

    # -- messages -------------------------------------------------------------------

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        limit = min(int(request.query.get("limit", 50)), 100)
        found = [
            m for m in self.world.messages.values() if m.channel_id == channel.id and not m.deleted and not m.ephemeral
        ]
        found.sort(key=lambda m: m.id, reverse=True)
        if "before" in request.query:
            found = [m for m in found if m.id < int(request.query["before"])]
        if "after" in request.query:
            # As Discord: the ``limit`` messages right after the id, still listed newest first.
            found = [m for m in found if m.id > int(request.query["after"])][-limit:]
        return _json([m.payload(self.world) for m in found[:limit]])

    async def active_threads(self, request: web.Request) -> web.Response:
        """``GET /guilds/{id}/threads/active``: every thread of the guild that is not archived."""
        threads = [c for c in self.world.channels.values() if c.is_thread and not c.archived]
        return _json({"threads": [t.payload() for t in threads], "members": []})

    async def archived_public_threads(self, request: web.Request) -> web.Response:
        """``GET /channels/{id}/threads/archived/public``: the channel's archived public threads, newest first."""
        channel = self.channel(request)
        threads = [
            c
            for c in self.world.channels.values()
            if c.is_thread and c.archived and c.parent_id == channel.id and c.type == PUBLIC_THREAD
        ]
        threads.sort(key=lambda t: t.archived_at or 0, reverse=True)
        return _json({"threads": [t.payload() for t in threads], "members": [], "has_more": False})

    async def get_message(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        return _json(self.message(request, channel).payload(self.world))

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        call = request[CALL_KEY]
        message = self.bot_message(channel, call, call.body or {})
        return _json(message.payload(self.world))

    async def edit_message(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        call = request[CALL_KEY]
        message = self.edit(self.changeable(request, channel), call, call.body or {})
        return _json(message.payload(self.world))

    async def delete_message(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        message = self.changeable(request, channel)
        message.deleted = True
        self.fake._dispatch("MESSAGE_DELETE", self.fake._deletion_payload(message))
        return web.Response(status=204)

    async def start_thread(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        if channel.type != GUILD_TEXT:
            raise ApiError(400, "Cannot execute action on this channel type", 50024)
        message = self.message(request, channel)
        if message.thread_id is not None:
            raise ApiError(400, "A thread has already been created for this message", 160004)
        body = request[CALL_KEY].body or {}
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        # As on Discord, a thread started from a message has that message's id.
        thread = self.world.add_thread(channel.id, name, owner=self.world.bot, thread_id=message.id)
        thread.auto_archive_duration = int(body.get("auto_archive_duration") or 1440)
        message.thread_id = thread.id
        message.flags |= HAS_THREAD
        self.fake._dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True})
        return _json(thread.payload(), status=201)

    async def start_thread_without_message(self, request: web.Request) -> web.Response:
        """``POST /channels/{id}/threads``: a thread of its own in a text channel (public unless type 12 is asked)."""
        channel = self.channel(request)
        if channel.type != GUILD_TEXT:
            raise ApiError(400, "Cannot execute action on this channel type", 50024)
        body = request[CALL_KEY].body or {}
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if body.get("type") not in (None, PUBLIC_THREAD):
            raise ApiError(400, "The stand-in only makes public threads", 50035)
        thread = self.world.add_thread(channel.id, name, owner=self.world.bot)
        thread.auto_archive_duration = int(body.get("auto_archive_duration") or 1440)
        self.fake._dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True})
        return _json(thread.payload(), status=201)

    # -- reactions ------------------------------------------------------------------

    async def add_reaction(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        message = self.changeable(request, channel)
        if request.match_info["user"] != "@me":
            raise ApiError(405, "405: Method Not Allowed", 0)
        emoji = request.match_info["emoji"]
        users = message.reactions.setdefault(emoji, set())
        if self.world.bot.id not in users:
            users.add(self.world.bot.id)
            self.fake._dispatch("MESSAGE_REACTION_ADD", self.fake._reaction_payload(message, self.world.bot, emoji))
        return web.Response(status=204)

    async def remove_reaction(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        message = self.changeable(request, channel)
        emoji = request.match_info["emoji"]
        who = request.match_info["user"]
        user = self.world.bot if who == "@me" else self.world.users.get(_int(who))
        if user is None:
            raise ApiError(404, "Unknown User", 10013)
        users = message.reactions.get(emoji, set())
        if user.id in users:
            users.discard(user.id)
            payload = self.fake._reaction_payload(message, user, emoji)
            payload.pop("member", None)
            payload.pop("message_author_id", None)
            self.fake._dispatch("MESSAGE_REACTION_REMOVE", payload)
        return web.Response(status=204)

    # -- interactions -----------------------------------------------------------------

    def _interaction(self, request: web.Request, id_key: str) -> Interaction:
        token = request.match_info["token"]
        for interaction in self.fake._interactions.values():
            if interaction.token == token and (
                id_key != "interaction_id" or str(interaction.id) == request.match_info[id_key]
            ):
                if time.monotonic() - interaction.created_monotonic > INTERACTION_TOKEN_LIFETIME:
                    raise ApiError(401, "Invalid Webhook Token", 50027)
                return interaction
        if id_key == "interaction_id":
            raise ApiError(404, "Unknown interaction", 10062)
        raise ApiError(404, "Unknown Webhook", 10015)

    async def callback(self, request: web.Request) -> web.Response:
        interaction = self._interaction(request, "interaction_id")
        call = request[CALL_KEY]
        elapsed = time.monotonic() - interaction.created_monotonic
        if interaction.acknowledged:
            raise ApiError(400, "Interaction has already been acknowledged.", 40060)
        if elapsed > self.fake.interaction_deadline:
            interaction.late = True
            raise ApiError(404, "Unknown interaction", 10062)
        body = call.body or {}
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        interaction.callback_type = kind
        interaction.callback_at = elapsed
        interaction.callback_flags = int(data.get("flags") or 0)
        channel = self.world.channels[interaction.channel_id]
        message = None
        if kind == 4:
            message = self.bot_message(channel, call, data, interaction=interaction.id)
        elif kind == 5:
            message = self.bot_message(
                channel, call, {}, flags=LOADING | (interaction.callback_flags & EPHEMERAL), interaction=interaction.id
            )
        if message is not None:
            interaction.original_id = message.id
        self.fake._changed_now()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        result: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": 2,
                **(
                    {
                        "response_message_id": str(message.id),
                        "response_message_loading": message.loading,
                        "response_message_ephemeral": message.ephemeral,
                    }
                    if message
                    else {}
                ),
            }
        }
        if message is not None:
            result["resource"] = {"type": kind, "message": message.payload(self.world)}
        return _json(result)

    def _webhook(self, request: web.Request) -> Interaction:
        if _int(request.match_info["application_id"]) != self.world.application_id:
            raise ApiError(404, "Unknown Webhook", 10015)
        interaction = self._interaction(request, "application_id")
        if not interaction.acknowledged:
            raise ApiError(404, "Unknown Webhook", 10015)
        return interaction

    def _response_message(self, request: web.Request, interaction: Interaction) -> Message:
        key = request.match_info["message_id"]
        message_id = interaction.original_id if key == "@original" else _int(key)
        if message_id is None or (message_id != interaction.original_id and message_id not in interaction.followup_ids):
            raise ApiError(404, "Unknown Message", 10008)
        message = self.world.messages[message_id]
        if message.deleted:
            raise ApiError(404, "Unknown Message", 10008)
        return message

    async def followup(self, request: web.Request) -> web.Response:
        interaction = self._webhook(request)
        call = request[CALL_KEY]
        body = call.body or {}
        original = self.world.messages.get(interaction.original_id or 0)
        if original is not None and original.loading and not original.deleted:
            # The first followup after a defer fills in the "thinking" message, and
            # is ephemeral exactly when the defer was, whatever its own flags say.
            message = self.edit(original, call, body)
        else:
            channel = self.world.channels[interaction.channel_id]
            message = self.bot_message(channel, call, body, interaction=interaction.id)
            interaction.followup_ids.append(message.id)
        self.fake._changed_now()
        if request.query.get("wait") not in ("1", "true", "True"):
            return web.Response(status=204)
        return _json(message.payload(self.world))

    async def get_response(self, request: web.Request) -> web.Response:
        interaction = self._webhook(request)
        return _json(self._response_message(request, interaction).payload(self.world))

    async def edit_response(self, request: web.Request) -> web.Response:
        interaction = self._webhook(request)
        call = request[CALL_KEY]
        message = self.edit(self._response_message(request, interaction), call, call.body or {})
        return _json(message.payload(self.world))

    async def delete_response(self, request: web.Request) -> web.Response:
        interaction = self._webhook(request)
        message = self._response_message(request, interaction)
        message.deleted = True
        if not message.ephemeral:
            self.fake._dispatch("MESSAGE_DELETE", self.fake._deletion_payload(message))
        return web.Response(status=204)

    # -- the CDN ----------------------------------------------------------------------

    async def download(self, request: web.Request) -> web.Response:
        attachment = self.world.attachments.get(_int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")

    # -- the gateway websocket -----------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        compress = request.query.get("compress", "")
        if compress not in ("", "zlib-stream"):
            # discord.py asks for zstd-stream when the zstandard package is installed.
            return web.Response(status=400, text=f"this fake Discord supports zlib-stream only, not {compress}")
        if request.query.get("v", "10") != "10" or request.query.get("encoding", "json") != "json":
            return web.Response(status=400, text="this fake Discord speaks v=10, encoding=json only")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        fake = self.fake
        record = GatewayConnection(opened_at=time.time(), compress=compress)
        socket = _Socket(ws, request.transport, record, compress=bool(compress))
        with fake._changed:
            fake._connections.append(record)
            fake._sockets.append(socket)
            fake._changed.notify_all()
        socket.send({"op": HELLO, "d": {"heartbeat_interval": int(fake.heartbeat_interval * 1000)}})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                close_code = self.on_frame(socket, frame)
                if close_code is not None:
                    await socket.close(close_code)
                    break
        finally:
            with fake._changed:
                if socket in fake._sockets:
                    fake._sockets.remove(socket)
                if socket.session is not None and socket.session.socket is socket:
                    socket.session.socket = None
                    if ws.close_code == 1000 and not socket.closing:  # the client closed cleanly: the session ends
                        socket.session.resumable = False
                        fake._sessions.pop(socket.session.id, None)
                record.closed_at = time.time()
                record.close_code = ws.close_code
                fake._changed.notify_all()
            await socket.close(1000)
        return ws

    def on_frame(self, socket: _Socket, frame: dict[str, Any]) -> int | None:
        """Handle one client frame; returns a close code when the connection must end."""
        fake = self.fake
        # "d" is shaped by the opcode: an object for IDENTIFY and RESUME, a number or null for HEARTBEAT.
        op = frame.get("op")
        data: Any = frame.get("d")
        if op == HEARTBEAT:
            socket.record.heartbeats += 1
            socket.send({"op": HEARTBEAT_ACK})
            return None
        if op == IDENTIFY:
            if socket.session is not None:
                return 4005  # already authenticated
            if fake.token is not None and data.get("token") != fake.token:
                return 4004  # authentication failed
            session = Session(id=secrets.token_hex(16), intents=int(data.get("intents") or 0))
            with fake._changed:
                fake._sessions[session.id] = session
                session.socket = socket
                socket.session = session
                socket.record.kind = "identify"
                self.send_ready(session)
                socket.record.session_id = session.id
                fake._changed.notify_all()
            return None
        if op == RESUME:
            socket.record.kind = "resume"
            known = fake._sessions.get(str(data.get("session_id")))
            if known is None or not known.resumable or (fake.token is not None and data.get("token") != fake.token):
                socket.send({"op": INVALID_SESSION, "d": False})
                return None
            with fake._changed:
                if known.socket is not None and known.socket is not socket:
                    old = known.socket
                    asyncio.get_running_loop().create_task(old.close(4000))
                known.socket = socket
                socket.session = known
                last = int(data.get("seq") or 0)
                for missed in known.log:
                    if missed["s"] > last:
                        socket.send(missed)
                known.seq += 1
                frame = {"op": DISPATCH, "t": "RESUMED", "s": known.seq, "d": {}}
                known.log.append(frame)
                socket.send(frame)
                socket.record.session_id = known.id
                socket.record.resumed = True
                fake._changed.notify_all()
            return None
        return None  # presence updates, voice state, member requests: nothing to do here

    def send_ready(self, session: Session) -> None:
        world = self.world
        session.seq += 1
        ready = {
            "v": 10,
            "user": {**world.bot.payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(world.guild_id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.fake.gateway_url,
            "application": {"id": str(world.application_id), "flags": world.application_payload()["flags"]},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth_session_id_hash": "",
            "shard": [0, 1],
        }
        frames = [{"op": DISPATCH, "t": "READY", "s": session.seq, "d": ready}]
        if session.intents & GUILDS:
            session.seq += 1
            frames.append(
                {
                    "op": DISPATCH,
                    "t": "GUILD_CREATE",
                    "s": session.seq,
                    "d": world.guild_payload(all_members=bool(session.intents & GUILD_MEMBERS)),
                }
            )
        for frame in frames:
            session.log.append(frame)
            assert session.socket is not None
            session.socket.send(frame)

    # -- the control API over HTTP ----------------------------------------------------------

    async def control_world(self, request: web.Request) -> web.Response:
        world = self.world
        return _json(
            {
                "api_url": self.fake.api_url,
                "guild_id": str(world.guild_id),
                "bot": world.bot.payload(),
                "users": [u.payload() for u in world.users.values()],
                "channels": [c.payload() for c in world.channels.values()],
            }
        )

    async def control_message(self, request: web.Request) -> web.Response:
        data = await request.json()
        mention_bot = bool(data.get("mention_bot"))
        reply_to = int(data["reply_to"]) if data.get("reply_to") else None
        author = data.get("author", "alice")
        content = data.get("content", "")
        if data.get("dm"):
            message = await asyncio.to_thread(
                functools.partial(self.fake.send_dm, author, content, mention_bot=mention_bot, reply_to=reply_to)
            )
        else:
            channel = data.get("channel", "general")
            message = await asyncio.to_thread(
                functools.partial(
                    self.fake.send_message, author, channel, content, mention_bot=mention_bot, reply_to=reply_to
                )
            )
        return _json(message.payload(self.world))

    async def control_command(self, request: web.Request) -> web.Response:
        data = await request.json()
        interaction = await asyncio.to_thread(
            self.fake.run_command,
            data["name"],
            data.get("options") or {},
            user=data.get("user", "alice"),
            channel=data.get("channel", "general"),
        )
        return _json({"id": str(interaction.id)})

    async def control_drop(self, request: web.Request) -> web.Response:
        data = await request.json() if request.can_read_body else {}
        if not data.get("resumable", True):
            for session in self.fake._sessions.values():
                session.resumable = False
        sockets = len(self.fake._sockets)
        await self.fake._close_sockets(data.get("code", 4000))
        return _json({"dropped": sockets})

    async def control_calls(self, request: web.Request) -> web.Response:
        return _json([c.to_json() for c in self.fake.calls])

    async def control_messages(self, request: web.Request) -> web.Response:
        channel = self.fake.channel(request.query.get("channel", "general"))
        return _json([m.payload(self.world) for m in self.fake.messages_in(channel)])

    async def control_limit(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.fake.set_rate_limit(data["route"], int(data["limit"]), float(data["per"]))
        return _json({"ok": True})

    async def control_forbid(self, request: web.Request) -> web.Response:
        data = await request.json()
        routes = {"threads": CREATE_THREAD_ROUTES, "send": SEND_ROUTES}[data["what"]]
        self.fake.fail(routes, channel=data.get("channel"))
        return _json({"ok": True})

    async def control_reset(self, request: web.Request) -> web.Response:
        self.fake.reset()
        return _json({"ok": True})


def _int(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(404, "404: Not Found", 0) from None


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return f"{request.method} {canonical.removeprefix(API_PREFIX)}"


def _major(request: web.Request) -> str:
    info = request.match_info
    for key in ("channel_id", "guild_id"):
        if key in info:
            return info[key]
    if "token" in info:
        return info["token"]
    return ""


async def _read_body(request: web.Request, call: RestCall) -> None:
    if not request.can_read_body:
        return
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":  # type: ignore[union-attr]
                call.body = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                data = await part.read()  # type: ignore[union-attr]
                call.files.append(
                    UploadedFile(
                        field=part.name or "",  # type: ignore[union-attr]
                        filename=part.filename or "",  # type: ignore[union-attr]
                        content_type=part.headers.get("Content-Type", "application/octet-stream"),  # type: ignore[union-attr]
                        data=data,
                    )
                )
        return
    raw = await request.read()
    if raw:
        try:
            call.body = json.loads(raw)
        except json.JSONDecodeError:
            raise ApiError(400, "400: Bad Request", 50109) from None  # "The request body contains invalid JSON."


# Routes reached with the interaction's token rather than the bot's.
_TOKEN_ROUTES = ("/interactions/", "/webhooks/")


@web.middleware
async def _rest_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    fake: FakeDiscord = request.app[FAKE_KEY]  # type: ignore[assignment]
    route = _route_of(request)
    call = RestCall(
        at=time.time(),
        monotonic=time.monotonic(),
        method=request.method,
        route=route,
        path=request.path.removeprefix(API_PREFIX),
        params=dict(request.match_info),
        query=dict(request.query),
    )
    request[CALL_KEY] = call
    try:
        await _read_body(request, call)
        if not request.path.removeprefix(API_PREFIX).startswith(_TOKEN_ROUTES):
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bot ") or (fake.token is not None and auth != f"Bot {fake.token}"):
                raise ApiError(401, "401: Unauthorized", 0)
        verdict = fake.rate_limits.count(route, _major(request))
        if verdict.limited:
            call.rate_limited = True
            # discord.py only retries a 429 that came through Discord's proxy (a Via
            # header); without one it assumes Cloudflare banned it and gives up.
            headers = {**verdict.headers, "Via": "1.1 google"}
            body = {"message": "You are being rate limited.", "retry_after": verdict.retry_after, "global": False}
            response: web.StreamResponse = _json(body, status=429, headers=headers)
            call.response = body
        else:
            failure = fake._failure_for(route, call.channel_id)
            if failure is not None:
                response = _json(failure.body, status=failure.status)
                call.response = failure.body
            else:
                # Handlers never await, so holding the (thread) lock keeps readers consistent.
                with fake._changed:
                    response = await handler(request)
                if (
                    isinstance(response, web.Response)
                    and response.body is not None
                    and response.content_type == "application/json"
                ):
                    call.response = json.loads(response.text or "null")
            response.headers.update(verdict.headers)
    except ApiError as exc:
        response = _json(exc.body, status=exc.status)
        call.response = exc.body
    except web.HTTPException as exc:
        body = {"message": f"{exc.status}: {exc.reason}", "code": 0}
        response = _json(body, status=exc.status)
        call.response = body
    call.status = response.status
    fake._record(call)
    return response


def build_app(fake: FakeDiscord) -> web.Application:
    """The aiohttp application; usable on its own with aiohttp's test utilities."""
    api = _Api(fake)
    app = web.Application(middlewares=[_rest_middleware], client_max_size=64 * 1024**2)
    app[FAKE_KEY] = fake
    r = app.router
    p = API_PREFIX
    r.add_get(p + "/gateway", api.gateway)
    r.add_get(p + "/gateway/bot", api.gateway_bot)
    r.add_get(p + "/users/@me", api.me)
    r.add_get(p + "/users/{user_id}", api.get_user)
    r.add_post(p + "/users/@me/channels", api.open_dm)
    r.add_get(p + "/oauth2/applications/@me", api.application)
    for path in (
        "/applications/{application_id}/commands",
        "/applications/{application_id}/guilds/{guild_id}/commands",
    ):
        r.add_put(p + path, api.put_commands)
        r.add_get(p + path, api.get_commands)
    r.add_get(p + "/channels/{channel_id}", api.get_channel)
    r.add_patch(p + "/channels/{channel_id}", api.edit_channel)
    r.add_delete(p + "/channels/{channel_id}", api.delete_channel)
    r.add_post(p + "/channels/{channel_id}/typing", api.typing)
    r.add_get(p + "/channels/{channel_id}/messages", api.list_messages)
    r.add_post(p + "/channels/{channel_id}/messages", api.create_message)
    r.add_get(p + "/channels/{channel_id}/messages/{message_id}", api.get_message)
    r.add_patch(p + "/channels/{channel_id}/messages/{message_id}", api.edit_message)
    r.add_delete(p + "/channels/{channel_id}/messages/{message_id}", api.delete_message)
    r.add_post(p + "/channels/{channel_id}/messages/{message_id}/threads", api.start_thread)
    r.add_post(p + "/channels/{channel_id}/threads", api.start_thread_without_message)
    r.add_get(p + "/channels/{channel_id}/threads/archived/public", api.archived_public_threads)
    r.add_get(p + "/guilds/{guild_id}/threads/active", api.active_threads)
    reaction = p + "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}"
    r.add_put(reaction, api.add_reaction)
    r.add_delete(reaction, api.remove_reaction)
    r.add_post(p + "/interactions/{interaction_id}/{token}/callback", api.callback)
    r.add_post(p + "/webhooks/{application_id}/{token}", api.followup)
    response = p + "/webhooks/{application_id}/{token}/messages/{message_id}"
    r.add_get(response, api.get_response)
    r.add_patch(response, api.edit_response)
    r.add_delete(response, api.delete_response)
    r.add_route("*", p + "/{tail:.*}", _unknown_route)
    r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", api.download)
    r.add_get("/gateway", api.websocket)
    r.add_get("/_control/world", api.control_world)
    r.add_post("/_control/messages", api.control_message)
    r.add_get("/_control/messages", api.control_messages)
    r.add_post("/_control/commands", api.control_command)
    r.add_post("/_control/drop", api.control_drop)
    r.add_get("/_control/calls", api.control_calls)
    r.add_post("/_control/limits", api.control_limit)
    r.add_post("/_control/forbid", api.control_forbid)
    r.add_post("/_control/reset", api.control_reset)
    return app


async def _unknown_route(request: web.Request) -> web.Response:
    """Anything the fake does not implement is recorded and answered 404, so a test sees the unexpected call."""
    raise ApiError(404, "404: Not Found", 0)
