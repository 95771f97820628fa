"""Branches: a conversation continued from an earlier message, as a thread of its own.

A reply on Discord to an earlier message (llmcord's reply chains) continues
the conversation from that point. The branch is a new ``Thread`` whose history
is a copy of the source thread's messages up to that point; the source thread
is left as it was.

Copied rather than referenced, because everything that reads a thread reads
its own rows: the context builder, summaries and their ``summary_until``,
token counts, ``/reset`` and ``/close`` (which delete a thread's history and
its files), the console. A branch that pointed into its source would see the
source's later summary, lose its history when the source is closed, and make
every one of those readers learn about branches. A copy costs rows, not
tokens: no request is copied, so nothing is charged twice, and the copied
turns keep Ollama's token counts.

Copied attachments keep the text read from them (what later turns see) but
not the stored upload: only a new message's images are ever sent again, and
two rows sharing one stored file would let one thread's ``/close`` delete the
other's file.
"""

from __future__ import annotations

from django.db import transaction

from conversations.models import Attachment, ChatUser, Message, Request, Thread
from conversations.selectors import after


def branch_point(message: Message) -> Message:
    """The last message a branch from ``message`` keeps: the answer to it, when it is a user message that was answered.

    Replying to a question that was answered continues after that exchange;
    replying to an answer continues after the answer.
    """
    if message.role == Message.Role.USER:
        reply_id = Request.objects.filter(message=message).values_list("reply_id", flat=True).first()
        if reply_id is not None:
            return Message.objects.get(pk=reply_id)
    return message


def is_latest(message: Message) -> bool:
    """True when nothing was said in ``message``'s thread after its branch point: a reply to it is a follow-up."""
    point = branch_point(message)
    return not Message.objects.filter(after(point), thread_id=point.thread_id).exists()


@transaction.atomic
def branch_thread(
    *,
    source: Message,
    platform: str,
    external_id: str,
    title: str,
    owner: ChatUser | None,
    guild_id: str = "",
    parent_channel_id: str = "",
) -> Thread:
    """A new thread holding a copy of ``source``'s thread up to its branch point (``branch_point``).

    The source thread's summary comes along when it covers no more than the
    copied messages; otherwise the branch starts without one and the context
    builder fits the copied turns as for any thread (the user is told what was
    left out).
    """
    point = branch_point(source)
    origin = Thread.objects.select_related("summary_until").get(pk=point.thread_id)
    thread = Thread.objects.create(
        platform=platform,
        external_id=external_id,
        title=title[:100],
        owner=owner,
        guild_id=guild_id,
        parent_channel_id=parent_channel_id,
        branched_from=point,
    )
    kept = list(
        Message.objects.filter(~after(point), thread=origin)
        .prefetch_related("attachments")
        .order_by("created_at", "pk")
    )
    # Two bulk inserts, not one per row: a branch of a long thread is made while its author waits.
    # Both databases we run on return the new primary keys from a bulk insert.
    copied = Message.objects.bulk_create(
        Message(
            thread=thread,
            author_id=message.author_id,
            role=message.role,
            content=message.content,
            token_count=message.token_count,
            route_id=message.route_id,
            model=message.model,
            created_at=message.created_at,
        )
        for message in kept
    )
    copies = {message.pk: copy for message, copy in zip(kept, copied, strict=True)}
    Attachment.objects.bulk_create(
        Attachment(
            message=copies[message.pk],
            kind=attachment.kind,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            extracted_text=attachment.extracted_text,
            note=attachment.note,
            created_at=attachment.created_at,
        )
        for message in kept
        for attachment in message.attachments.all()
    )
    until = origin.summary_until
    if origin.summary and until is not None and until.pk in copies:
        # Not summarized_at: the summary is not news to whoever reads the branch's first answer.
        Thread.objects.filter(pk=thread.pk).update(
            summary=origin.summary, summary_until=copies[until.pk], summary_token_count=origin.summary_token_count
        )
        thread.refresh_from_db()
    return thread
