"""The bot's side of server knowledge: what it records from Discord, who may read what, and the history backfill.

The bot sees every message; it records only those in indexed channels (a set
cached in memory and refreshed every ``REFRESH_INTERVAL``, so a message in any
other channel costs no query), each write a small synchronous service call run
off the event loop with ``sync_to_async``. Embedding is queued for the workers.

Who may read what is decided here, at the time of asking, from the gateway's
permission data (guild roles and channel overwrites, which discord.py keeps
current): see ``readable_channels``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import discord
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bots import services as bot_services
from bots.intake import asks_about_the_server
from conversations.models import Platform, Thread
from knowledge import services
from knowledge.services import AskRefused, SeenMessage, Source
from pipeline.services import Submission, submit_request
from routing.selectors import find_route

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 15.0
HISTORY_PAGE = 100  # Discord's largest page of channel history
# Pause after a failed history page before trying that channel again.
BACKFILL_ERROR_PAUSE = 30.0
PUBLIC_THREADS = frozenset({discord.ChannelType.public_thread, discord.ChannelType.news_thread})


def indexed_channel_of(message: Any, indexed: dict[int, int]) -> int | None:
    """The indexed channel a message belongs to: its channel, or for a public thread the thread's parent."""
    channel = message.channel
    if channel.id in indexed:
        return int(channel.id)
    parent = getattr(channel, "parent_id", None)
    if parent in indexed and getattr(channel, "type", None) in PUBLIC_THREADS:
        return int(parent)
    return None


def seen_message(message: Any, indexed: dict[int, int]) -> SeenMessage | None:
    """What is recorded of a discord.py message; None when it is not for the index.

    Left out: channels not indexed, bots (the assistant's own answers among
    them), system messages and messages without text. Mentions are stored as
    names (``clean_content``), as people read them.
    """
    channel_id = indexed_channel_of(message, indexed)
    if channel_id is None or message.guild is None or message.author.bot:
        return None
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return None
    text = message.clean_content
    if not text.strip():
        return None
    return SeenMessage(
        message_id=message.id,
        channel_id=channel_id,
        posted_in=message.channel.id,
        guild_id=message.guild.id,
        author_id=message.author.id,
        author_name=getattr(message.author, "display_name", None) or message.author.name,
        created_at=message.created_at,
        edited_at=message.edited_at,
        text=text,
        reply_to=getattr(message.reference, "message_id", None) if message.type is discord.MessageType.reply else None,
    )


def untouched_since(thread: Any, moment: datetime) -> bool:
    """Whether ``thread`` is archived and was archived before ``moment``: nothing was written in it since."""
    archived_at = getattr(thread, "archive_timestamp", None)
    return bool(getattr(thread, "archived", False) and archived_at is not None and archived_at < moment)


def can_read(channel: Any, who: Any) -> bool:
    """Whether ``who`` (a member or a role) may read ``channel``'s history: View Channel and Read Message History."""
    permissions = channel.permissions_for(who)
    return bool(permissions.view_channel and permissions.read_message_history)


def readable_channels(*, guild: Any, member: Any, answer_channel: Any, candidates: Iterable[int]) -> set[int]:
    """The indexed channels whose messages may appear in an answer to ``member``, posted in ``answer_channel``.

    Two rules, both from Discord's permissions now (so a member who lost a role
    or left no longer reaches what they could read before):

    - the member can read the channel;
    - everyone who can read the answer can read the channel, approximated per
      role: a role that can see ``answer_channel`` must see the source channel
      too. So private channels answer questions asked in private channels
      (or in their threads), not in a public one.
    """
    answer_parent = getattr(answer_channel, "parent", None) or answer_channel
    audience = [role for role in guild.roles if can_read(answer_parent, role)]
    found = set()
    for channel_id in candidates:
        channel = guild.get_channel(channel_id)
        if channel is None or not can_read(channel, member):
            continue
        if channel.id == answer_parent.id or all(can_read(channel, role) for role in audience):
            found.add(channel_id)
    return found


# -- Services the commands call (synchronous) ----------------------------------------


@transaction.atomic
def submit_ask(
    *,
    author: bot_services.DiscordAuthor,
    role_ids: Sequence[int] | None,
    guild_id: int,
    channel_id: int,
    channel_title: str,
    parent_channel_id: int | None,
    question: str,
    external_id: str,
    sources: Sequence[Source],
) -> Submission:
    """Submit an ``/ask`` question through the normal pipeline (budgets, queue, streaming), with its sources.

    The answer is a turn of the conversation in the channel where it was
    asked, like a message to the bot there. ``external_id``: the request's
    Discord origin (``ask-<interaction id>``, or the id of a mention that asked
    about the server's past). Raises ``Refusal`` as any intake.
    """
    user = bot_services.discord_chat_user(author=author, role_ids=role_ids)
    thread, _ = Thread.objects.get_or_create(
        platform=Platform.DISCORD,
        external_id=str(channel_id),
        defaults={
            "title": channel_title[:100],
            "owner": user,
            "guild_id": str(guild_id),
            "parent_channel_id": str(parent_channel_id or ""),
        },
    )
    # The default route (general chat) answers: the sources are the context, and a route with web tools or a
    # coding prompt would look elsewhere. Without that route enabled, the router chooses as usual.
    route = settings.DEFAULT_ROUTE if find_route(settings.DEFAULT_ROUTE) is not None else None
    submission = submit_request(user=user, thread=thread, content=question, route_slug=route, external_id=external_id)
    services.attach_sources(request_id=submission.request.pk, guild_id=guild_id, sources=sources)
    return submission


# -- Following the server (async, in the bot) ------------------------------------------


class KnowledgeFollower:
    """Records messages of indexed channels as they come, edit and go, and backfills their history."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self.indexed: dict[int, int] = {}
        self._loaded_at = float("-inf")
        # Threads: the indexed channels whose threads were listed since the bot started, and the threads still
        # to visit. Listing is done once per start (to find threads made meanwhile); how far each thread was read
        # is in the database (IndexedThread), so a thread read through is only read forward after a restart.
        self._threads_listed: set[int] = set()
        self._threads_to_read: list[Any] = []

    async def refresh(self, *, force: bool = False) -> dict[int, int]:
        if force or time.monotonic() - self._loaded_at > REFRESH_INTERVAL:
            self.indexed = await sync_to_async(services.indexed_channels)()
            self._loaded_at = time.monotonic()
        return self.indexed

    async def on_message(self, message: discord.Message) -> None:
        indexed = await self.refresh()
        seen = seen_message(message, indexed)
        if seen is not None:
            await sync_to_async(services.record_messages)(messages=[seen])

    async def sources_for_mention(self, message: discord.Message, question: str) -> list[Source] | None:
        """The sources for a mention that asks about the server's past, best first; [] when nothing relevant was found.

        None: answer it as any other message, because it does not clearly ask
        about the server (``asks_about_the_server``), or the member can read no
        indexed channel of this server, or the index cannot be searched now
        (no embedding model). The same permission rules as ``/ask`` apply, the
        answer being posted where the mention was written (or in its thread).
        """
        guild = message.guild
        if guild is None or not asks_about_the_server(question):
            return None
        indexed = await self.refresh()
        candidates = [channel_id for channel_id, guild_id in indexed.items() if guild_id == guild.id]
        readable = readable_channels(
            guild=guild, member=message.author, answer_channel=message.channel, candidates=candidates
        )
        if not readable:
            return None
        user = await sync_to_async(bot_services.discord_chat_user)(
            author=bot_services.DiscordAuthor.of(message.author), role_ids=bot_services.role_ids_of(message.author)
        )
        try:
            return await sync_to_async(services.find_sources)(
                guild_id=guild.id, question=question, channel_ids=readable, user_id=user.pk, excluding=[message.id]
            )
        except AskRefused as refused:
            logger.info("A mention about the server's past is answered as usual: %s", refused)
            return None

    async def on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        indexed = await self.refresh()
        message = payload.message
        if indexed_channel_of(message, indexed) is None:
            return
        seen = seen_message(message, indexed)
        if seen is None:  # emptied, or otherwise no longer for the index
            await sync_to_async(services.record_deletions)(message_ids=[payload.message_id])
        else:
            await sync_to_async(services.record_edit)(
                message_id=seen.message_id, text=seen.text, edited_at=seen.edited_at
            )
            await sync_to_async(services.record_messages)(messages=[seen])  # an old one not read yet

    async def on_delete(self, message_ids: Iterable[int]) -> None:
        # Deletes are applied whatever the channel: a tombstone for an unknown id is a no-op query.
        await sync_to_async(services.record_deletions)(message_ids=list(message_ids))

    async def on_thread_delete(self, thread_id: int) -> None:
        """A deleted thread's messages leave the index (Discord sends no deletion for each of them)."""
        await sync_to_async(services.forget_thread)(thread_id=thread_id)

    async def keep_backfilling(self) -> None:
        """Read the history of every indexed channel not read yet, a page at a time, for as long as the bot runs.

        Paced by KNOWLEDGE_BACKFILL_PAGE_DELAY between pages (discord.py also
        waits out any 429 it gets). Resumable: the cursor is stored with each page.
        """
        await self.client.wait_until_ready()
        try:
            await self.catch_up()
            await sync_to_async(services.warm_indexes)()
        except Exception:
            logger.exception("Could not read what was said in indexed channels while the bot was away")
        while not self.client.is_closed():
            try:
                worked = await self.backfill_once() or await self.backfill_threads_once()
            except Exception:
                logger.exception("Backfilling indexed channels failed; trying again later")
                worked = False
            await asyncio.sleep(settings.KNOWLEDGE_BACKFILL_PAGE_DELAY if worked else REFRESH_INTERVAL / 3)

    async def catch_up(self) -> int:
        """Read each indexed channel forward from its newest message, or from KNOWLEDGE_RESYNC_DAYS back if that is
        earlier: what was said while the bot was offline is indexed, and what was edited or deleted meanwhile in
        that window is re-indexed or removed (Discord sends no events for those). Returns messages read.
        """
        read = 0
        for channel_id, newest in await sync_to_async(services.catch_up_points)():
            indexed = await self.refresh()
            start = services.resync_start(newest=newest)
            began = services.snowflake_at(timezone.now())
            try:
                channel: Any = self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)
                seen_ids = await self.read_forward(channel, after=start, indexed=indexed)
                read += len(seen_ids)
            except discord.HTTPException as exc:
                await sync_to_async(services.record_backfill_error)(channel_id=channel_id, error=str(exc))
                continue
            # Every message of the window was read: an indexed one Discord did not return was deleted.
            gone = await sync_to_async(services.record_missing)(
                channel_id=channel_id, after=start, before=began, seen=seen_ids
            )
            if gone:
                logger.info("%d message(s) deleted in channel %s while the bot was away", gone, channel_id)
        if read:
            logger.info("Read %d message(s) of indexed channels again after the bot was away", read)
        return read

    async def read_forward(self, channel: Any, *, after: int, indexed: dict[int, int]) -> set[int]:
        """Read a channel's or thread's messages after id ``after`` to the newest, storing new ones and new text of
        known ones (embedded again); returns the ids of every message Discord returned."""
        seen_ids: set[int] = set()
        while True:
            page = [m async for m in channel.history(limit=HISTORY_PAGE, after=discord.Object(id=after))]
            seen = [s for s in (seen_message(m, indexed) for m in page) if s is not None]
            await sync_to_async(services.record_messages)(messages=seen)
            seen_ids.update(m.id for m in page)
            if len(page) < HISTORY_PAGE:
                return seen_ids
            after = max(m.id for m in page)
            await asyncio.sleep(settings.KNOWLEDGE_BACKFILL_PAGE_DELAY)

    async def list_threads(self, channel_id: int) -> list[Any]:
        """The public threads of an indexed channel: the active ones and the archived ones (private ones never)."""
        channel: Any = self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)
        guild = getattr(channel, "guild", None)
        found: dict[int, Any] = {}
        if guild is not None:
            for thread in await guild.active_threads():
                if thread.parent_id == channel_id and thread.type in PUBLIC_THREADS:
                    found[thread.id] = thread
        if hasattr(channel, "archived_threads"):
            async for thread in channel.archived_threads(limit=None):
                if thread.type in PUBLIC_THREADS:
                    found[thread.id] = thread
        return list(found.values())

    async def backfill_threads_once(self) -> bool:
        """Visit one thread of an indexed channel whose own history is read; False if none is left to visit.

        Runs after the channels' backfill. A thread's messages count as its parent channel's (the same readers;
        private threads are never read). A thread never read is read backward, a page at a time, its cursor stored
        with each page (``IndexedThread``), so a restart resumes it. A thread read before is read forward from its
        newest indexed message, or KNOWLEDGE_RESYNC_DAYS back if that is earlier, like a channel on start: what was
        said, edited or deleted there while the bot was away reaches the index. An archived thread not touched
        since it was last read is skipped without a call (nobody can write in it without unarchiving it).
        """
        indexed = await self.refresh()
        pending = {t.channel_id for t in await sync_to_async(services.channels_to_backfill)()}
        for channel_id in [c for c in indexed if c not in pending and c not in self._threads_listed]:
            self._threads_listed.add(channel_id)
            try:
                threads = await self.list_threads(channel_id)
            except discord.HTTPException as exc:
                await sync_to_async(services.record_backfill_error)(
                    channel_id=channel_id, error=f"listing its threads: {exc}"
                )
                continue
            self._threads_to_read += threads
            gone = await sync_to_async(services.forget_threads_gone)(
                channel_id=channel_id, present=[t.id for t in threads]
            )
            if gone:
                logger.info("%d message(s) of threads deleted from channel %s left the index", gone, channel_id)
        while self._threads_to_read:
            thread = self._threads_to_read.pop(0)
            if thread.parent_id not in indexed:  # the channel was opted out meanwhile
                continue
            progress = await sync_to_async(services.thread_progress)(thread_id=thread.id)
            if progress is not None and progress.done and untouched_since(thread, progress.read_at):
                continue
            try:
                if progress is not None:
                    await self.catch_up_thread(thread, indexed)
                if progress is None or not progress.done:
                    await self.read_thread_back(thread, indexed, before=progress.before if progress else None)
            except discord.NotFound:
                gone = await sync_to_async(services.forget_thread)(thread_id=thread.id)
                logger.info("Thread %s no longer exists: %d indexed message(s) removed", thread.id, gone)
            except discord.HTTPException as exc:
                await sync_to_async(services.record_backfill_error)(
                    channel_id=thread.parent_id, error=f"reading thread {thread.id}: {exc}"
                )
            return True
        return False

    async def read_thread_back(self, thread: Any, indexed: dict[int, int], *, before: int | None) -> None:
        """A thread's history, newest to oldest from ``before``, a page at a time, each page's cursor stored."""
        started = before is None
        while True:
            cursor = discord.Object(id=before) if before else None
            page = [m async for m in thread.history(limit=HISTORY_PAGE, before=cursor)]
            seen = [s for s in (seen_message(m, indexed) for m in page) if s is not None]
            before = min((m.id for m in page), default=None) if len(page) == HISTORY_PAGE else None
            await sync_to_async(services.record_thread_page)(
                channel_id=thread.parent_id, thread_id=thread.id, messages=seen, oldest_id=before, started=started
            )
            started = False
            if before is None:
                return
            await asyncio.sleep(settings.KNOWLEDGE_BACKFILL_PAGE_DELAY)

    async def catch_up_thread(self, thread: Any, indexed: dict[int, int]) -> None:
        """A thread read before, read forward from where ``services.thread_catch_up_point`` says (see
        ``catch_up``): new messages stored, edits re-indexed, and messages Discord no longer returns removed."""
        point = await sync_to_async(services.thread_catch_up_point)(thread_id=thread.id)
        start = services.resync_start(newest=point)
        now = timezone.now()
        seen_ids = await self.read_forward(thread, after=start, indexed=indexed)
        gone = await sync_to_async(services.record_missing)(
            channel_id=thread.id, after=start, before=services.snowflake_at(now), seen=seen_ids
        )
        if gone:
            logger.info("%d message(s) deleted in thread %s while the bot was away", gone, thread.id)
        await sync_to_async(services.record_thread_read)(thread_id=thread.id, at=now)

    async def backfill_once(self) -> bool:
        """One page of one channel's history; False when there was nothing to read."""
        targets = await sync_to_async(services.channels_to_backfill)()
        if not targets:
            return False
        indexed = await self.refresh(force=True)
        target = targets[0]
        try:
            channel: Any = self.client.get_channel(target.channel_id) or await self.client.fetch_channel(
                target.channel_id
            )
            before = discord.Object(id=target.before) if target.before else None
            page = [m async for m in channel.history(limit=HISTORY_PAGE, before=before)]
        except discord.NotFound:
            await sync_to_async(services.record_backfill_error)(
                channel_id=target.channel_id, error="the channel no longer exists", give_up=True
            )
            return True
        except discord.Forbidden:
            await sync_to_async(services.record_backfill_error)(
                channel_id=target.channel_id,
                error="I'm missing the Read Message History permission there",
                give_up=True,
            )
            return True
        except discord.HTTPException as exc:
            await sync_to_async(services.record_backfill_error)(channel_id=target.channel_id, error=str(exc))
            await asyncio.sleep(BACKFILL_ERROR_PAUSE)
            return True
        seen = [s for s in (seen_message(m, indexed) for m in page) if s is not None]
        oldest = min((m.id for m in page), default=None) if len(page) == HISTORY_PAGE else None
        await sync_to_async(services.record_backfill_page)(
            channel_id=target.channel_id, messages=seen, oldest_id=oldest, read=len(page)
        )
        return True
