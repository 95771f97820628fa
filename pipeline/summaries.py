"""Long threads, summarized: when, how, and what it costs.

After each answer, ``after_answer`` checks the thread's size. Past the
threshold (``SUMMARY_THRESHOLD_TOKENS``, or ``SUMMARY_THRESHOLD_RATIO`` of the
route's context size, whichever comes first) it enqueues a django-q2 task, so
nobody waits for the summarizer. The summary covers everything but the last
``SUMMARY_KEEP_TURNS`` messages and is made incrementally: the previous
summary plus the turns since, in batches that fit the summarizer's window.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
import ollama
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Length
from django.utils import timezone
from django_q.tasks import async_task

from budgets.usage import record_usage
from conversations.calibration import calibrate
from conversations.models import Attachment, ChatUser, Message, Request, Thread
from conversations.notices import publish_thread_notice
from pipeline.context import (
    CHARS_PER_TOKEN,
    before,
    estimate_tokens,
    truncate_to_tokens,
    turn_of,
    unsummarized,
)
from routing.models import Route
from routing.selectors import NoRouteAvailable, default_route
from trollama.tls import tls_context

logger = logging.getLogger(__name__)

SUMMARIZE_TASK = "pipeline.tasks.summarize_thread"
NOTICE = "📝 Earlier conversation was summarized, so I can keep following this thread. `/summarize` shows the summary."

INSTRUCTIONS = (
    "You keep the memory of a conversation between people and an AI assistant. Write a summary that lets the "
    "assistant continue the conversation without the original turns: who said what, facts, names, numbers, "
    "decisions, code and file names, open questions, and what the people want. Be concise and specific; use "
    "short paragraphs or bullet points. Write only the summary."
)
# A single turn gets at most this share of a summarizer batch.
TURN_SHARE = 0.5
# A queued summary task is presumed lost after this long, and the next answer enqueues another.
PENDING_FOR = 15 * 60


class SummaryFailed(Exception):
    """The summarizer could not be reached or refused; ``str()`` is for the user."""


@dataclass(frozen=True)
class Written:
    text: str
    prompt_tokens: int
    completion_tokens: int


# -- When ------------------------------------------------------------------------


def threshold(route: Route) -> int:
    """Tokens of context past which a thread on ``route`` is summarized."""
    return min(settings.SUMMARY_THRESHOLD_TOKENS, int(settings.SUMMARY_THRESHOLD_RATIO * route.context_size))


def context_tokens(thread: Thread) -> int:
    """What the thread costs the model now: its summary and the turns it does not cover."""
    turns = Message.objects.filter(unsummarized(thread), thread=thread)
    totals = turns.aggregate(
        counted=Sum("token_count", filter=Q(token_count__isnull=False)),
        chars=Sum(Length("content"), filter=Q(token_count__isnull=True)),
    )
    files = Attachment.objects.filter(message__in=turns.filter(token_count__isnull=True)).aggregate(
        chars=Sum(Length("extracted_text"))
    )
    chars = (totals["chars"] or 0) + (files["chars"] or 0)
    return thread.summary_token_count + (totals["counted"] or 0) + chars // CHARS_PER_TOKEN


def needs_summary(thread: Thread, route: Route) -> bool:
    to_cover = Message.objects.filter(unsummarized(thread), thread=thread).count() - settings.SUMMARY_KEEP_TURNS
    return to_cover > 0 and context_tokens(thread) > threshold(route)


def after_answer(*, request_id: int) -> None:
    """Bookkeeping once a request is answered: its turn's token count, the model's token
    calibration, and a summary if due."""
    try:
        _after_answer(request_id)
    except Exception:  # the answer is stored and delivered; bookkeeping must not turn it into a failure
        logger.exception("Request %s: after-answer bookkeeping failed", request_id)


def _after_answer(request_id: int) -> None:
    request = Request.objects.select_related("thread__summary_until", "route", "message").filter(pk=request_id).first()
    if request is None or request.status != Request.Status.DONE:
        return
    record_turn_tokens(request)
    calibrate(model=request.model, estimate=request.prompt_estimate, prompt_tokens=request.prompt_tokens)
    try:
        route = request.route or default_route()
    except NoRouteAvailable:
        return
    # One summary task per thread at a time: answers keep coming while it runs.
    if needs_summary(request.thread, route) and cache.add(_pending_key(request.thread_id), True, PENDING_FOR):
        thread_id, user_id = request.thread_id, request.user_id
        transaction.on_commit(
            lambda: async_task(SUMMARIZE_TASK, thread_id, user_id, task_name=f"summarize-thread-{thread_id}")
        )


def _pending_key(thread_id: int) -> str:
    return f"conversations:summary-pending:{thread_id}"


def record_turn_tokens(request: Request) -> None:
    """Store Ollama's count for the user's turn, derived from two consecutive prompts.

    When this prompt is exactly the previous one plus its reply plus the new
    turn (same route and system prompt, nothing dropped, no new summary, no
    hidden reasoning), the difference of ``prompt_eval_count`` minus the
    reply's ``eval_count`` is the new turn's cost as the model saw it.
    Otherwise the characters-per-token estimate stays in use.
    """
    message = request.message
    if message.token_count is not None or request.prompt_tokens is None or request.dropped_turns:
        return
    previous_message = (
        Message.objects.filter(before(message), thread=request.thread_id).order_by("-created_at", "-pk").first()
    )
    if previous_message is None or previous_message.role != Message.Role.ASSISTANT:
        return
    previous = Request.objects.filter(reply=previous_message, status=Request.Status.DONE).first()
    if (
        previous is None
        or previous.prompt_tokens is None
        or previous.completion_tokens is None
        or previous.dropped_turns
        or previous.thinking
        or previous.route_id != request.route_id
        or previous.system_prompt != request.system_prompt
    ):
        return
    summarized_at = request.thread.summarized_at
    if summarized_at is not None and previous.started_at is not None and summarized_at >= previous.started_at:
        return
    delta = request.prompt_tokens - previous.prompt_tokens - previous.completion_tokens
    if delta > 0:
        Message.objects.filter(pk=message.pk, token_count__isnull=True).update(token_count=delta)


# -- How -------------------------------------------------------------------------


def transcript_line(message: Message, *, budget: int) -> str:
    turn = turn_of(message)
    speaker = (turn.author or "User") if message.role == Message.Role.USER else "Assistant"
    return f"{speaker}: {truncate_to_tokens(turn.render(label=False), budget, what='turn')}"


def batches(lines: Iterable[str], *, budget: int) -> list[list[str]]:
    """Consecutive lines grouped so that each group's estimate stays within ``budget``."""
    groups: list[list[str]] = [[]]
    used = 0
    for line in lines:
        cost = estimate_tokens(line)
        if groups[-1] and used + cost > budget:
            groups.append([])
            used = 0
        groups[-1].append(line)
        used += cost
    return [group for group in groups if group]


def _client() -> ollama.Client:
    return ollama.Client(
        host=settings.OLLAMA_HOST,
        timeout=httpx.Timeout(settings.OLLAMA_READ_TIMEOUT, connect=settings.OLLAMA_CONNECT_TIMEOUT),
        verify=tls_context(),
    )


def write_summary(*, previous: str, lines: Sequence[str]) -> Written:
    """Fold ``lines`` into ``previous`` with the summarizer model, a batch at a time."""
    window = settings.SUMMARIZER_CONTEXT_SIZE
    # Room for the instructions, the running summary and the summary being written.
    batch_budget = max(256, window // 2 - estimate_tokens(INSTRUCTIONS))
    client = _client()
    summary, prompt_tokens, completion_tokens = previous, 0, 0
    for group in batches(lines, budget=batch_budget):
        summary_part = truncate_to_tokens(summary, window // 8, what="summary")
        prompt = (f"Summary so far:\n{summary_part}\n\n" if summary_part else "") + (
            "Conversation to add:\n" + "\n\n".join(group) + "\n\nWrite the updated summary."
        )
        try:
            response = client.chat(
                model=settings.SUMMARIZER_MODEL,
                messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}],
                options={"num_ctx": window, "temperature": 0.2},
                stream=False,
            )
        except ollama.ResponseError as exc:
            raise SummaryFailed(f"The summarizer model {settings.SUMMARIZER_MODEL} failed: {exc.error}") from None
        except httpx.HTTPError as exc:
            raise SummaryFailed(
                f"I couldn't reach the model server at {settings.OLLAMA_HOST} to summarize ({type(exc).__name__})."
            ) from None
        prompt_tokens += response.prompt_eval_count or 0
        completion_tokens += response.eval_count or 0
        summary = (response.message.content or "").strip() or summary
    return Written(summary, prompt_tokens, completion_tokens)


def _speaker_lines(messages: Iterable[Message]) -> list[str]:
    turn_budget = int(settings.SUMMARIZER_CONTEXT_SIZE * TURN_SHARE / 2)
    return [transcript_line(message, budget=turn_budget) for message in messages]


def _history(thread: Thread) -> list[Message]:
    return list(
        Message.objects.filter(thread=thread)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "pk")
    )


def _payer(thread: Thread, user: ChatUser | None) -> ChatUser | None:
    if user is not None:
        return user
    if thread.owner_id:
        return thread.owner
    last = thread.messages.filter(role=Message.Role.USER, author__isnull=False).order_by("-created_at").first()
    return last.author if last else None


def _record(thread: Thread, user: ChatUser | None, written: Written) -> None:
    payer = _payer(thread, user)
    if payer is None:
        logger.warning("Summary of thread %s has nobody to charge; usage not recorded", thread.pk)
        return
    record_usage(
        user=payer,
        kind="summary",
        model=settings.SUMMARIZER_MODEL,
        prompt_tokens=written.prompt_tokens,
        completion_tokens=written.completion_tokens,
    )


def update_summary(*, thread: Thread, user: ChatUser | None = None, notify: bool = True) -> bool:
    """Fold every turn but the last ``SUMMARY_KEEP_TURNS`` into the thread's summary.

    Returns True if the stored summary moved on. The summarizer runs outside
    any transaction; the result is stored only if nobody else summarized the
    thread meanwhile (checked under a row lock), so two runs never interleave.
    Raises ``SummaryFailed``.
    """
    thread = Thread.objects.select_related("summary_until").get(pk=thread.pk)
    pending = list(
        Message.objects.filter(unsummarized(thread), thread=thread)
        .select_related("author")
        .prefetch_related("attachments")
        .order_by("created_at", "pk")
    )
    to_cover = pending[: max(0, len(pending) - settings.SUMMARY_KEEP_TURNS)]
    if not to_cover:
        return False
    written = write_summary(previous=thread.summary, lines=_speaker_lines(to_cover))
    _record(thread, user, written)
    with transaction.atomic():
        current = Thread.objects.select_for_update().filter(pk=thread.pk).first()
        if current is None or current.summary_until_id != thread.summary_until_id:
            return False
        current.summary = written.text
        current.summary_until = to_cover[-1]
        current.summary_token_count = written.completion_tokens or estimate_tokens(written.text)
        current.summarized_at = timezone.now()
        current.save(update_fields=["summary", "summary_until", "summary_token_count", "summarized_at"])
        if notify:
            publish_notice(current, covered=len(to_cover))
    logger.info("Thread %s: summarized %d more turns", thread.pk, len(to_cover))
    return True


def publish_notice(thread: Thread, *, covered: int) -> None:
    publish_thread_notice(thread, kind="thread.summarized", notice=NOTICE, covered=covered)


def summarize_if_needed(*, thread_id: int, user_id: int | None = None) -> bool:
    """The automatic summary, as the worker task runs it. True if one was written."""
    try:
        return _summarize_if_needed(thread_id, user_id)
    finally:
        cache.delete(_pending_key(thread_id))


def _summarize_if_needed(thread_id: int, user_id: int | None) -> bool:
    thread = Thread.objects.filter(pk=thread_id).first()
    if thread is None:
        return False
    last = Request.objects.filter(thread=thread, route__isnull=False).select_related("route").first()
    try:
        route = last.route if last and last.route else default_route()
    except NoRouteAvailable:
        return False
    if not needs_summary(thread, route):
        return False
    user = ChatUser.objects.filter(pk=user_id).first() if user_id else None
    try:
        return update_summary(thread=thread, user=user)
    except SummaryFailed as exc:
        logger.warning("Thread %s: automatic summary failed: %s", thread_id, exc)
        return False


def summarize_thread(*, thread: Thread, user: ChatUser | None = None) -> str:
    """The thread's summary, brought up to date first; "" for a thread with nothing said.

    A thread too short to have older turns gets a summary of everything,
    written for the caller but not stored (the model still sees those turns
    verbatim). Raises ``SummaryFailed``.
    """
    update_summary(thread=thread, user=user, notify=False)
    thread.refresh_from_db()
    if thread.summary:
        return thread.summary
    history = _history(thread)
    if not history:
        return ""
    written = write_summary(previous="", lines=_speaker_lines(history))
    _record(thread, user, written)
    return written.text
