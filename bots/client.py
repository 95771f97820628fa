"""The discord.py client: Discord activity in, rendered answers out.

Handlers only translate between discord.py objects and the pure modules
(``bots.intake``, ``bots.delivery``) and services (``bots.services``,
``conversations.services``), which hold the logic and are tested directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

import discord
import websockets
from asgiref.sync import sync_to_async
from discord import app_commands
from django.conf import settings

from artifacts.services import read_artifact
from bots import services
from bots.channels import archive_and_lock, is_thread
from bots.commands import register_all
from bots.commands.checks import Denied
from bots.delivery import DM_UPLOAD_LIMIT, Delivery, Outcome, thread_notice
from bots.intake import Allowlist, ChannelKind, Intake, MessageFacts, decide, strip_mentions, thread_name
from bots.knowledge import KnowledgeFollower
from conversations.attachments import Unreadable, Upload, check_upload, upload_limit
from conversations.services import Refusal, cancel_request
from trollama.listeners import WebsocketListener, WebUnreachable

logger = logging.getLogger(__name__)

WORKING, DONE, FAILED = "⏳", "✅", "❌"
NO_PINGS = discord.AllowedMentions.none()
# Reconnecting to web's event stream: the first wait, doubled up to the last.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 2.0
# How often the bot checks the database for answers it owes, whatever the event stream says.
RECONCILE_INTERVAL = 30.0
THREAD_FORBIDDEN = (
    "I couldn't start a thread for your message: I'm missing the **Create Public Threads** permission in this "
    "channel. A server admin can grant it to me; until then, mention me inside a thread or send me a DM."
)
THREAD_FAILED = "Discord wouldn't let me start a thread for your message just now. Please try again in a moment."
# "is typing…" never lasts longer than this, whatever happens to the answer.
TYPING_LIMIT = 600.0


class ChannelTarget:
    """A Discord channel or thread as the renderer's ``DiscordTarget``."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def send(self, content: str) -> discord.Message:
        return await self.channel.send(content, allowed_mentions=NO_PINGS)

    async def edit(self, handle: discord.Message, content: str) -> None:
        await handle.edit(content=content, allowed_mentions=NO_PINGS)

    async def delete(self, handle: discord.Message) -> None:
        await handle.delete()

    @property
    def upload_limit(self) -> int:
        guild = getattr(self.channel, "guild", None)
        return guild.filesize_limit if guild is not None else DM_UPLOAD_LIMIT

    async def attach(self, handle: discord.Message, files: list[tuple[str, bytes]]) -> None:
        uploads = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
        # A PartialMessage (an answer a restarted bot took over) carries no attachments list.
        kept = getattr(handle, "attachments", [])
        await handle.edit(attachments=[*kept, *uploads], allowed_mentions=NO_PINGS)


async def fetch_artifact(artifact_id: int) -> bytes:
    """An artifact's bytes, read from the storage this process shares with the workers."""
    return await sync_to_async(read_artifact)(artifact_id=artifact_id)


_KINDS = {
    discord.ChannelType.private: ChannelKind.DM,
    discord.ChannelType.public_thread: ChannelKind.THREAD,
    discord.ChannelType.private_thread: ChannelKind.THREAD,
    discord.ChannelType.news_thread: ChannelKind.THREAD,
    discord.ChannelType.text: ChannelKind.TEXT,
    discord.ChannelType.news: ChannelKind.TEXT,
}


def channel_kind(channel: Any) -> ChannelKind:
    # By the channel's declared type rather than its class, so a forum post counts
    # as a thread and tests can use plain fakes.
    return _KINDS.get(getattr(channel, "type", None), ChannelKind.OTHER)  # type: ignore[arg-type]  # None → OTHER


class TrollamaBot(discord.Client):
    def __init__(self, *, sync_guild: int | None = None) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, allowed_mentions=NO_PINGS)
        self.tree = app_commands.CommandTree(self)
        self.sync_guild = sync_guild
        self.allowlist = Allowlist(
            guilds=frozenset(settings.DISCORD_ALLOWED_GUILDS), channels=frozenset(settings.DISCORD_ALLOWED_CHANNELS)
        )
        self.delivery = Delivery(
            edit_interval=settings.DISCORD_EDIT_INTERVAL,
            mark_delivered=lambda request_id: sync_to_async(services.mark_delivered)(request_id=request_id),
            fetch_file=fetch_artifact,
            remember_messages=lambda request_id, ids: sync_to_async(services.remember_discord_messages)(
                request_id=request_id, message_ids=ids
            ),
            fetch_snapshot=self.snapshot_of,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self.events_connected = False
        self.knowledge = KnowledgeFollower(self)
        self.tree.on_error = self.on_command_error  # type: ignore[method-assign]  # discord.py documents assigning it
        register_all(self)

    async def setup_hook(self) -> None:
        if self.sync_guild:
            guild = discord.Object(id=self.sync_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()
        self._spawn(self.follow_events())
        self._spawn(self.keep_reconciling())
        self._spawn(self.keep_beating())
        self._spawn(self.knowledge.keep_backfilling())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_ready(self) -> None:
        logger.info("Connected to Discord as %s in %d guild(s)", self.user, len(self.guilds))

    # -- Intake ------------------------------------------------------------

    def facts_of(self, message: discord.Message) -> MessageFacts:
        channel = message.channel
        kind = channel_kind(channel)
        return MessageFacts(
            author_is_bot=message.author.bot,
            is_system=message.type not in (discord.MessageType.default, discord.MessageType.reply),
            mentions_bot=self.user is not None and self.user in message.mentions,
            channel=kind,
            in_thread_started_by_bot=kind is ChannelKind.THREAD and getattr(channel, "owner_id", None) == self.user.id,  # type: ignore[union-attr]
            guild_id=message.guild.id if message.guild else None,
            channel_id=channel.id,
            parent_channel_id=getattr(channel, "parent_id", None),
            content=message.content,
        )

    async def on_message(self, message: discord.Message) -> None:
        self._spawn(self.knowledge.on_message(message))  # server knowledge: recorded if its channel is indexed
        intake = decide(self.facts_of(message), allowlist=self.allowlist)
        if intake is Intake.IGNORE:
            return
        if intake is Intake.CANCEL:
            await self.cancel_from_message(message)
            return
        try:
            uploads = await self.download_attachments(message)
        except Unreadable as exc:  # refused before a thread is started for it
            await message.reply(exc.message, allowed_mentions=NO_PINGS)
            return
        channel: Any = message.channel
        if intake is Intake.START_THREAD:
            channel = await self.start_thread(message, has_attachments=bool(uploads))
            if channel is None:
                return
        await self.submit(message, channel, uploads)

    async def start_thread(self, message: discord.Message, *, has_attachments: bool) -> Any:
        """The thread to answer ``message`` in; None when it was refused, after saying why as a reply.

        The intake checks come first, so a refused message (maintenance, budget,
        rate limit, a full queue) leaves no empty thread behind.
        """
        try:
            await sync_to_async(services.check_discord_intake)(
                author=services.DiscordAuthor.of(message.author),
                content=strip_mentions(message.content),
                has_attachments=has_attachments,
                role_ids=services.role_ids_of(message.author),
            )
        except Refusal as refusal:
            await self.reply_quietly(message, refusal.message)
            return None
        try:
            return await message.create_thread(name=thread_name(message.content), auto_archive_duration=1440)
        except discord.Forbidden:
            text = THREAD_FORBIDDEN
        except discord.HTTPException as exc:
            logger.warning("Could not start a thread for message %s: %s", message.id, exc)
            text = THREAD_FAILED
        await self.reply_quietly(message, text)
        return None

    async def reply_quietly(self, message: discord.Message, text: str) -> None:
        """Reply to ``message``; when even that is refused, say so in the log (there is no one else to tell)."""
        try:
            await message.reply(text, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            logger.warning("Could not reply to message %s in channel %s: %s", message.id, message.channel.id, exc)

    async def download_attachments(self, message: discord.Message) -> list[Upload]:
        """The message's files, checked by type and size before downloading; raises Unreadable."""
        limit = upload_limit(
            max_mb=settings.MAX_FILE_SIZE_MB, platform_limit=message.guild.filesize_limit if message.guild else None
        )
        for attachment in message.attachments:
            check_upload(
                filename=attachment.filename,
                content_type=attachment.content_type or "",
                size=attachment.size,
                max_bytes=limit,
            )
        uploads = []
        for attachment in message.attachments:
            try:
                data = await attachment.read()
            except discord.HTTPException:
                raise Unreadable(
                    attachment.filename, "Discord wouldn't let me download it. Please send it again."
                ) from None
            uploads.append(Upload(attachment.filename, attachment.content_type or "", data))
        return uploads

    async def submit(self, message: discord.Message, channel: Any, uploads: Sequence[Upload] = ()) -> None:
        author = services.DiscordAuthor.of(message.author)
        try:
            submission = await sync_to_async(services.submit_discord_message)(
                author=author,
                channel_id=channel.id,
                channel_title=getattr(channel, "name", None) or f"DM with {author.username}",
                content=strip_mentions(message.content),
                message_id=message.id,
                guild_id=message.guild.id if message.guild else None,
                parent_channel_id=getattr(channel, "parent_id", None),
                attachments=uploads,
                role_ids=services.role_ids_of(message.author),
            )
        except Refusal as refusal:
            await message.reply(refusal.message, allowed_mentions=NO_PINGS)
            return
        finished = asyncio.Event()

        async def react(outcome: Outcome) -> None:
            finished.set()
            await self.mark_outcome(message, outcome)

        self.delivery.track(submission.request.pk, ChannelTarget(channel), on_finish=react)
        with contextlib.suppress(discord.HTTPException):
            await message.add_reaction(WORKING)
        self._spawn(self.keep_typing(channel, finished))

    async def mark_outcome(self, message: Any, outcome: Outcome) -> None:
        """⏳ off the asker's message, and ✅ or ❌ on (nothing when the bot gave up showing the answer)."""
        with contextlib.suppress(discord.HTTPException):
            if self.user is not None:
                await message.remove_reaction(WORKING, self.user)
            if outcome.status in ("done", "failed", "cancelled"):
                await message.add_reaction(DONE if outcome.status == "done" else FAILED)

    async def keep_typing(self, channel: Any, finished: asyncio.Event) -> None:
        """ "is typing…" until the answer ends, and never longer than TYPING_LIMIT."""
        with contextlib.suppress(discord.HTTPException, TimeoutError):
            async with channel.typing():
                await asyncio.wait_for(finished.wait(), timeout=TYPING_LIMIT)

    async def cancel_from_message(self, message: discord.Message) -> None:
        request = await sync_to_async(services.active_request_in_channel)(
            channel_id=message.channel.id, user_id=message.author.id
        )
        if request is None:
            await message.reply("Nothing of yours is running here.", allowed_mentions=NO_PINGS)
            return
        await sync_to_async(cancel_request)(request=request)

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """A deleted Discord thread takes its conversation's history with it."""
        await sync_to_async(services.forget_discord_channel)(
            channel_id=payload.thread_id, by="Discord (the thread was deleted)"
        )

    async def on_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Answer every failed command in words, so no interaction is left unacknowledged."""
        if isinstance(error, Denied):
            text = str(error)
        elif isinstance(error, app_commands.CheckFailure):
            text = "You can't use that command here."
        else:
            logger.error("Command %s failed", interaction.command and interaction.command.name, exc_info=error)
            text = (
                "Something went wrong running that command. Please try again; if it keeps happening, tell an operator."
            )
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    # -- Cancelling from Discord -------------------------------------------

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """❌ on the bot's in-progress answer, by the person who asked, cancels it."""
        if str(payload.emoji) != FAILED or self.user is None or payload.user_id == self.user.id:
            return
        request_id = self.delivery.request_shown_in(payload.message_id)
        if request_id is not None:
            await sync_to_async(services.cancel_for_requester)(request_id=request_id, discord_user_id=payload.user_id)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """Deleting the message that asked cancels its answer; a deleted message leaves the server index."""
        await self.knowledge.on_delete([payload.message_id])
        await sync_to_async(services.cancel_for_deleted_message)(message_id=payload.message_id)

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self.knowledge.on_delete(payload.message_ids)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.knowledge.on_edit(payload)  # an edited message is indexed again

    # -- Events from web ---------------------------------------------------

    async def follow_events(self) -> None:
        """Follow web's event stream for as long as the bot runs, reconnecting with backoff.

        Every (re)connect reconciles with the database first, so what happened
        while the stream was down is shown, then events only say what changed.
        Events are handed to each request's lane without waiting for them.
        """
        backoff = RECONNECT_FIRST
        while not self.is_closed():
            try:
                listener = await WebsocketListener.connect()
                backoff = RECONNECT_FIRST
                self.events_connected = True
                await self.reconcile()
                async for event in listener:
                    self.dispatch_event(event)
            except (WebUnreachable, websockets.ConnectionClosed, OSError) as exc:
                logger.warning("Event stream from web unavailable (%s); retrying in %.1f s", exc, backoff)
            except Exception:
                logger.exception("Event stream failed; reconnecting")
            self.events_connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX)

    def dispatch_event(self, event: dict[str, Any]) -> None:
        """Route one event from web without waiting: a notice gets a task, a request's event its lane."""
        if thread_notice(event) is not None:
            self._spawn(self.handle_event(event))
        else:
            self.delivery.dispatch(event)

    async def handle_event(self, event: dict[str, Any]) -> Outcome | None:
        """One event from web, waited for: a notice for a conversation's channel, or a step in delivering an answer."""
        notice = thread_notice(event)
        if notice is None:
            return await self.delivery.handle(event)
        channel = await self.post_notice(*notice)
        # Closed from outside (the console): lock the thread as /close would.
        if event["type"] == "thread.closed" and is_thread(channel) and not await archive_and_lock(channel):
            logger.warning("Could not lock thread %s after it was closed: the bot lacks Manage Threads", notice[0])
        return None

    async def keep_reconciling(self) -> None:
        """Reconcile every RECONCILE_INTERVAL too, connected or not: events are hints, the database is the truth."""
        await self.wait_until_ready()
        while not self.is_closed():
            await asyncio.sleep(RECONCILE_INTERVAL)
            try:
                await self.reconcile()
            except Exception:
                logger.exception("Could not reconcile answers with the database")

    async def post_notice(self, channel_id: int, text: str) -> Any:
        """Say something in a conversation's channel, and return the channel; None when it is gone or closed."""
        try:
            channel = self.get_channel(channel_id) or await self.fetch_channel(channel_id)
            await ChannelTarget(channel).send(text)  # type: ignore[arg-type]
        except discord.HTTPException as exc:
            logger.info("Could not post a notice in channel %s: %s", channel_id, exc)
            return None
        return channel

    async def keep_beating(self) -> None:
        """Write the heartbeat that health checks, the console and metrics read."""
        await self.wait_until_ready()
        name = str(self.user)
        await sync_to_async(services.mark_started)(name=name)
        while not self.is_closed():
            latency = self.latency
            try:
                await sync_to_async(services.beat)(
                    name=name,
                    connected=not self.is_closed() and self.is_ready(),
                    latency_ms=round(latency * 1000, 1) if latency == latency and latency != float("inf") else None,
                    guilds=len(self.guilds),
                    events_connected=self.events_connected,
                )
            except Exception:
                logger.exception("Could not record the bot's heartbeat")
            await asyncio.sleep(settings.BOT_HEARTBEAT_INTERVAL)

    async def reconcile(self) -> None:
        """Make Discord show what the database says about every answer this bot owes.

        Requests shown here are resynced (an answer that finished while web's
        stream was down is finished; a retry replaces the broken text). Then
        every other Discord request that is in flight, or finished and never
        delivered, is taken over: in the messages a previous run of the bot was
        writing into, when their ids were stored, so a restarted bot finishes
        an answer where it started.
        """
        tracked = self.delivery.tracked()
        snapshots = await sync_to_async(services.request_snapshots)(request_ids=tracked)
        for request_id in tracked:
            self.delivery.resync(request_id, snapshots.get(request_id))
        for request in await sync_to_async(services.requests_to_take_over)(exclude=tracked):
            try:
                await self.take_over(request)
            except Exception:
                logger.exception("Request %s: could not take over its delivery", request.pk)

    async def take_over(self, request: Any) -> None:
        """Show a request this run of the bot did not submit: in its stored messages, or in new ones."""
        if self.delivery.is_tracking(request.pk):
            return
        try:
            channel: Any = await self.channel_of(int(request.thread.external_id))
        except discord.HTTPException as exc:
            logger.warning("Request %s: its channel is gone (%s); not delivered", request.pk, exc)
            if request.is_finished:
                await sync_to_async(services.mark_delivered)(request_id=request.pk)
            return
        existing = [channel.get_partial_message(message_id) for message_id in request.discord_message_ids]
        # Never shown, and finished: send it at most once, so a crash between claim and send can't repeat it.
        if (
            not existing
            and request.is_finished
            and not await sync_to_async(services.claim_undelivered)(request_id=request.pk)
        ):
            return
        asker = await self.asking_message(request)

        async def react(outcome: Outcome) -> None:
            if asker is not None:
                await self.mark_outcome(asker, outcome)

        if self.delivery.is_tracking(request.pk):  # submitted meanwhile by this process
            return
        self.delivery.track(request.pk, ChannelTarget(channel), existing=existing, on_finish=react)
        self.delivery.resync(request.pk, await self.snapshot_of(request.pk))

    async def snapshot_of(self, request_id: int) -> dict[str, Any] | None:
        snapshots = await sync_to_async(services.request_snapshots)(request_ids=[request_id])
        return snapshots.get(request_id)

    async def channel_of(self, channel_id: int) -> Any:
        return self.get_channel(channel_id) or await self.fetch_channel(channel_id)

    async def asking_message(self, request: Any) -> Any:
        """The user's Discord message a request answers, to react on; None when it cannot be found."""
        message_id = request.message.external_id
        if not message_id.isdigit():
            return None
        # A thread started from a message has that message's id, and the message is in the parent channel.
        thread = request.thread
        channel_id = thread.parent_channel_id if message_id == thread.external_id else thread.external_id
        try:
            channel = await self.channel_of(int(channel_id))
        except (discord.HTTPException, ValueError):
            return None
        return channel.get_partial_message(int(message_id))
