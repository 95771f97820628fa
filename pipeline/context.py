"""What the model is shown: system prompt, thread summary, and as many recent turns as fit.

The budget is the route's context window (Ollama's ``num_ctx``) minus a
reserve for the answer. Token counts come from Ollama where it reported them
(``Message.token_count``) and from a script-aware estimate for everything
else (``conversations.tokens``), corrected for the model by its calibrated
ratio (``conversations.calibration``). The new message is always sent; if it
alone does not fit it is cut, with a note saying so, rather than overflowing
the window (Ollama would silently drop the start of the prompt, system prompt
included).

What was left out or cut is recorded on the request as ``notices``, so the user
is told under the answer (``pipeline.footnotes``), not only the model.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from conversations import tokens
from conversations.calibration import ratio_for
from conversations.models import Attachment, Message, Request, Thread
from conversations.selectors import after, before
from routing.models import Route

logger = logging.getLogger(__name__)

# Only for rough sums computed in SQL over many rows (``summaries.context_tokens``);
# everything else uses the script-aware estimate.
CHARS_PER_TOKEN = 4
# Share of the context window kept free for the answer.
ANSWER_RESERVE = 0.25
# What an image costs in the prompt, roughly, once a vision model has encoded it.
IMAGE_TOKENS = 768
# Each message costs a few tokens of chat-template markup on top of its text.
MESSAGE_OVERHEAD = 4
SUMMARY_HEADER = "Summary of the earlier conversation (older turns are not shown verbatim):\n"
# Messages are read newest first in growing batches, and reading stops once the budget is spent.
BATCH = 64
MAX_BATCH = 512


def estimate_tokens(text: str, *, ratio: float = 1.0) -> int:
    """Tokens ``text`` costs, at least 1; ``ratio`` is the model's calibration."""
    return tokens.estimate_tokens(text, ratio=ratio)


def context_budget(context_size: int) -> int:
    """Tokens the prompt may use in a window of ``context_size``."""
    return int(context_size * (1 - ANSWER_RESERVE))


OMITTED_NOTE = (
    "\n\n[… {omitted:,} characters of this {what} were left out here to fit the model's context window …]\n\n"
)


def cut_to_tokens(text: str, max_tokens: int, *, what: str = "message", ratio: float = 1.0) -> tuple[str, int]:
    """``text`` cut to about ``max_tokens`` keeping its start and end, with a note where it was cut;
    and how many characters were left out (0 when it fit).

    Both ends are kept because a long paste is usually followed, or preceded,
    by the question about it. Two thirds of the room go to the start.
    """
    if estimate_tokens(text, ratio=ratio) <= max_tokens:
        return text, 0
    room = max_tokens - estimate_tokens(OMITTED_NOTE.format(omitted=len(text), what=what), ratio=ratio) - 2
    for _ in range(4):  # pieces cut inside are priced pro rata, so check and shrink if needed
        raw_room = max(0.0, room / ratio)
        head = tokens.head_within(text, raw_room * 2 / 3)
        tail = tokens.tail_within(text, raw_room / 3, start=head)
        omitted = tail - head
        cut = text[:head] + OMITTED_NOTE.format(omitted=omitted, what=what) + text[tail:]
        excess = estimate_tokens(cut, ratio=ratio) - max_tokens
        if excess <= 0 or room <= 0:
            return cut, omitted
        room -= excess
    return cut, omitted


def truncate_to_tokens(text: str, max_tokens: int, *, what: str = "message", ratio: float = 1.0) -> str:
    return cut_to_tokens(text, max_tokens, what=what, ratio=ratio)[0]


# -- Pure rendering -----------------------------------------------------------


@dataclass(frozen=True)
class FileText:
    kind: str
    filename: str
    text: str = ""
    note: str = ""


@dataclass
class Turn:
    """One message as the model will read it."""

    role: str
    content: str
    author: str = ""
    files: list[FileText] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # base64, only for the new message
    counted: int | None = None  # Ollama's count for this turn as rendered, when known

    def render(self, *, label: bool) -> str:
        # A file sent on its own has no text before it.
        text = "\n\n".join([part for part in (self.content, *map(render_file, self.files)) if part])
        return f"{self.author}: {text}" if label and self.author and self.role == "user" else text

    def cost(self, rendered: str, *, ratio: float = 1.0) -> int:
        counted = self.counted if self.counted is not None else estimate_tokens(rendered, ratio=ratio)
        return counted + MESSAGE_OVERHEAD + IMAGE_TOKENS * len(self.images)


def render_file(file: FileText) -> str:
    """An attachment inside its message: named, with its note, fenced by markers the model can see."""
    if file.kind == Attachment.Kind.IMAGE:
        return f"[Image: {file.filename}]"
    note = f" ({file.note})" if file.note else ""
    return f"[File: {file.filename}{note}]\n{file.text}\n[End of file: {file.filename}]"


@dataclass
class Context:
    messages: list[dict[str, Any]]
    dropped_turns: int
    tokens: int  # the estimate the budget was checked against
    truncated: bool = False  # the new message was cut to fit
    omitted_chars: int = 0  # how much of it was left out
    # Our uncalibrated estimate of the whole prompt, when every part of it was
    # estimated (no Ollama counts, no images): what calibration compares with Ollama's count.
    raw_tokens: int | None = None


def fit_context(
    *,
    budget: int,
    system_prompt: str,
    summary: str,
    current: Turn,
    earlier_newest_first: Iterable[Turn],
    earlier_total: int,
    label: bool,
    ratio: float = 1.0,
) -> Context:
    """Place system prompt, summary, the earlier turns that fit, and the new message.

    ``earlier_newest_first`` is consumed only as far as needed, so a caller
    can stream it from the database. The result never exceeds ``budget``
    by our estimate, which ``ratio`` calibrates for the model.
    """
    head: list[dict[str, Any]] = []
    used = 0
    raw = 0.0
    exact = not current.images  # every part estimated by us, so calibration can learn from it

    def price(text: str) -> int:
        nonlocal raw
        estimate = tokens.raw_estimate(text)
        raw += estimate + MESSAGE_OVERHEAD
        return tokens.scaled(estimate, ratio) + MESSAGE_OVERHEAD

    if system_prompt:
        content = truncate_to_tokens(system_prompt, budget // 2, what="system prompt", ratio=ratio)
        head.append({"role": "system", "content": content})
        used += price(content)
    if summary:
        content = SUMMARY_HEADER + summary
        content = truncate_to_tokens(content, max(64, (budget - used) // 3), what="summary", ratio=ratio)
        head.append({"role": "system", "content": content})
        used += price(content)

    text = current.render(label=label)
    images = IMAGE_TOKENS * len(current.images)
    room = budget - used - MESSAGE_OVERHEAD - images
    text, omitted = cut_to_tokens(text, max(room, 16), ratio=ratio)
    used += price(text) + images
    last: dict[str, Any] = {"role": "user", "content": text}
    if current.images:
        last["images"] = current.images

    kept: list[dict[str, Any]] = []
    for turn in earlier_newest_first:
        rendered = turn.render(label=label)
        estimate = tokens.raw_estimate(rendered) if turn.counted is None else 0.0
        counted = tokens.scaled(estimate, ratio) if turn.counted is None else turn.counted
        cost = counted + MESSAGE_OVERHEAD + IMAGE_TOKENS * len(turn.images)
        if used + cost > budget:
            break
        used += cost
        raw += estimate + MESSAGE_OVERHEAD
        exact = exact and turn.counted is None
        kept.append({"role": turn.role, "content": rendered})
    kept.reverse()
    return Context(
        messages=[*head, *kept, last],
        dropped_turns=earlier_total - len(kept),
        tokens=used,
        truncated=omitted > 0,
        omitted_chars=omitted,
        raw_tokens=round(raw) if exact else None,
    )


# -- Reading the thread ---------------------------------------------------------


def unsummarized(thread: Thread) -> Q:
    """The thread's messages the summary does not cover."""
    summary_until = thread.summary_until if thread.summary_until_id else None
    return after(summary_until) if summary_until is not None else Q()


def _author_name(message: Message) -> str:
    author = message.author
    return (author.display_name or author.username) if author else ""


def _file_texts(message: Message) -> list[FileText]:
    return [FileText(a.kind, a.filename, a.extracted_text, a.note) for a in message.attachments.all()]


def turn_of(message: Message) -> Turn:
    return Turn(
        role=message.role,
        content=message.content,
        author=_author_name(message),
        files=_file_texts(message),
        counted=message.token_count,
    )


def _files_between(thread: Thread, rows: list[tuple[Any, ...]]) -> dict[int, list[FileText]]:
    """The attachments of a batch of message rows (pk first, created_at second), by message.

    Selected by the batch's time range rather than a list of ids: building a
    large IN clause costs more than the query itself.
    """
    wanted = {row[0] for row in rows}
    files: dict[int, list[FileText]] = {}
    found = (
        Attachment.objects.filter(message__thread=thread, message__created_at__range=(rows[-1][1], rows[0][1]))
        .order_by("created_at", "pk")
        .values_list("message_id", "kind", "filename", "extracted_text", "note")
    )
    for message_id, *fields in found:
        if message_id in wanted:
            files.setdefault(message_id, []).append(FileText(*fields))
    return files


def _earlier_turns(thread: Thread, *, new: Message) -> tuple[Iterator[Turn], int]:
    """The turns before ``new`` that the summary does not cover, newest first, and how many there are.

    Rows are read lazily in growing batches (plain tuples, no model
    instances), so a long thread costs only the part of it that fits.
    """
    history = Message.objects.filter(before(new), unsummarized(thread), thread=thread)
    total = history.count()
    columns = ("pk", "created_at", "role", "content", "token_count", "author__display_name", "author__username")

    def turns() -> Iterator[Turn]:
        page, size = history, BATCH
        while True:
            rows = list(page.order_by("-created_at", "-pk").values_list(*columns)[:size])
            if not rows:
                return
            files = _files_between(thread, rows)
            for pk, _, role, content, counted, display_name, username in rows:
                author = (display_name or username or "") if role == Message.Role.USER else ""
                yield Turn(role=role, content=content, author=author, files=files.get(pk, []), counted=counted)
            oldest_pk, oldest_at = rows[-1][0], rows[-1][1]
            page = history.filter(Q(created_at__lt=oldest_at) | Q(created_at=oldest_at, pk__lt=oldest_pk))
            size = min(size * 2, MAX_BATCH)

    return turns(), total


def has_several_people(thread: Thread) -> bool:
    authors = thread.messages.filter(role=Message.Role.USER).order_by().values("author_id").distinct()
    return authors[:2].count() > 1


def image_payloads(message: Message) -> list[str]:
    """The message's images, base64 as Ollama takes them, for as long as the uploads exist."""
    images = []
    for attachment in message.attachments.filter(kind=Attachment.Kind.IMAGE).exclude(file=""):
        try:
            with attachment.file.open("rb") as handle:
                images.append(base64.b64encode(handle.read()).decode("ascii"))
        except OSError:
            logger.warning("Image %s of message %s is gone; sending its name only", attachment.pk, message.pk)
    return images


def build_context(*, request: Request, route: Route, system_prompt: str, images: bool = True) -> Context:
    """The messages for ``request`` on ``route``, and how many earlier turns did not fit.

    ``images=False`` leaves the new message's images out (a model without
    vision). The estimate is calibrated for ``request.model``.
    """
    thread = Thread.objects.select_related("summary_until").get(pk=request.thread_id)
    new = request.message
    label = has_several_people(thread)
    current = turn_of(new)
    if images:
        current.images = image_payloads(new)
    current.counted = None  # the new turn is rendered fresh, maybe cut
    earlier, total = _earlier_turns(thread, new=new)
    return fit_context(
        budget=context_budget(route.context_size),
        system_prompt=system_prompt,
        summary=thread.summary,
        current=current,
        earlier_newest_first=earlier,
        earlier_total=total,
        label=label,
        ratio=ratio_for(request.model),
    )


def context_notices(*, request: Request, context: Context) -> list[dict[str, Any]]:
    """What the user should be told about how their message reached the model (``pipeline.footnotes``).

    A file cut when it was read, the message cut to fit, earlier turns left
    out, the first answer of a branch (``conversations.branches``), and a
    summary written since the thread's previous request.
    """
    notices: list[dict[str, Any]] = [
        {"code": "file_cut", "file": filename, "detail": note}
        for filename, note in request.message.attachments.exclude(kind=Attachment.Kind.IMAGE)
        .exclude(note="")
        .values_list("filename", "note")
    ]
    if context.truncated:
        notices.append({"code": "message_cut", "omitted_chars": context.omitted_chars})
    if context.dropped_turns:
        notices.append({"code": "turns_dropped", "count": context.dropped_turns})
    thread = request.thread
    if thread.branched_from_id is not None and not Request.objects.filter(thread=thread, pk__lt=request.pk).exists():
        notices.append({"code": "branched"})
    if thread.summary and thread.summarized_at is not None and thread.summary_until_id:
        previous = (
            Request.objects.filter(thread=thread, started_at__isnull=False)
            .exclude(pk=request.pk)
            .order_by("-started_at")
            .values_list("started_at", flat=True)
            .first()
        )
        until = thread.summary_until
        if until is not None and (previous is None or thread.summarized_at > previous):
            covered = Message.objects.filter(~after(until), thread=thread).count()
            notices.append({"code": "summarized", "covered": covered})
    return notices


# Notices set when the message was taken in (``pipeline.services.submit_request``), kept on every attempt.
INTAKE_CODES = frozenset({"file_refused"})


def unseen_images_notice(*, request: Request, images: bool) -> dict[str, Any] | None:
    """The notice that the model could not see the new message's images, or None when it saw them (or had none)."""
    if images:
        return None
    count = request.message.attachments.filter(kind=Attachment.Kind.IMAGE).count()
    return {"code": "images_unseen", "count": count, "model": request.model} if count else None


def build_chat_messages(
    *, request: Request, route: Route, system_prompt: str, images: bool = True
) -> list[dict[str, Any]]:
    """System prompt, thread summary, the most recent turns that fit, then the new message.

    The new message's images go in its ``images`` field unless ``images`` is
    False (the chosen model has no vision: the user is told so). Records on
    the request how many earlier turns were left out, what the user should be
    told about it (``notices``, after those from intake) and the prompt's
    estimate for calibration.
    """
    context = build_context(request=request, route=route, system_prompt=system_prompt, images=images)
    kept = [notice for notice in request.notices or [] if notice.get("code") in INTAKE_CODES]
    unseen = unseen_images_notice(request=request, images=images)
    notices = [*kept, *([unseen] if unseen else []), *context_notices(request=request, context=context)]
    Request.objects.filter(pk=request.pk).update(
        dropped_turns=context.dropped_turns, notices=notices, prompt_estimate=context.raw_tokens
    )
    request.dropped_turns, request.notices, request.prompt_estimate = (
        context.dropped_turns,
        notices,
        context.raw_tokens,
    )
    if context.truncated:
        logger.info("Request %s: the new message was cut to fit %s tokens", request.pk, route.context_size)
    return context.messages
