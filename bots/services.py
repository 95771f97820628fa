"""What the Discord bot does to the database, as synchronous services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bots.models import BotHeartbeat, CommandSync
from budgets.services import sync_role_tier
from conversations.branches import branch_thread, is_latest
from conversations.models import ChatUser, Message, Platform, Request, Thread
from pipeline.attachments import Unreadable, Upload
from pipeline.services import (
    Refusal,
    Submission,
    cancel_request,
    check_intake,
    close_thread,
    get_or_create_chat_user,
    submit_request,
)
from pipeline.snapshots import request_snapshot
from routing.services import move_next_route


@dataclass(frozen=True)
class DiscordAuthor:
    id: int
    username: str
    display_name: str

    @classmethod
    def of(cls, user: Any) -> DiscordAuthor:
        """The author facts of a discord.py ``User`` or ``Member``."""
        return cls(id=user.id, username=user.name, display_name=getattr(user, "display_name", None) or user.name)


def role_ids_of(user: Any) -> list[int] | None:
    """A guild member's role ids; None for a user seen outside a guild (a DM carries no roles)."""
    roles = getattr(user, "roles", None) if getattr(user, "guild", None) is not None else None
    return [role.id for role in roles] if roles is not None else None


def discord_chat_user(*, author: DiscordAuthor, role_ids: Sequence[int] | None = None) -> ChatUser:
    """The chat user for a Discord author, with the tier their roles give them brought up to date.

    ``role_ids`` are the author's roles in the server; None (a DM, where
    Discord sends no roles) keeps the tier their roles gave them last time.
    """
    user = get_or_create_chat_user(
        platform=Platform.DISCORD,
        external_id=str(author.id),
        username=author.username,
        display_name=author.display_name,
    )
    if role_ids is not None:
        sync_role_tier(user=user, role_ids=role_ids)
    return user


def check_discord_intake(
    *, author: DiscordAuthor, content: str, has_attachments: bool = False, role_ids: Sequence[int] | None = None
) -> None:
    """Raise ``Refusal`` if this author's message would be refused (see ``pipeline.services.check_intake``)."""
    check_intake(
        user=discord_chat_user(author=author, role_ids=role_ids), content=content, has_attachments=has_attachments
    )


@transaction.atomic
def submit_discord_message(
    *,
    author: DiscordAuthor,
    channel_id: int,
    channel_title: str,
    content: str,
    message_id: int,
    guild_id: int | None = None,
    parent_channel_id: int | None = None,
    attachments: Sequence[Upload] = (),
    refused_files: Sequence[Unreadable] = (),
    role_ids: Sequence[int] | None = None,
    branch_from: int | None = None,
    written_in: int | None = None,
) -> Submission:
    """Store a Discord message (and its files) as a turn of the conversation in ``channel_id`` and queue it.

    ``branch_from`` (``branch_source``): the message is a reply that continues
    another point of a conversation, so ``channel_id`` gets a branch of it
    (``conversations.branches``). A new Discord thread simply holds the branch;
    a DM, which holds one conversation, sets the one it held aside first
    (kept, under ``set_aside_id``, so replies to it still branch from it).
    ``refused_files``: files the bot left out before downloading them.
    ``written_in``: the channel the message was written in, when not
    ``channel_id`` (a reply in a thread that branched into a new thread), so a
    restarted bot still finds it to react on. ``role_ids``: see ``discord_chat_user``. Raises
    ``pipeline.services.Refusal`` with a message for the user.
    """
    user = discord_chat_user(author=author, role_ids=role_ids)
    source = Message.objects.filter(pk=branch_from).first() if branch_from is not None else None
    if source is not None:
        thread = _branch_into_channel(
            user=user,
            source=source,
            channel_id=channel_id,
            channel_title=channel_title,
            guild_id=guild_id,
            parent_channel_id=parent_channel_id,
        )
    else:
        thread = _channel_thread(
            user=user,
            message_id=message_id,
            channel_id=channel_id,
            channel_title=channel_title,
            guild_id=guild_id,
            parent_channel_id=parent_channel_id,
        )
    return submit_request(
        user=user,
        thread=thread,
        content=content,
        external_id=str(message_id),
        external_channel_id=str(written_in) if written_in and written_in != channel_id else "",
        attachments=attachments,
        refused_files=refused_files,
    )


def _branch_into_channel(
    *,
    user: ChatUser,
    source: Message,
    channel_id: int,
    channel_title: str,
    guild_id: int | None,
    parent_channel_id: int | None,
) -> Thread:
    """The branch of ``source``'s conversation that ``channel_id`` holds from now on (a DM's current one set aside)."""
    current = Thread.objects.select_for_update().filter(platform=Platform.DISCORD, external_id=str(channel_id))
    held = current.first()
    if held is not None:
        if Request.objects.filter(thread=held).exclude(status__in=Request.FINISHED).exists():
            raise Refusal(BRANCH_BUSY, code="branch_busy")
        Thread.objects.filter(pk=held.pk).update(external_id=set_aside_id(channel_id, held.pk))
    return branch_thread(
        source=source,
        platform=Platform.DISCORD,
        external_id=str(channel_id),
        title=channel_title,
        owner=user,
        guild_id=str(guild_id or ""),
        parent_channel_id=str(parent_channel_id or ""),
    )


def _channel_thread(
    *,
    user: ChatUser,
    message_id: int,
    channel_id: int,
    channel_title: str,
    guild_id: int | None,
    parent_channel_id: int | None,
) -> Thread:
    """The conversation ``channel_id`` holds, created with this message when it has none."""
    thread, created = Thread.objects.get_or_create(
        platform=Platform.DISCORD,
        external_id=str(channel_id),
        defaults={
            "title": channel_title[:100],
            "owner": user,
            "guild_id": str(guild_id or ""),
            "parent_channel_id": str(parent_channel_id or ""),
        },
    )
    # A thread opened from this very message (Discord gives it the message's id): a
    # route the author chose with /route in the channel applies to it.
    if created and parent_channel_id and channel_id == message_id:
        parent = discord_thread(channel_id=parent_channel_id)
        if parent is not None:
            move_next_route(user=user, from_thread=parent, to_thread=thread)
    return thread


BRANCH_BUSY = (
    "I'm still answering in this conversation. Wait for that answer (or say stop), then reply again to branch from "
    "that message."
)


def set_aside_id(channel_id: int, thread_pk: int) -> str:
    """The ``Thread.external_id`` of a DM's conversation set aside for a branch: never a channel id, so never resumed."""
    return f"{channel_id}@{thread_pk}"


def set_aside_conversations(*, channel_id: int) -> list[Thread]:
    """The conversations set aside in this DM (or forum post) for branches, oldest first (``set_aside_id``)."""
    return list(
        Thread.objects.filter(platform=Platform.DISCORD, external_id__startswith=f"{channel_id}@")
        .select_related("owner")
        .order_by("pk")
    )


def stored_message(*, channel_id: int, message_id: int) -> Message | None:
    """The stored turn a Discord message shows, for a reply written in ``channel_id``; None when it is none of ours.

    A user's message is found by its id wherever its conversation lives (a
    message that started a thread sits in the thread's parent channel). A
    bot's message is found among the answers shown in this channel: those of
    the conversation held here and of any set aside here (``set_aside_id``).
    """
    asked = (
        Message.objects.filter(thread__platform=Platform.DISCORD, role=Message.Role.USER, external_id=str(message_id))
        .order_by("pk")
        .first()
    )
    if asked is not None:
        return asked
    shown_here = Q(thread__external_id=str(channel_id)) | Q(thread__external_id__startswith=f"{channel_id}@")
    answers = Request.objects.filter(shown_here, thread__platform=Platform.DISCORD, reply__isnull=False)
    # Scanned in Python: SQLite cannot look inside a JSON list, and one channel's answers are few.
    for reply_id, shown_in in answers.order_by("-pk").values_list("reply_id", "discord_message_ids"):
        if message_id in (shown_in or []):
            return Message.objects.get(pk=reply_id)
    return None


def branch_source(*, channel_id: int, replied_id: int) -> int | None:
    """The message to branch from when a message in ``channel_id`` replies to ``replied_id``; None when not a branch.

    Not a branch: a reply to a message that is none of ours, and a reply to
    the latest turn of the conversation held in this channel (a follow-up).
    """
    message = stored_message(channel_id=channel_id, message_id=replied_id)
    if message is None:
        return None
    if message.thread.external_id == str(channel_id) and is_latest(message):
        return None
    return message.pk


def mark_delivered(*, request_id: int) -> None:
    Request.objects.filter(pk=request_id, delivered_at__isnull=True).update(delivered_at=timezone.now())


def claim_undelivered(*, request_id: int) -> bool:
    """Take the delivery of one finished answer; False if it was already delivered.

    The outbox marks before sending, so a crash between the two loses that one
    message rather than ever sending it twice.
    """
    return bool(Request.objects.filter(pk=request_id, delivered_at__isnull=True).update(delivered_at=timezone.now()))


def undelivered_requests() -> list[Request]:
    """Discord requests that finished but never reached Discord, oldest first."""
    since = timezone.now() - timedelta(hours=settings.DISCORD_OUTBOX_HOURS)
    return list(
        Request.objects.filter(
            thread__platform=Platform.DISCORD,
            status__in=(Request.Status.DONE, Request.Status.FAILED),
            delivered_at__isnull=True,
            finished_at__gte=since,
        )
        .select_related("thread", "reply", "message")
        .order_by("finished_at")
    )


def requests_to_take_over(*, exclude: Sequence[int] = ()) -> list[Request]:
    """Discord requests a bot owes an answer and is not showing (``exclude``), oldest first.

    Those still in flight (queued, held, running) and those finished but never
    delivered, from the last DISCORD_OUTBOX_HOURS. A cancelled one is owed only
    when its messages are known, to end them with "Cancelled.".
    """
    since = timezone.now() - timedelta(hours=settings.DISCORD_OUTBOX_HOURS)
    owed = Request.objects.filter(
        thread__platform=Platform.DISCORD, delivered_at__isnull=True, queued_at__gte=since
    ).exclude(thread__external_id__contains="@")  # a DM conversation set aside for a branch (set_aside_id)
    in_flight = Q(status__in=(*Request.WAITING, *Request.RUNNING))
    undelivered = Q(status__in=(Request.Status.DONE, Request.Status.FAILED)) | (
        Q(status=Request.Status.CANCELLED) & ~Q(discord_message_ids=[])
    )
    return list(
        owed.filter(in_flight | undelivered)
        .exclude(pk__in=list(exclude))
        .select_related("thread", "message")
        .order_by("queued_at", "pk")
    )


def request_snapshots(*, request_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """``pipeline.snapshots.request_snapshot`` of each request that still exists."""
    snapshots = {request_id: request_snapshot(request_id) for request_id in request_ids}
    return {request_id: snapshot for request_id, snapshot in snapshots.items() if snapshot is not None}


def remember_discord_messages(*, request_id: int, message_ids: Sequence[int]) -> None:
    """Store which of the bot's messages show a request's answer, so a restarted bot finishes it in them."""
    Request.objects.filter(pk=request_id).update(discord_message_ids=list(message_ids))


def active_request_in_channel(*, channel_id: int, user_id: int | None) -> Request | None:
    """The newest unfinished request in this Discord channel, by this user when given."""
    requests = Request.objects.filter(thread__platform=Platform.DISCORD, thread__external_id=str(channel_id)).exclude(
        status__in=Request.FINISHED
    )
    if user_id is not None:
        requests = requests.filter(user__external_id=str(user_id))
    return requests.select_related("user").order_by("-queued_at").first()


def cancel_for_requester(*, request_id: int, discord_user_id: int) -> Request | None:
    """Cancel ``request_id`` if ``discord_user_id`` asked for it and it is unfinished; None otherwise."""
    request = (
        Request.objects.filter(pk=request_id, user__platform=Platform.DISCORD, user__external_id=str(discord_user_id))
        .exclude(status__in=Request.FINISHED)
        .first()
    )
    return cancel_request(request=request) if request else None


def cancel_for_deleted_message(*, message_id: int) -> Request | None:
    """Cancel the unfinished request asking the Discord message ``message_id``, now deleted."""
    request = (
        Request.objects.filter(thread__platform=Platform.DISCORD, message__external_id=str(message_id))
        .exclude(status__in=Request.FINISHED)
        .first()
    )
    return cancel_request(request=request) if request else None


def beat(*, name: str, connected: bool, latency_ms: float | None, guilds: int, events_connected: bool) -> None:
    """Record that the bot is alive and how it is connected."""
    now = timezone.now()
    BotHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "connected": connected,
            "latency_ms": latency_ms,
            "guilds": guilds,
            "events_connected": events_connected,
            "beat_at": now,
        },
    )


def mark_started(*, name: str) -> None:
    BotHeartbeat.objects.filter(name=name).update(started_at=timezone.now())


def discord_thread(*, channel_id: int) -> Thread | None:
    """The conversation held in this Discord channel or thread, if there is one."""
    return Thread.objects.filter(platform=Platform.DISCORD, external_id=str(channel_id)).first()


def forget_discord_channel(*, channel_id: int, by: str) -> bool:
    """Delete the conversation of a Discord channel that is gone. False if there was none."""
    thread = discord_thread(channel_id=channel_id)
    if thread is None:
        return False
    close_thread(thread=thread, by=by)
    return True


def commands_changed(*, application_id: int, guild_id: int | None, tree_hash: str) -> bool:
    """True unless the commands with this hash were the last synced for this application and scope."""
    return not CommandSync.objects.filter(
        application_id=str(application_id), guild_id=str(guild_id or ""), tree_hash=tree_hash
    ).exists()


def record_command_sync(*, application_id: int, guild_id: int | None, tree_hash: str) -> None:
    """Remember that the commands with this hash are now synced for this application and scope."""
    CommandSync.objects.update_or_create(
        application_id=str(application_id),
        guild_id=str(guild_id or ""),
        defaults={"tree_hash": tree_hash, "synced_at": timezone.now()},
    )
