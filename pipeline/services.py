"""Use cases that change conversations: intake, cancellation, users and threads.

Every intake (Discord, console, terminal) goes through ``submit_request``.
A refusal is raised as ``Refusal`` with a message written for the user, and
nothing is stored when one is raised.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from artifacts.filenames import storage_name
from artifacts.models import Artifact, artifact_storage
from budgets import services as budget_services
from conversations import selectors
from conversations.models import Attachment, ChatUser, Message, Platform, Request, Thread
from conversations.notices import count_messages, publish_thread_notice
from pipeline.attachments import MAX_FILES, Limits, ReadFile, Unreadable, Upload, read_upload, upload_limit
from pipeline.holds import release_if_maintenance_ended

# The console and the bot summarize through this module, like every other thread use case.
from pipeline.summaries import SummaryFailed, summarize_thread  # noqa: F401
from routing.router import expected_model
from routing.selectors import enabled_routes, find_route
from trollama import events
from trollama.maintenance import current_maintenance
from trollama.models import Maintenance

RUN_REQUEST_TASK = "pipeline.tasks.run_request"

logger = logging.getLogger(__name__)


class Refusal(Exception):
    """Intake said no. ``str(refusal)`` is the message to show the user."""

    def __init__(self, message: str, *, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Submission:
    request: Request
    position: int
    hold_message: str = ""  # a held request: what users are told (the operator's words, or the standard ones)


def get_or_create_chat_user(*, platform: str, external_id: str, username: str, display_name: str = "") -> ChatUser:
    """The chat user for this platform identity, created on first contact.

    Names are refreshed on every contact because people rename themselves.
    """
    now = timezone.now()
    defaults = {"username": username[:100], "display_name": display_name[:100], "last_seen_at": now}
    try:
        user, _ = ChatUser.objects.update_or_create(platform=platform, external_id=external_id, defaults=defaults)
    except IntegrityError:  # created concurrently by another process
        user = ChatUser.objects.get(platform=platform, external_id=external_id)
    return user


def find_local_thread(*, name: str) -> Thread:
    thread = Thread.objects.filter(platform=Platform.LOCAL, external_id=name).first()
    if thread is None:
        known = list(Thread.objects.filter(platform=Platform.LOCAL).values_list("external_id", flat=True)[:10])
        hint = f" Recent local threads: {', '.join(known)}." if known else " There are no local threads yet."
        raise Refusal(
            f"There is no local thread called {name!r}.{hint} Leave out --thread to start a new one.",
            code="unknown_thread",
        )
    return thread


def start_local_thread(*, owner: ChatUser, first_message: str) -> Thread:
    """A new local thread, named from the first words of its first message."""
    words = re.findall(r"[a-z0-9]+", first_message.lower())[:4]
    stem = "-".join(words)[:40] or "thread"
    for _ in range(5):
        name = f"{stem}-{secrets.token_hex(2)}"
        if not Thread.objects.filter(platform=Platform.LOCAL, external_id=name).exists():
            break
    title = " ".join(first_message.split())[:100]
    return Thread.objects.create(platform=Platform.LOCAL, external_id=name, title=title, owner=owner)


def validate_message(content: str, *, has_attachments: bool = False, refused: Sequence[Unreadable] = ()) -> None:
    """Refuse messages that cannot be answered as sent. A file alone is a message.

    ``refused``: files that were left out (``read_attachments``); when nothing
    else is left to answer, the refusal names the first of them and why.
    """
    if not content.strip() and not has_attachments:
        if refused:
            raise Refusal(refused[0].message, code="attachment")
        raise Refusal("Your message is empty. Write something for me to answer.", code="empty")
    limit = settings.MAX_MESSAGE_CHARS
    if len(content) > limit:
        raise Refusal(
            f"Your message is {len(content):,} characters long and the limit is {limit:,}. "
            "Shorten it, or send the text as a file attachment.",
            code="too_long",
        )


def upload_limits() -> Limits:
    return Limits(
        max_bytes=upload_limit(max_mb=settings.MAX_FILE_SIZE_MB),
        max_text_chars=settings.ATTACHMENT_MAX_TEXT_CHARS,
        max_pdf_pages=settings.PDF_MAX_PAGES,
        max_image_side=settings.IMAGE_MAX_SIDE,
    )


@dataclass(frozen=True)
class ReadAttachments:
    """The uploads that can be used, each with what is stored for it, and those left out with why."""

    files: list[tuple[Upload, ReadFile]]
    refused: list[Unreadable]


def read_attachments(uploads: Sequence[Upload]) -> ReadAttachments:
    """Read every upload; one that cannot be used is left out, not the whole message.

    The message is still answered, with a note under the answer naming each
    file left out and why (``refused_file_notices``); only a message with
    nothing else to answer is refused (``validate_message``). More than
    MAX_FILES files refuse the message: that is not one bad file.
    """
    if len(uploads) > MAX_FILES:
        raise Refusal(f"You sent {len(uploads)} files; I read at most {MAX_FILES} per message.", code="attachment")
    limits = upload_limits()
    files: list[tuple[Upload, ReadFile]] = []
    refused: list[Unreadable] = []
    for upload in uploads:
        try:
            files.append((upload, read_upload(upload, limits=limits)))
        except Unreadable as exc:
            refused.append(exc)
    return ReadAttachments(files=files, refused=refused)


def refused_file_notices(refused: Sequence[Unreadable]) -> list[dict[str, str]]:
    """``Request.notices`` entries for files left out at intake (``pipeline.footnotes``)."""
    return [{"code": "file_refused", "file": exc.filename, "reason": exc.reason} for exc in refused]


def _store_attachments(*, message: Message, files: Sequence[tuple[Upload, ReadFile]]) -> None:
    """Keep each file until UPLOAD_CLEANUP_HOURS, and its text for good."""
    expires_at = message.created_at + timedelta(hours=settings.UPLOAD_CLEANUP_HOURS)
    for upload, read in files:
        attachment = Attachment(
            message=message,
            kind=read.kind,
            filename=read.filename,  # already cleaned by read_upload (pipeline.attachments.upload_name)
            content_type=read.content_type[:100],
            size=len(upload.data),
            extracted_text=read.extracted_text,
            note=read.note[:300],
            created_at=message.created_at,
            expires_at=expires_at,
        )
        attachment.file.save(storage_name(read.filename), ContentFile(read.data), save=False)
        attachment.save()


def _check_route_override(slug: str) -> None:
    if find_route(slug) is None:
        available = ", ".join(route.slug for route in enabled_routes()) or "none"
        raise Refusal(
            f"There is no enabled route called {slug!r}. Available routes: {available}.", code="unknown_route"
        )


def _check_user_budget(user: ChatUser) -> None:
    """Banned user, rate limit, then token budget (``budgets.services.check_intake``)."""
    try:
        budget_services.check_intake(user=user)
    except budget_services.BudgetDenied as denied:
        raise Refusal(denied.message, code=denied.code, retry_after=denied.retry_after) from None


def _check_maintenance() -> Maintenance:
    """Refuse under hard maintenance; otherwise the state, which says whether to hold (soft).

    Read from the database at every intake, so a switch made by another
    process applies to the very next message.
    """
    maintenance = current_maintenance()
    if maintenance.mode == Maintenance.Mode.HARD:
        raise Refusal(maintenance.user_message, code="maintenance")
    return maintenance


def _queued_event(request: Request, position: int, maintenance: Maintenance) -> dict[str, object]:
    event: dict[str, object] = {
        "type": "request.queued",
        "request_id": request.pk,
        "status": request.status,
        "position": position,
        "request": selectors.request_summary(request),
    }
    if request.status == Request.Status.HELD:
        event["message"] = maintenance.user_message
    return event


# Any constant will do: it names the lock that makes intakes take turns at the capacity check.
INTAKE_LOCK_KEY = 0x54524F4C  # "TROL"


def _check_queue_capacity() -> None:
    """Refuse when MAX_QUEUE_SIZE requests are already waiting.

    Counting then inserting is a race when intakes run side by side: two can
    both count 49 of 50. So intakes take turns from here to their commit. On
    PostgreSQL that is a transaction-scoped advisory lock (no row to lock: the
    queue is a count); SQLite's IMMEDIATE transactions already take turns.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INTAKE_LOCK_KEY])
    waiting = selectors.waiting_count()
    if waiting >= settings.MAX_QUEUE_SIZE:
        raise Refusal(
            f"I'm at capacity right now: {waiting} requests are waiting, the most I queue. "
            "Please try again in a minute or two.",
            code="queue_full",
            retry_after=60,
        )


def check_intake(*, user: ChatUser, content: str, has_attachments: bool = False) -> None:
    """Raise ``Refusal`` if a message from ``user`` would be refused now; stores nothing.

    For an edge that must do something visible before submitting (the bot
    starts a Discord thread), so a refused message leaves nothing behind.
    ``submit_request`` checks again, in the same order.
    """
    _check_maintenance()
    validate_message(content, has_attachments=has_attachments)
    _check_user_budget(user)
    waiting = selectors.waiting_count()
    if waiting >= settings.MAX_QUEUE_SIZE:
        _check_queue_capacity()  # the refusal, worded once


@transaction.atomic
def submit_request(
    *,
    user: ChatUser,
    thread: Thread,
    content: str,
    route_slug: str | None = None,
    external_id: str = "",
    external_channel_id: str = "",
    enqueue: bool = True,
    attachments: Sequence[Upload] = (),
    refused_files: Sequence[Unreadable] = (),
) -> Submission:
    """Store the user's message and a queued request, and hand it to a worker.

    Under soft maintenance the request is stored as ``held`` instead and runs
    when maintenance ends (``ops.maintenance``). Checks run in the order
    the design fixes, and any of them may raise ``Refusal``, in which case
    nothing is stored. ``attachments`` are read first: a file that cannot be
    used is left out and named in a notice under the answer, as are
    ``refused_files``, which the edge refused before downloading them (the
    bot checks size and type first). With ``enqueue=False`` the caller runs
    the request itself (``manage.py chat --inline``).
    """
    maintenance = _check_maintenance()
    hold = maintenance.mode == Maintenance.Mode.SOFT
    read = read_attachments(attachments)
    refused = [*refused_files, *read.refused]
    validate_message(content, has_attachments=bool(read.files), refused=refused)
    if route_slug:
        _check_route_override(route_slug)
    _check_user_budget(user)
    _check_queue_capacity()

    now = timezone.now()
    message = Message.objects.create(
        thread=thread,
        author=user,
        role=Message.Role.USER,
        content=content,
        external_id=external_id,
        external_channel_id=external_channel_id,
        created_at=now,
    )
    if read.files:
        _store_attachments(message=message, files=read.files)
    request = Request.objects.create(
        user=user,
        thread=thread,
        message=message,
        notices=refused_file_notices(refused),
        route_override=route_slug or "",
        queued_at=now,
        status=Request.Status.HELD if hold else Request.Status.QUEUED,
    )
    Thread.objects.filter(pk=thread.pk).update(updated_at=now)
    # For the scheduler: the model it will most likely need, when that is known without asking a model.
    request.expected_model = expected_model(request)
    if request.expected_model:
        Request.objects.filter(pk=request.pk).update(expected_model=request.expected_model)

    if hold:
        # Maintenance may have ended while this transaction was open.
        transaction.on_commit(release_if_maintenance_ended)
    elif enqueue:
        transaction.on_commit(lambda: async_task(RUN_REQUEST_TASK, request.pk, task_name=f"request-{request.pk}"))
    position = selectors.queue_position(request) or 1
    events.publish(_queued_event(request, position, maintenance), request_id=request.pk)
    return Submission(request=request, position=position, hold_message=maintenance.user_message if hold else "")


@transaction.atomic
def cancel_request(*, request: Request) -> Request:
    """Cancel a request. A waiting one stops at once; a running one is flagged.

    The worker running a flagged request notices within
    CANCEL_CHECK_INTERVAL, closes its Ollama stream (which is what makes
    Ollama stop generating) and marks it cancelled. Cancelling a finished
    request changes nothing. Returns the request as stored now.
    """
    now = timezone.now()
    stopped = Request.objects.filter(pk=request.pk, status__in=Request.WAITING).update(
        status=Request.Status.CANCELLED, cancel_requested=True, finished_at=now, phase="", lease_expires_at=None
    )
    if not stopped:
        Request.objects.filter(pk=request.pk, status__in=Request.RUNNING).update(cancel_requested=True)
    request.refresh_from_db()
    if stopped:
        events.publish(
            {"type": "request.cancelled", "request_id": request.pk, "request": selectors.request_summary(request)},
            request_id=request.pk,
        )
    return request


# -- Forgetting a thread ------------------------------------------------------


def _stop_in_flight(thread: Thread) -> None:
    """Cancel the thread's unfinished requests at once; their workers see it and stop streaming."""
    unfinished = list(
        Request.objects.filter(thread=thread).exclude(status__in=Request.FINISHED).select_related("user", "thread")
    )
    if not unfinished:
        return
    now = timezone.now()
    Request.objects.filter(pk__in=[r.pk for r in unfinished]).update(
        status=Request.Status.CANCELLED, cancel_requested=True, finished_at=now, phase="", lease_expires_at=None
    )
    for request in unfinished:
        request.status, request.finished_at, request.phase = Request.Status.CANCELLED, now, ""
        events.publish(
            {"type": "request.cancelled", "request_id": request.pk, "request": selectors.request_summary(request)},
            request_id=request.pk,
        )


def _delete_history(thread: Thread) -> int:
    """Delete the thread's messages (their requests, attachments and artifacts go with them) and its summary.

    The stored files of uploads and artifacts are deleted after commit: the
    rows cascade, and without their rows nothing would ever delete the files.
    """
    uploads = [
        name
        for name in Attachment.objects.filter(message__thread=thread).exclude(file="").values_list("file", flat=True)
        if name
    ]
    artifact_files = [name for name in Artifact.objects.filter(thread=thread).values_list("file", flat=True) if name]
    forgotten = thread.messages.count()
    Thread.objects.filter(pk=thread.pk).update(
        summary="", summary_until=None, summary_token_count=0, summarized_at=None
    )
    thread.messages.all().delete()
    transaction.on_commit(lambda: _delete_files(uploads, storage=default_storage))
    transaction.on_commit(lambda: _delete_files(artifact_files, storage=artifact_storage()))
    return forgotten


def _delete_files(names: list[str], *, storage: Storage) -> None:
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # any storage back end's error (S3 for artifacts); the history is gone either way
            logger.exception("Could not delete the stored file %s", name)


# What the people in a conversation are told when an operator changes it from
# outside (the console); Discord's /reset and /close answer in the channel themselves.
RESET_NOTICE = (
    "An operator reset this conversation: I've forgotten its {messages}. Your next message starts afresh, here."
)
CLOSE_NOTICE = (
    "An operator closed this conversation and deleted its history. Write to me again any time to start a new one."
)


@transaction.atomic
def reset_thread(*, thread: Thread, by: str, notify: bool = False) -> int:
    """Forget everything said in the thread but keep the thread. Returns how many messages were forgotten.

    Requests still waiting or running in it are cancelled first. ``notify``
    publishes a ``thread.reset`` event, after commit, whose notice the bot
    posts in the thread's Discord channel: for resets made from outside the
    conversation, such as the console's.
    """
    Thread.objects.select_for_update().filter(pk=thread.pk).first()  # one reset or close at a time
    _stop_in_flight(thread)
    forgotten = _delete_history(thread)
    thread.summary, thread.summary_until, thread.summary_token_count, thread.summarized_at = "", None, 0, None
    logger.info("Thread %s (%s) reset by %s: %d messages forgotten", thread.pk, thread, by, forgotten)
    if notify:
        notice = RESET_NOTICE.format(messages=count_messages(forgotten))
        publish_thread_notice(thread, kind="thread.reset", notice=notice, forgotten=forgotten)
    return forgotten


@transaction.atomic
def close_thread(*, thread: Thread, by: str, notify: bool = False) -> int:
    """End the conversation: cancel what is running and delete the thread with its whole history.

    Returns how many messages were deleted. A later message in the same
    Discord channel starts a new conversation. ``notify`` publishes a
    ``thread.closed`` event, after commit, whose notice the bot posts in that
    channel before archiving and locking it, when it is a thread.
    """
    Thread.objects.select_for_update().filter(pk=thread.pk).first()  # one reset or close at a time
    _stop_in_flight(thread)
    forgotten = _delete_history(thread)
    Thread.objects.filter(pk=thread.pk).delete()
    logger.info("Thread %s (%s) closed by %s: %d messages deleted", thread.pk, thread, by, forgotten)
    if notify:
        publish_thread_notice(thread, kind="thread.closed", notice=CLOSE_NOTICE, deleted=forgotten)
    return forgotten


class NotRetryable(Exception):
    """The request cannot be retried; ``str()`` says why, for an operator."""


@transaction.atomic
def retry_request(*, request_id: int) -> Request:
    """Run a failed request again, with a fresh attempt budget.

    Resetting ``attempts`` (the fencing token) is safe here: a failed request
    has no live worker, since django-q2 kills a task after REQUEST_TIMEOUT,
    the same time after which its lease counts as expired. Under maintenance
    the request is held, like a new one, and runs when maintenance ends.
    """
    request = Request.objects.select_for_update(of=("self",)).filter(pk=request_id).first()
    if request is None:
        raise NotRetryable(f"There is no request {request_id}.")
    if request.status != Request.Status.FAILED:
        raise NotRetryable(
            f"Request {request_id} is {request.get_status_display().lower()}, not failed; only failed requests can be retried."
        )
    maintenance = current_maintenance()
    hold = maintenance.is_on
    request.status = Request.Status.HELD if hold else Request.Status.QUEUED
    request.attempts = 0
    request.error = ""
    request.phase = ""
    request.partial_content = ""
    request.cancel_requested = False
    request.lease_expires_at = None
    request.started_at = request.first_token_at = request.finished_at = request.delivered_at = None
    request.queued_at = timezone.now()
    request.save()
    if hold:
        transaction.on_commit(release_if_maintenance_ended)
    else:
        transaction.on_commit(lambda: async_task(RUN_REQUEST_TASK, request_id, task_name=f"request-{request_id}-retry"))
    request = Request.objects.select_related("user", "thread", "route").get(pk=request.pk)
    events.publish(_queued_event(request, selectors.queue_position(request) or 1, maintenance), request_id=request.pk)
    return request
