"""Use cases of the server knowledge index: opting channels in, recording messages, embedding, asking, forgetting.

Writers are cheap and synchronous: the bot calls them with ``sync_to_async``
for each message it sees in an indexed channel; embedding happens on the
workers (``embed_pending``, a django-q2 task queued on commit), in batches of
``KNOWLEDGE_EMBED_BATCH`` through Ollama's ``/api/embed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import httpx
import ollama
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django_q.tasks import async_task

from knowledge import index
from knowledge.models import Ask, EmbeddingState, ForgottenUser, IndexedChannel, IndexedMessage, IndexedThread
from knowledge.vectors import clauses, to_bytes
from routing import embeddings, hosts
from routing.models import RouterSettings
from routing.signals import record_usage

logger = logging.getLogger(__name__)

EMBED_TASK = "knowledge.tasks.embed_pending"
# At most one embedding task is queued per this many seconds; the task drains the whole backlog.
EMBED_DEBOUNCE = timedelta(seconds=5)
# What one message contributes, at most, to what is embedded and to what the model is shown.
EMBED_CHARS = 2000
# How much of the message a reply answers is embedded in front of it ("Tuesday at 8" after "when is the quiz?").
REPLY_CONTEXT_CHARS = 300
SOURCE_CHARS = 700
# How much likeness to a message already chosen costs a candidate (maximal marginal relevance, see
# knowledge.vectors): near-copies of one remark make way for messages that add something.
DIVERSITY = 0.3


def embedding_model() -> str:
    """KNOWLEDGE_EMBEDDING_MODEL, or else the router's embedding model."""
    return settings.KNOWLEDGE_EMBEDDING_MODEL or RouterSettings.current().embedding_model


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    days = settings.KNOWLEDGE_RETENTION_DAYS
    return (now or timezone.now()) - timedelta(days=days) if days else None


# -- Which channels ------------------------------------------------------------


def indexed_channels() -> dict[int, int]:
    """Every indexed channel's id and its guild's, for the bot's cache."""
    return dict(IndexedChannel.objects.values_list("channel_id", "guild_id"))


@transaction.atomic
def set_indexing(*, guild_id: int, channel_id: int, name: str, on: bool, by: str) -> bool:
    """Opt a channel in (``on``) or out; returns whether anything changed.

    Opting out deletes the channel's indexed messages with it: "off" means
    nobody can find them any more, not only that new ones are not added.
    """
    if on:
        _, created = IndexedChannel.objects.get_or_create(
            channel_id=channel_id, defaults={"guild_id": guild_id, "name": name[:100], "added_by": by[:150]}
        )
        logger.info("Channel %s (%s) indexed: %s, by %s", channel_id, name, "on" if created else "already", by)
        return created
    deleted, _ = IndexedChannel.objects.filter(channel_id=channel_id).delete()
    logger.info("Channel %s (%s) no longer indexed, by %s", channel_id, name, by)
    return bool(deleted)


# -- Recording what is said --------------------------------------------------------


@dataclass(frozen=True)
class SeenMessage:
    """One Discord message as the bot saw it. ``channel_id``: the indexed channel (a thread's parent)."""

    message_id: int
    channel_id: int
    posted_in: int
    guild_id: int
    author_id: int
    author_name: str
    created_at: datetime
    text: str
    edited_at: datetime | None = None
    reply_to: int | None = None  # the message it replies to


def _enqueue_embedding() -> None:
    """Queue the embedding task unless one was queued within EMBED_DEBOUNCE (the task drains everything)."""
    now = timezone.now()
    EmbeddingState.current()
    claimed = (
        EmbeddingState.objects.filter(pk=1)
        .filter(Q(queued_until__isnull=True) | Q(queued_until__lt=now))
        .update(queued_until=now + EMBED_DEBOUNCE)
    )
    if claimed:
        async_task(EMBED_TASK, task_name=f"knowledge-embed-{int(now.timestamp() * 1000)}")


@transaction.atomic
def record_messages(*, messages: Sequence[SeenMessage]) -> int:
    """Store new messages, and new text of known ones, for embedding; returns how many will be (re)embedded.

    Left out: channels not indexed, people who ran ``/forget-me``, messages
    with no text, and messages older than the retention. A known message whose
    text did not change is left alone, so a backfill overlapping live messages
    costs no embedding.
    """
    cutoff = retention_cutoff()
    channels = dict(
        IndexedChannel.objects.filter(channel_id__in={m.channel_id for m in messages}).values_list("channel_id", "pk")
    )
    forgotten = set(
        ForgottenUser.objects.filter(user_id__in={m.author_id for m in messages}).values_list("user_id", flat=True)
    )
    wanted = [
        m
        for m in messages
        if m.channel_id in channels
        and m.author_id not in forgotten
        and m.text.strip()
        and (cutoff is None or m.created_at >= cutoff)
    ]
    if not wanted:
        return 0
    known = dict(
        IndexedMessage.objects.filter(message_id__in=[m.message_id for m in wanted]).values_list("message_id", "text")
    )
    now = timezone.now()
    new = [
        IndexedMessage(
            message_id=m.message_id,
            channel_id=channels[m.channel_id],
            posted_in=m.posted_in,
            guild_id=m.guild_id,
            author_id=m.author_id,
            author_name=m.author_name[:100],
            created_at=m.created_at,
            edited_at=m.edited_at,
            text=m.text,
            reply_to=m.reply_to,
            changed_at=now,
        )
        for m in {m.message_id: m for m in wanted if m.message_id not in known}.values()
    ]
    IndexedMessage.objects.bulk_create(new, ignore_conflicts=True)
    changed = [m for m in wanted if m.message_id in known and known[m.message_id] != m.text]
    for m in changed:
        _store_new_text(m.message_id, m.text, m.edited_at or now, now)
    if new or changed:
        transaction.on_commit(_enqueue_embedding)
    return len(new) + len(changed)


def _store_new_text(message_id: int, text: str, edited_at: datetime, now: datetime) -> None:
    IndexedMessage.objects.filter(message_id=message_id, deleted=False).update(
        text=text, edited_at=edited_at, embedding=None, pieces=None, needs_embedding=True, changed_at=now
    )


@transaction.atomic
def record_edit(*, message_id: int, text: str, edited_at: datetime | None = None) -> bool:
    """A known message's new text, to embed again; an edit that empties it deletes it. False if not indexed."""
    if not text.strip():
        return bool(record_deletions(message_ids=[message_id]))
    now = timezone.now()
    current = IndexedMessage.objects.filter(message_id=message_id, deleted=False).values_list("text", flat=True).first()
    if current is None or current == text:
        return False
    _store_new_text(message_id, text, edited_at or now, now)
    transaction.on_commit(_enqueue_embedding)
    return True


def _tombstone(rows: Q) -> int:
    return IndexedMessage.objects.filter(rows, deleted=False).update(
        deleted=True, text="", embedding=None, pieces=None, needs_embedding=False, changed_at=timezone.now()
    )


def record_deletions(*, message_ids: Iterable[int]) -> int:
    """Messages deleted in Discord: gone from every search from the next ask on (their rows become tombstones)."""
    return _tombstone(Q(message_id__in=list(message_ids)))


@transaction.atomic
def forget_user(*, user_id: int) -> int:
    """``/forget-me``: delete the user's indexed messages and never index theirs again. Returns how many went."""
    ForgottenUser.objects.get_or_create(user_id=user_id)
    return _tombstone(Q(author_id=user_id))


# -- Embedding (workers) -------------------------------------------------------------


class EmbeddingUnavailable(Exception):
    """The embedding model cannot be used now; ``str()`` says why, for the person asking or the console."""


def _embed(texts: Sequence[str], model: str) -> list[list[float]]:
    """Vectors of ``texts`` from some Ollama host; raises EmbeddingUnavailable with a reason."""
    return _embed_counted(texts, model).vectors


def _embed_counted(texts: Sequence[str], model: str) -> embeddings.Embedded:
    """``_embed`` with the server's token count, for calls made for someone (a question)."""
    if not model:
        raise EmbeddingUnavailable(
            "no embedding model is set: an operator can set one in the admin's Router settings "
            "or with KNOWLEDGE_EMBEDDING_MODEL"
        )
    choice = hosts.choose_host(model)
    if choice is None:
        raise EmbeddingUnavailable("every model server is switched off or failing right now")
    try:
        return embeddings.embed(host=choice.url, model=model, texts=texts, timeout=settings.KNOWLEDGE_EMBED_TIMEOUT)
    except ollama.ResponseError as exc:
        if exc.status_code == 404:
            raise EmbeddingUnavailable(
                f"the embedding model `{model}` is not installed on the model server "
                f"(an operator can install it with `ollama pull {model}`)"
            ) from None
        raise EmbeddingUnavailable(f"the model server refused to embed with `{model}`: {exc.error}") from None
    except (httpx.HTTPError, ConnectionError) as exc:
        raise EmbeddingUnavailable(f"the model server at {choice.url} is not answering ({exc})") from None


# Embedding models trained to be told which side of a search a text is on: (question prefix, document prefix),
# from each model's card. Others (all-minilm, bge-m3, granite-embedding…) take the text as it is.
PREFIXES = {
    "nomic-embed-text": ("search_query: ", "search_document: "),
    "mxbai-embed-large": ("Represent this sentence for searching relevant passages: ", ""),
    "snowflake-arctic-embed": ("Represent this sentence for searching relevant passages: ", ""),
    "snowflake-arctic-embed2": ("query: ", ""),
}


def prefixes(model: str) -> tuple[str, str]:
    """The (question, document) prefixes ``model`` expects; ``("", "")`` for a model that has none."""
    return PREFIXES.get(model.rsplit("/", 1)[-1].split(":", 1)[0], ("", ""))


def embedding_text(author_name: str, text: str, model: str = "", *, replying_to: str = "") -> str:
    """What is embedded for a message: its text, after the model's document prefix if it has one.

    A reply's text comes after the start of the message it answers
    (``replying_to``), so a short answer ("Tuesday at 8", "I'll take it") is
    found by the question it answers.

    The author's name is left out of the vector: with it, a question naming
    someone ("which city is Jun moving to?") was most similar to everything
    that person ever wrote. Names are found by the keyword side of the search
    instead, which reads "author: text" (``knowledge.index``).
    """
    context = f"{replying_to[:REPLY_CONTEXT_CHARS]}\n" if replying_to.strip() else ""
    return (prefixes(model)[1] + context + text)[:EMBED_CHARS]


def piece_texts(text: str, model: str = "") -> list[str]:
    """What is embedded for a message's clauses (``knowledge.vectors.clauses``), after the document prefix."""
    prefix = prefixes(model)[1]
    return [(prefix + clause)[:EMBED_CHARS] for clause in clauses(text)]


def pieces_bytes(vectors: Sequence[Sequence[float]]) -> bytes | None:
    """Clause vectors as stored (``IndexedMessage.pieces``): unit float32, one after another; None for none."""
    return b"".join(to_bytes(vector) for vector in vectors) or None


def question_text(question: str, model: str) -> str:
    """What is embedded for a question: after the model's query prefix if it has one."""
    return prefixes(model)[0] + question


def embed_pending(*, limit: int | None = None) -> dict[str, int]:
    """Embed every message waiting for it, a batch per ``/api/embed`` call. Safe to run several at once.

    Two runs may embed the same rows; the second write wins with the same
    vector, unless the text changed meanwhile, which the conditional update
    (same text) detects. Clears the debounce first and checks once more at the
    end, so a message stored while this ran is never left waiting.
    """
    model = embedding_model()
    state = EmbeddingState.current()
    if model and state.model != model:
        # The model was changed: everything embedded with another one is embedded again (and searched only
        # once it is, since the in-memory index keeps one model's vectors).
        IndexedMessage.objects.filter(deleted=False, needs_embedding=False).exclude(embedding_model=model).update(
            needs_embedding=True, changed_at=timezone.now()
        )
        EmbeddingState.objects.filter(pk=1).update(model=model)
    embedded = failed = 0
    EmbeddingState.objects.filter(pk=1).update(queued_until=None)
    while limit is None or embedded < limit:
        batch = list(
            IndexedMessage.objects.filter(needs_embedding=True, deleted=False)
            .order_by("-message_id")
            .values_list("message_id", "channel_id", "author_name", "text", "reply_to")[
                : settings.KNOWLEDGE_EMBED_BATCH
            ]
        )
        if not batch:
            break
        parents = dict(
            IndexedMessage.objects.filter(
                message_id__in=[reply_to for *_, reply_to in batch if reply_to], deleted=False
            ).values_list("message_id", "text")
        )
        # Each message's whole text, then its clauses' (none for most chat lines), in the batch's one call.
        pieces = [piece_texts(text, model) for _, _, _, text, _ in batch]
        texts = [
            embedding_text(author, text, model, replying_to=parents.get(reply_to or 0, ""))
            for _, _, author, text, reply_to in batch
        ]
        try:
            vectors = _embed(texts + [piece for found in pieces for piece in found], model)
        except EmbeddingUnavailable as exc:
            _record_embedding_error(str(exc), channel_pks={pk for _, pk, *_ in batch})
            failed = len(batch)
            break
        now = timezone.now()
        clause_vectors = iter(vectors[len(batch) :])
        for (message_id, _, _, text, _), vector, found in zip(batch, vectors[: len(batch)], pieces, strict=True):
            IndexedMessage.objects.filter(message_id=message_id, text=text, deleted=False).update(
                embedding=to_bytes(vector),
                pieces=pieces_bytes([next(clause_vectors) for _ in found]),
                embedding_model=model,
                needs_embedding=False,
                changed_at=now,
            )
        IndexedChannel.objects.filter(pk__in={pk for _, pk, *_ in batch}).update(
            last_indexed_at=now, last_error="", last_error_at=None
        )
        embedded += len(batch)
    EmbeddingState.objects.filter(pk=1).update(last_run_at=timezone.now(), **({} if failed else {"last_error": ""}))
    return {"embedded": embedded, "failed": failed}


def _record_embedding_error(error: str, *, channel_pks: set[int]) -> None:
    logger.warning("Could not embed indexed messages: %s", error)
    now = timezone.now()
    EmbeddingState.objects.filter(pk=1).update(last_error=error, last_error_at=now)
    IndexedChannel.objects.filter(pk__in=channel_pks).update(last_error=f"Embedding: {error}", last_error_at=now)


# -- Cleanup (scheduled) ----------------------------------------------------------------


def cleanup() -> dict[str, int]:
    """Delete messages past the retention (as tombstones first), and purge tombstones older than TOMBSTONE_HOURS."""
    cutoff = retention_cutoff()
    expired = _tombstone(Q(created_at__lt=cutoff)) if cutoff else 0
    horizon = timezone.now() - timedelta(hours=index.TOMBSTONE_HOURS)
    purged, _ = IndexedMessage.objects.filter(deleted=True, changed_at__lt=horizon).delete()
    return {"expired": expired, "purged": purged}


# -- Backfill (the bot reads history) -------------------------------------------------------


@dataclass(frozen=True)
class BackfillTarget:
    channel_id: int
    guild_id: int
    before: int | None


def channels_to_backfill() -> list[BackfillTarget]:
    return [
        BackfillTarget(channel_id, guild_id, before)
        for channel_id, guild_id, before in IndexedChannel.objects.filter(backfill_done=False)
        .order_by("created_at")
        .values_list("channel_id", "guild_id", "backfill_before")
    ]


@transaction.atomic
def record_backfill_page(*, channel_id: int, messages: Sequence[SeenMessage], oldest_id: int | None, read: int) -> int:
    """One page of history (``read`` messages, ``messages`` of them for the index); returns how many were new.

    ``oldest_id`` is where the next page starts (the page's oldest message);
    None means the history is exhausted.

    The cursor moves with the page in one transaction, so a restart resumes
    from the page after the last one stored. History older than the retention
    ends the backfill too.
    """
    stored = record_messages(messages=messages)
    IndexedChannel.objects.filter(channel_id=channel_id).update(
        backfill_before=oldest_id, backfill_done=_history_read(messages, oldest_id), backfilled=F("backfilled") + read
    )
    return stored


def _history_read(page: Sequence[SeenMessage], oldest_id: int | None) -> bool:
    """Whether a backward read ends with ``page``: nothing older (``oldest_id`` None), or older than the retention."""
    cutoff = retention_cutoff()
    return oldest_id is None or (cutoff is not None and any(m.created_at < cutoff for m in page))


DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_at(moment: datetime) -> int:
    """The smallest Discord id made at ``moment``: "after this id" means "written after this moment"."""
    return max(0, int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22


def catch_up_points() -> list[tuple[int, int]]:
    """(channel id, message id) to read each indexed channel forward from, for what was said while the bot was away.

    The newest indexed message, or for a channel with none the moment it was
    opted in (its backfill reads what came before that).
    """
    return [
        (channel_id, newest or snowflake_at(opted_in))
        for channel_id, newest, opted_in in IndexedChannel.objects.annotate(newest=Max("messages__message_id"))
        .order_by("pk")
        .values_list("channel_id", "newest", "created_at")
    ]


def resync_start(*, newest: int, now: datetime | None = None) -> int:
    """Where a restarted bot reads a channel forward from: its newest indexed message, or KNOWLEDGE_RESYNC_DAYS back
    if that is earlier, so the recent window is read again for edits and deletions made while the bot was away."""
    days = settings.KNOWLEDGE_RESYNC_DAYS
    if not days:
        return newest
    return min(newest, snowflake_at((now or timezone.now()) - timedelta(days=days)))


def record_missing(*, channel_id: int, after: int, before: int, seen: Iterable[int]) -> int:
    """Messages posted in ``channel_id`` with ids in (``after``, ``before``) that a re-read did not return: deleted
    in Discord while the bot was away. They become tombstones; returns how many.

    ``before`` is the moment the re-read began (``snowflake_at``), so a message written during it is never
    taken for a deleted one. Only messages posted in the channel itself count (a thread is read on its own).
    """
    indexed = set(
        IndexedMessage.objects.filter(
            posted_in=channel_id, message_id__gt=after, message_id__lt=before, deleted=False
        ).values_list("message_id", flat=True)
    )
    gone = indexed - set(seen)
    return record_deletions(message_ids=gone) if gone else 0


# -- Threads' history (the bot reads each public thread of an indexed channel once, then only what is new) ----------


@dataclass(frozen=True)
class ThreadProgress:
    before: int | None  # where the backward read goes on (None: from the newest)
    done: bool  # the whole history was read
    read_at: datetime  # when the last read of it began


def thread_progress(*, thread_id: int) -> ThreadProgress | None:
    """How far the thread's history was read; None if it never was."""
    row = IndexedThread.objects.filter(thread_id=thread_id).values_list("backfill_before", "backfill_done", "read_at")
    found = row.first()
    if found is None:
        return None
    before, done, read_at = found
    return None if read_at is None else ThreadProgress(before=before, done=done, read_at=read_at)


def _thread_row(channel_id: int, thread_id: int) -> IndexedThread | None:
    channel = IndexedChannel.objects.filter(channel_id=channel_id).first()
    if channel is None:  # opted out meanwhile
        return None
    row, _ = IndexedThread.objects.get_or_create(thread_id=thread_id, defaults={"channel": channel})
    return row


@transaction.atomic
def record_thread_page(
    *, channel_id: int, thread_id: int, messages: Sequence[SeenMessage], oldest_id: int | None, started: bool
) -> int:
    """One page of a thread's history, read backward; returns how many messages were new.

    The cursor (``oldest_id``, None when the history is exhausted) is stored with the page, so a restart resumes
    after the last page stored. ``started``: this is the first page, so the reading began now (a restart reads the
    thread forward from then, for what it missed).
    """
    row = _thread_row(channel_id, thread_id)
    if row is None:
        return 0
    stored = record_messages(messages=messages)
    row.backfill_before = oldest_id
    row.backfill_done = _history_read(messages, oldest_id)
    if started or row.read_at is None:
        row.read_at = timezone.now()
    row.save(update_fields=["backfill_before", "backfill_done", "read_at"])
    return stored


def thread_catch_up_point(*, thread_id: int) -> int:
    """Where a restarted bot reads a thread forward from: its newest indexed message, or the moment its reading
    last began (``resync_start`` then reaches KNOWLEDGE_RESYNC_DAYS back, for edits and deletions)."""
    newest = IndexedMessage.objects.filter(posted_in=thread_id).aggregate(newest=Max("message_id"))["newest"]
    read_at = IndexedThread.objects.filter(thread_id=thread_id).values_list("read_at", flat=True).first()
    points = [p for p in (newest, snowflake_at(read_at) if read_at else None) if p is not None]
    return max(points, default=0)


def record_thread_read(*, thread_id: int, at: datetime) -> None:
    """A forward read of the thread that began ``at`` went through."""
    IndexedThread.objects.filter(thread_id=thread_id).update(read_at=at)


def forget_thread(*, thread_id: int) -> int:
    """The thread no longer exists in Discord: its messages leave the index (tombstones); returns how many."""
    IndexedThread.objects.filter(thread_id=thread_id).delete()
    return _tombstone(Q(posted_in=thread_id))


@transaction.atomic
def forget_threads_gone(*, channel_id: int, present: Iterable[int]) -> int:
    """Threads of ``channel_id`` Discord no longer lists (``present``: every public thread it has, active and
    archived) were deleted, while the bot was away or before it saw it: their messages leave the index too."""
    present = set(present)
    IndexedThread.objects.filter(channel__channel_id=channel_id).exclude(thread_id__in=present).delete()
    return _tombstone(
        Q(channel__channel_id=channel_id) & ~Q(posted_in=channel_id) & ~Q(posted_in__in=present),
    )


def record_backfill_error(*, channel_id: int, error: str, give_up: bool = False) -> None:
    IndexedChannel.objects.filter(channel_id=channel_id).update(
        last_error=f"Reading history: {error}"[:1000],
        last_error_at=timezone.now(),
        **({"backfill_done": True} if give_up else {}),
    )


# -- Asking ------------------------------------------------------------------------------------


class AskRefused(Exception):
    """``/ask`` cannot go ahead; ``str()`` is the message for the person asking."""


@dataclass(frozen=True)
class Source:
    n: int
    message_id: int
    url: str
    author: str
    created_at: str  # ISO 8601
    channel: str
    text: str
    similarity: float


NO_INDEXED_CHANNEL = (
    "No channel in this server is indexed yet, so I have nothing to search. "
    "A member with **Manage Server** can turn it on in a channel with `/index on`."
)
NONE_READABLE = (
    "None of the indexed channels is one you can read from here, so I have nothing to search for you. "
    "Ask in the channel you want answers from, or ask a moderator which channels are indexed."
)
EMPTY_QUESTION = "Your question is empty. Write what you want to know, e.g. `/ask question: when is the next event?`"
NOTHING_FOUND = (
    "I found nothing in the indexed channels you can read that answers this, so I won't guess. "
    "Try other words, or ask in the channel where it was discussed."
)


def unavailable_text(reason: str) -> str:
    return f"I can't search the server's messages right now: {reason}. Please try again later."


def check_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise AskRefused(EMPTY_QUESTION)
    if len(question) > settings.MAX_MESSAGE_CHARS:
        raise AskRefused(
            f"Your question is {len(question):,} characters long and the limit is {settings.MAX_MESSAGE_CHARS:,}."
        )
    return question


def find_sources(
    *,
    guild_id: int,
    question: str,
    channel_ids: Iterable[int],
    user_id: int | None = None,
    excluding: Iterable[int] = (),
) -> list[Source]:
    """The indexed messages that best answer ``question``, from ``channel_ids`` only, best first.

    ``channel_ids`` are the channels the asking member may read right now
    (the bot computes them from Discord's permissions). Raises ``AskRefused``
    for an empty question, a server with no indexed channel, no readable
    indexed channel, or an embedding model that cannot be used. An empty list
    means nothing was relevant enough. ``user_id`` (a ``ChatUser``'s pk): the
    question's embedding is charged to them (usage kind ``embedding``), like
    the router's embedding of a message, whether or not anything is found.
    ``excluding``: message ids that are never a source (a mention that asks is
    indexed like any message, and may be by the time it is searched for).
    """
    question = check_question(question)
    indexed = dict(IndexedChannel.objects.filter(guild_id=guild_id).values_list("channel_id", "name"))
    if not indexed:
        raise AskRefused(NO_INDEXED_CHANNEL)
    readable = set(channel_ids) & set(indexed)
    if not readable:
        raise AskRefused(NONE_READABLE)
    model = embedding_model()
    try:
        embedded = _embed_counted([question_text(question, model)], model)
    except EmbeddingUnavailable as exc:
        raise AskRefused(unavailable_text(str(exc))) from None
    if user_id is not None:
        record_usage(
            user=user_id, kind="knowledge", model=model, prompt_tokens=embedded.prompt_tokens, completion_tokens=0
        )
    [query] = embedded.vectors
    return rank_messages(
        guild_id=guild_id, query=query, question=question, channel_ids=readable, model=model, excluding=excluding
    )


def warm_indexes() -> int:
    """Load every guild's in-memory index now (seconds at 10^5 messages), so the first /ask does not wait for it."""
    model = embedding_model()
    guilds = set(IndexedChannel.objects.values_list("guild_id", flat=True))
    for guild_id in guilds:
        with index.lock():
            index.guild_index(guild_id=guild_id, model=model)
    return len(guilds)


def rank_messages(
    *,
    guild_id: int,
    query: Sequence[float],
    question: str = "",
    channel_ids: Iterable[int],
    model: str | None = None,
    excluding: Iterable[int] = (),
) -> list[Source]:
    """The search behind ``find_sources``, for a question already embedded (with ``model``): best first, repeats dropped.

    With ``question``'s words the search is hybrid (embedding and keyword rankings fused, see
    ``knowledge.vectors.GuildIndex.search``); without, by embedding alone.
    """
    readable = set(channel_ids)
    excluded = set(excluding)
    model = model or embedding_model()
    cutoff = retention_cutoff()
    with index.lock():
        found = index.guild_index(guild_id=guild_id, model=model).search(
            query,
            channel_ids=readable,
            now=time.time(),
            # More than needed: repeats of one text ("gg", a copied announcement) are dropped below.
            limit=settings.KNOWLEDGE_RESULTS * 4,
            min_similarity=settings.KNOWLEDGE_MIN_SIMILARITY,
            not_before=cutoff.timestamp() if cutoff else None,
            diversity=DIVERSITY,
            query_text=question,
        )
    rows = (
        IndexedMessage.objects.filter(message_id__in=[hit.message_id for hit in found], deleted=False)
        .select_related("channel")
        .in_bulk()
    )
    sources: list[Source] = []
    seen_texts: set[str] = set()
    for hit in found:
        row = rows.get(hit.message_id)
        if row is None or row.message_id in excluded:  # deleted since the index was refreshed, or the question
            continue
        said = " ".join(row.text.lower().split())
        if said in seen_texts:  # the same words again tell the model nothing new (the best-ranked copy stays)
            continue
        seen_texts.add(said)
        if len(sources) == settings.KNOWLEDGE_RESULTS:
            break
        sources.append(
            Source(
                n=len(sources) + 1,
                message_id=row.message_id,
                url=row.jump_url,
                author=row.author_name,
                created_at=row.created_at.isoformat(),
                channel=row.channel.name,
                text=row.text[:SOURCE_CHARS],
                similarity=round(hit.similarity, 4),
            )
        )
    return sources


def attach_sources(*, request_id: int, guild_id: int, sources: Sequence[Source]) -> Ask:
    """Remember what was retrieved for a request; call inside the transaction that submits it."""
    return Ask.objects.create(request_id=request_id, guild_id=guild_id, sources=[asdict(s) for s in sources])


# -- What the model and the user are shown (the request pipeline calls these) ------------------

ASK_INSTRUCTIONS = (
    "The user is asking about what was said in this Discord server. These are the server's messages found for "
    "the question, numbered, each with its author, channel and date (UTC). Answer only from them. Cite the "
    "message behind every claim with its number in square brackets, like [2]. If they do not answer the "
    "question, say so plainly instead of guessing. Quote nobody as saying what they did not say. The user sees "
    "each number's link, author and date under your answer."
)


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def instructions_for(*, request_id: int) -> list[str]:
    """The system prompt's part for an ``/ask`` request (its numbered sources); [] for any other request."""
    ask = Ask.objects.filter(request_id=request_id).first()
    if ask is None:
        return []
    lines = [ASK_INSTRUCTIONS, ""]
    for source in ask.sources:
        place = f" in #{source['channel']}" if source.get("channel") else ""
        lines.append(f"[{source['n']}] {source['author']}{place}, {_when(source['created_at']):%Y-%m-%d %H:%M}:")
        lines.append(source["text"])
        lines.append("")
    return ["\n".join(lines).strip()]


def sources_notice(*, request_id: int) -> dict[str, object] | None:
    """The ``sources`` notice shown under an ``/ask`` answer (``pipeline.footnotes``); None for others."""
    ask = Ask.objects.filter(request_id=request_id).first()
    if ask is None:
        return None
    return {
        "code": "sources",
        "sources": [
            {"n": s["n"], "url": s["url"], "author": s["author"], "date": _when(s["created_at"]).date().isoformat()}
            for s in ask.sources
        ],
    }
