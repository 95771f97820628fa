"""The discord.py client: Discord activity in, rendered answers out.

Handlers only translate between discord.py objects and the pure modules
(``bots.intake``, ``bots.delivery``) and services (``bots.services``,
``pipeline.services``), which hold the logic and are tested directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import discord
import websockets
from asgiref.sync import sync_to_async
from discord import app_commands
from django.conf import settings

from artifacts.services import read_artifact
from bots import selectors, services
from bots.channels import archive_and_lock, is_thread
from bots.commands import command_tree_digest, register_all
from bots.commands.checks import Denied
from bots.delivery import Delivery, Outcome, thread_notice
from bots.intake import (
    Access,
    AccessPolicy,
    ChannelKind,
    Intake,
    MessageFacts,
    Person,
    decide,
    mention_ids,
    readable_mentions,
    strip_mentions,
    thread_name,
)
from bots.knowledge import KnowledgeFollower, submit_ask
from bots.targets import DONE, FAILED, NO_PINGS, WORKING, ChannelTarget, Reactions
from bots.typing_indicator import TypingIndicator
from knowledge import services as knowledge_services
from pipeline.attachments import Unreadable, Upload, check_upload, upload_limit, upload_name
from pipeline.listeners import WebsocketListener, WebUnreachable
from pipeline.services import Refusal, cancel_request

logger = logging.getLogger(__name__)

# Reconnecting to web's event stream: the first wait, doubled up to the last.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 2.0
# How often the bot checks the database for answers it owes, whatever the event stream says.
RECONCILE_INTERVAL = 30.0
THREAD_FORBIDDEN = (
    "I couldn't start a thread for your message: I'm missing the **Create Public Threads** permission in this "
    "channel. A server admin can grant it to me; until then, mention me inside a thread or send me a DM."
)
THREAD_FAILED = "Discord wouldn't let me start a thread for your message just now. Please try again in a moment."
BRANCHED = "-# ↪️ Branched into {thread}: I answer there, from the message you replied to."
# "is typing…" never lasts longer than this at a time, whatever happens to the answer.
TYPING_LIMIT = 600.0
# ⏳ comes off the asker's message when the answer ends, or after this long in any case
# (should the bot never learn how the request ended).
WORKING_LIMIT = 3600.0


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


def settings_access() -> AccessPolicy:
    """The access rules of the settings alone: until the database has been read once."""
    return AccessPolicy(
        guilds=frozenset(settings.DISCORD_ALLOWED_GUILDS),
        channels=frozenset(settings.DISCORD_ALLOWED_CHANNELS),
        dms=settings.DISCORD_ALLOW_DMS,
        allowed_users=frozenset(settings.DISCORD_ALLOWED_USERS),
        blocked_users=frozenset(settings.DISCORD_BLOCKED_USERS),
        allowed_roles=frozenset(settings.DISCORD_ALLOWED_ROLES),
        blocked_roles=frozenset(settings.DISCORD_BLOCKED_ROLES),
    )


def channel_kind(channel: Any) -> ChannelKind:
    # By the channel's declared type rather than its class, so a forum post counts
    # as a thread and tests can use plain fakes.
    return _KINDS.get(getattr(channel, "type", None), ChannelKind.OTHER)  # type: ignore[arg-type]  # None → OTHER


class TrollamaBot(discord.Client):
    def __init__(self, *, sync_guild: int | None = None, force_sync: bool = False) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, allowed_mentions=NO_PINGS)
        self.tree = app_commands.CommandTree(self)
        self.sync_guild = sync_guild
        self.force_sync = force_sync
        self._access: AccessPolicy | None = None
        self.delivery = Delivery(
            edit_interval=settings.DISCORD_EDIT_INTERVAL,
            mark_delivered=lambda request_id: sync_to_async(services.mark_delivered)(request_id=request_id),
            fetch_file=fetch_artifact,
            remember_messages=lambda request_id, ids: sync_to_async(services.remember_discord_messages)(
                request_id=request_id, message_ids=ids
            ),
            fetch_snapshot=self.snapshot_of,
        )
        self.typing = TypingIndicator(limit=TYPING_LIMIT)
        self.reactions = Reactions()
        self._background: set[asyncio.Task[Any]] = set()
        self.events_connected = False
        self.knowledge = KnowledgeFollower(self)
        self.tree.on_error = self.on_command_error  # type: ignore[method-assign]  # discord.py documents assigning it
        self.tree.interaction_check = self.command_allowed  # type: ignore[method-assign]  # the tree's global check
        register_all(self)

    async def setup_hook(self) -> None:
        await self.sync_commands(force=self.force_sync)
        self._spawn(self.follow_events())
        self._spawn(self.keep_reconciling())
        self._spawn(self.keep_beating())
        self._spawn(self.keep_access_fresh())
        self._spawn(self.knowledge.keep_backfilling())

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync the slash commands to Discord when they changed since the last sync (or ``force``); True if synced.

        The hash of what was last synced is kept in the database per
        application and scope (global, or ``sync_guild``), so restarts do not
        sync again and again: Discord allows few syncs a day.
        """
        assert self.application_id is not None  # set by login, before setup_hook
        guild = discord.Object(id=self.sync_guild) if self.sync_guild else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        digest = command_tree_digest([command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)])
        application_id, guild_id = self.application_id, self.sync_guild
        changed = await sync_to_async(services.commands_changed)(
            application_id=application_id, guild_id=guild_id, tree_hash=digest
        )
        if not force and not changed:
            logger.info("Slash commands unchanged since the last sync; not syncing (runbot --sync-commands forces it)")
            return False
        await self.tree.sync(guild=guild)
        await sync_to_async(services.record_command_sync)(
            application_id=application_id, guild_id=guild_id, tree_hash=digest
        )
        logger.info("Synced %s slash commands", f"guild {self.sync_guild}'s" if guild else "the global")
        return True

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_ready(self) -> None:
        logger.info("Connected to Discord as %s in %d guild(s)", self.user, len(self.guilds))

    # -- Intake ------------------------------------------------------------

    async def access_policy(self) -> AccessPolicy:
        """The access rules in force: read at the first message, then kept fresh by ``keep_access_fresh``."""
        if self._access is None:
            await self.read_access()
        return self._access or settings_access()

    async def read_access(self) -> None:
        """Read the access rules again; when the database cannot be read, the last ones read stay in force."""
        try:
            policy = await sync_to_async(selectors.access_policy)()
        except Exception:
            logger.exception("Could not read the access rules; keeping the last ones")
            return
        if policy != self._access:
            logger.info("Access rules in force: %s", policy.describe())
        self._access = policy

    async def keep_access_fresh(self) -> None:
        """Re-read the access rules every ACCESS_TTL seconds, so an admin's edit applies without a restart."""
        while not self.is_closed():
            await self.read_access()
            await asyncio.sleep(selectors.ACCESS_TTL)

    def known_roles(self, author: Any) -> frozenset[int] | None:
        """The author's roles: from the message in a server; in a DM, from the servers the bot shares with them."""
        roles = services.role_ids_of(author)
        if roles is not None:
            return frozenset(roles)
        members = [member for guild in self.guilds if (member := guild.get_member(author.id)) is not None]
        return frozenset(role.id for member in members for role in member.roles) if members else None

    def facts_of(self, message: discord.Message) -> MessageFacts:
        channel = message.channel
        kind = channel_kind(channel)
        replied = getattr(message.reference, "resolved", None) if message.reference else None
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
            author_id=message.author.id,
            role_ids=self.known_roles(message.author),
            replies_to_bot=self.user is not None and getattr(replied, "author", None) == self.user,
        )

    def text_for_model(self, message: discord.Message) -> str:
        """The message's text as the model reads it: without the bot's mention, other mentions as names."""
        people = {user.id: Person(user.display_name, user.name) for user in [message.author, *message.mentions]}
        roles = {role.id: role.name for role in message.role_mentions}
        channels = {}
        guild = message.guild
        # Discord lists mentioned users and roles with the message, not channels; and a
        # role that is not mentionable arrives without its entry, so look both up too.
        for kind, ident in mention_ids(message.content):
            if kind == "#":
                channel = self.get_channel(ident)
                if channel is not None and getattr(channel, "name", None):
                    channels[ident] = channel.name  # type: ignore[union-attr]  # checked just above
            elif kind == "@&" and guild is not None and (role := guild.get_role(ident)) is not None:
                roles[ident] = role.name
            elif kind == "@" and ident not in people and guild is not None and (member := guild.get_member(ident)):
                people[ident] = Person(member.display_name, member.name)
        return readable_mentions(
            message.content, bot_id=self.user.id if self.user else None, people=people, roles=roles, channels=channels
        )

    async def on_message(self, message: discord.Message) -> None:
        self._spawn(self.knowledge.on_message(message))  # server knowledge: recorded if its channel is indexed
        facts = self.facts_of(message)
        policy = await self.access_policy()
        intake = decide(facts, allowlist=policy)
        if intake is Intake.IGNORE:
            return
        access = policy.access(facts)
        if access is Access.IGNORED:
            logger.info("Ignored message %s: the access rules block user %s", message.id, message.author.id)
            return
        if access is Access.REFUSED:
            await self.reply_quietly(message, policy.refusal(facts))
            return
        if intake is Intake.CANCEL:
            await self.cancel_from_message(message)
            return
        sources = None
        if facts.mentions_bot and not message.attachments:
            # "@Trollama what did we decide about the release date?": answered from the server's messages.
            sources = await self.knowledge.sources_for_mention(message, self.text_for_model(message))
            if sources == []:
                await self.reply_quietly(message, knowledge_services.NOTHING_FOUND)
                return
        uploads, refused = await self.download_attachments(message)
        if refused and not uploads and not strip_mentions(message.content):
            await self.reply_quietly(message, refused[0].message)  # nothing else to answer
            return
        branch_from = await self.branch_source(message)
        channel: Any = message.channel
        if intake is Intake.START_THREAD:
            channel = await self.start_thread(message, has_attachments=bool(uploads))
        elif (
            branch_from is not None
            and is_thread(channel)
            and channel_kind(parent := getattr(channel, "parent", None)) is ChannelKind.TEXT
        ):
            # No thread inside a thread: the branch gets a thread of its own in the same channel. Where no
            # such thread can be made (a forum post), the branch takes the thread's place, as in a DM.
            channel = await self.start_thread(message, has_attachments=bool(uploads), in_channel=parent)
            if channel is not None:
                await self.reply_quietly(message, BRANCHED.format(thread=channel.mention))
        if channel is None:
            return
        await self.submit(message, channel, uploads, refused=refused, branch_from=branch_from, sources=sources)

    async def branch_source(self, message: discord.Message) -> int | None:
        """The stored message a reply branches from (``bots.services.branch_source``); None when it is not a branch."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        return await sync_to_async(services.branch_source)(
            channel_id=message.channel.id, replied_id=reference.message_id
        )

    async def start_thread(self, message: discord.Message, *, has_attachments: bool, in_channel: Any = None) -> Any:
        """The thread to answer ``message`` in; None when it was refused, after saying why as a reply.

        Started from ``message``, or, given ``in_channel``, as a thread of its
        own there (``message`` is in a thread, and a branch needs a new one).
        The intake checks come first, so a refused message (maintenance, budget,
        rate limit, a full queue) leaves no empty thread behind.
        """
        try:
            await sync_to_async(services.check_discord_intake)(
                author=services.DiscordAuthor.of(message.author),
                content=self.text_for_model(message),
                has_attachments=has_attachments,
                role_ids=services.role_ids_of(message.author),
            )
        except Refusal as refusal:
            await self.reply_quietly(message, refusal.message)
            return None
        name = thread_name(self.text_for_model(message))
        try:
            if in_channel is not None:
                return await in_channel.create_thread(
                    name=name, type=discord.ChannelType.public_thread, auto_archive_duration=1440
                )
            return await message.create_thread(name=name, auto_archive_duration=1440)
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

    async def download_attachments(self, message: discord.Message) -> tuple[list[Upload], list[Unreadable]]:
        """The message's files that pass the type and size checks, downloaded; and those left out, with why.

        Checked before downloading, so a file that is too big or of a type we
        don't read is never fetched. The answer names the ones left out.
        """
        limit = upload_limit(
            max_mb=settings.MAX_FILE_SIZE_MB, platform_limit=message.guild.filesize_limit if message.guild else None
        )
        uploads: list[Upload] = []
        refused: list[Unreadable] = []
        for attachment in message.attachments:
            try:
                check_upload(
                    filename=attachment.filename,
                    content_type=attachment.content_type or "",
                    size=attachment.size,
                    max_bytes=limit,
                )
                data = await attachment.read()
            except Unreadable as exc:
                refused.append(exc)
                continue
            except discord.HTTPException:
                name = upload_name(attachment.filename, attachment.content_type or "")
                refused.append(Unreadable(name, "Discord wouldn't let me download it. Please send it again."))
                continue
            uploads.append(Upload(attachment.filename, attachment.content_type or "", data))
        return uploads, refused

    async def submit(
        self,
        message: discord.Message,
        channel: Any,
        uploads: Sequence[Upload] = (),
        *,
        refused: Sequence[Unreadable] = (),
        branch_from: int | None = None,
        sources: Sequence[knowledge_services.Source] | None = None,
    ) -> None:
        """Queue the message's request and follow its answer; with ``sources``, as a question to the server's history."""
        author = services.DiscordAuthor.of(message.author)
        try:
            if sources:
                submission = await sync_to_async(submit_ask)(
                    author=author,
                    role_ids=services.role_ids_of(message.author),
                    guild_id=message.guild.id if message.guild else 0,
                    channel_id=channel.id,
                    channel_title=getattr(channel, "name", None) or str(channel.id),
                    parent_channel_id=getattr(channel, "parent_id", None),
                    question=self.text_for_model(message),
                    external_id=str(message.id),
                    sources=sources,
                )
            else:
                submission = await sync_to_async(services.submit_discord_message)(
                    author=author,
                    channel_id=channel.id,
                    channel_title=getattr(channel, "name", None) or f"DM with {author.username}",
                    content=self.text_for_model(message),
                    message_id=message.id,
                    guild_id=message.guild.id if message.guild else None,
                    parent_channel_id=getattr(channel, "parent_id", None),
                    attachments=uploads,
                    refused_files=refused,
                    role_ids=services.role_ids_of(message.author),
                    branch_from=branch_from,
                    written_in=message.channel.id,
                )
        except Refusal as refusal:
            await message.reply(refusal.message, allowed_mentions=NO_PINGS)
            return
        finished = asyncio.Event()
        request_id = submission.request.pk

        async def react(outcome: Outcome) -> None:
            finished.set()
            self.typing.forget(request_id)
            await self.mark_outcome(message, outcome)

        self.typing.follow(request_id, channel)
        self.delivery.track(request_id, ChannelTarget(channel), on_finish=react)
        with contextlib.suppress(discord.HTTPException):
            await self.reactions.add(message, WORKING)
        self._spawn(self.unmark_working_later(message, finished))

    async def mark_outcome(self, message: Any, outcome: Outcome) -> None:
        """⏳ off the asker's message, and ✅ or ❌ on (nothing when the bot gave up showing the answer)."""
        with contextlib.suppress(discord.HTTPException):
            if self.user is not None:
                await self.reactions.remove(message, WORKING, self.user)
            if outcome.status in ("done", "failed", "cancelled"):
                await self.reactions.add(message, DONE if outcome.status == "done" else FAILED)

    async def unmark_working_later(self, message: Any, finished: asyncio.Event) -> None:
        """Take ⏳ off ``message`` after WORKING_LIMIT if the answer has not ended by then."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), timeout=WORKING_LIMIT)
            return
        with contextlib.suppress(discord.HTTPException):
            if self.user is not None:
                await self.reactions.remove(message, WORKING, self.user)

    async def cancel_from_message(self, message: discord.Message) -> None:
        request = await sync_to_async(services.active_request_in_channel)(
            channel_id=message.channel.id, user_id=message.author.id
        )
        if request is None:
            await message.reply("Nothing of yours is running here.", allowed_mentions=NO_PINGS)
            return
        await sync_to_async(cancel_request)(request=request)

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """A deleted Discord thread takes its conversation's history with it, and its indexed messages."""
        await sync_to_async(services.forget_discord_channel)(
            channel_id=payload.thread_id, by="Discord (the thread was deleted)"
        )
        await self.knowledge.on_thread_delete(payload.thread_id)

    async def command_allowed(self, interaction: discord.Interaction) -> bool:
        """Every slash command first: the access rules, as for messages; raises ``Denied`` with the answer."""
        policy = await self.access_policy()
        channel = interaction.channel
        facts = MessageFacts(
            author_is_bot=interaction.user.bot,
            is_system=False,
            mentions_bot=True,
            channel=channel_kind(channel),
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            parent_channel_id=getattr(channel, "parent_id", None),
            author_id=interaction.user.id,
            role_ids=self.known_roles(interaction.user),
        )
        refusal = policy.command_refusal(facts)
        if refusal is not None:
            raise Denied(refusal)
        return True

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
            self.typing.on_event(event)
            self.delivery.dispatch(event)

    async def handle_event(self, event: dict[str, Any]) -> Outcome | None:
        """One event from web, waited for: a notice for a conversation's channel, or a step in delivering an answer."""
        notice = thread_notice(event)
        if notice is None:
            self.typing.on_event(event)
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
            target = ChannelTarget(channel)  # type: ignore[arg-type]
            # Within the channel's write budget, which answers streaming there share.
            async with self.delivery.budget_of(target).writing("send"):
                await target.send(text)
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
            self.typing.forget(request.pk)
            if asker is not None:
                await self.mark_outcome(asker, outcome)

        if self.delivery.is_tracking(request.pk):  # submitted meanwhile by this process
            return
        if not request.is_finished:
            self.typing.follow(request.pk, channel)
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
        channel_id = request.message.external_channel_id or (
            thread.parent_channel_id if message_id == thread.external_id else thread.external_id
        )
        try:
            channel = await self.channel_of(int(channel_id))
        except (discord.HTTPException, ValueError):
            return None
        return channel.get_partial_message(int(message_id))
