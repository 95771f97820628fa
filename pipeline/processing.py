"""The worker side of a request: claim it, answer it, finish it, or hand it back.

Locking: a request is worked on only by the holder of its lease. Claiming is
one conditional UPDATE (queued, or running with an expired lease), which bumps
``attempts``; every later write is filtered on that attempt number, so a
worker that was presumed dead and then wakes up cannot overwrite the work of
the one that took over. While it holds a request, a worker renews the lease
from a heartbeat thread (``pipeline.workers.LeaseKeeper``) every quarter
of ``REQUEST_LEASE``. A request whose lease ran out (its worker was killed) is
put back in the queue by the reaper in every ``qcluster``
(``requeue_abandoned_requests``); a worker that is stopping hands its request
back itself (``hand_back``). Either way the next claim tells listeners to drop
the interrupted attempt's text.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from artifacts.intent import FILE_INSTRUCTIONS, wants_files
from artifacts.selectors import artifact_summary
from artifacts.services import store_answer_artifacts
from budgets.services import (
    BudgetDenied,
    ReservationPending,
    charge_answer,
    charge_interrupted,
    reserve_for_request,
)
from conversations import selectors
from conversations.models import Message, Request, Thread
from knowledge import services as knowledge
from pipeline import queue, workers
from pipeline.context import build_chat_messages
from pipeline.finishing import finish_or_fail
from pipeline.holds import release_if_maintenance_ended
from pipeline.services import RUN_REQUEST_TASK
from pipeline.streaming import AnswerStream, AttemptResult, Callbacks, Job, Outcome, Tick
from pipeline.summaries import after_answer
from routing import hosts
from routing.models import Route
from routing.placement import Placement, place, thinking_preference
from routing.prompts import compose_system_prompt
from routing.router import Decision, route_request
from routing.selectors import NoRouteAvailable
from trollama import counters, events
from trollama.events import AsyncPublisher
from trollama.logs import request_context

logger = logging.getLogger(__name__)


RESUMED_REASON = "The answer was interrupted (a worker stopped); starting it again."


def _owned(job: Job) -> Q:
    return Q(pk=job.request_id, attempts=job.attempt, status__in=Request.RUNNING)


def _attempts_left() -> Q:
    """Attempts a stopping worker handed back are not held against the request."""
    return Q(attempts__lt=F("handbacks") + settings.MAX_ATTEMPTS)


def take_request(request_id: int, *, queued: bool = True, expired: bool = True) -> bool:
    """The claim itself: one conditional UPDATE (queued, or running under an expired lease → routing).

    True when this worker now holds the request. Not claimable: finished,
    cancelled, held, running under a live lease, or out of attempts.
    """
    now = timezone.now()
    claimable = Q(pk__in=[])
    if queued:
        claimable |= Q(status=Request.Status.QUEUED)
    if expired:
        claimable |= Q(status__in=Request.RUNNING, lease_expires_at__lt=now)
    claimed = Request.objects.filter(claimable, _attempts_left(), pk=request_id, cancel_requested=False).update(
        status=Request.Status.ROUTING,
        phase="routing",
        attempts=F("attempts") + 1,
        lease_expires_at=workers.lease_expiry(),
        worker=workers.worker_name(),
        partial_content="",
        first_token_at=None,
        error="",
        queue_position=None,
        wait_estimate=None,
    )
    if claimed:
        Request.objects.filter(pk=request_id, started_at__isnull=True).update(started_at=now)
    return bool(claimed)


def claim_request(*, request_id: int) -> Request | None:
    """Take this request for this worker, or None if it is not ours to run (see ``take_request``).

    ``recover_abandoned`` settles one out of attempts. A claim that follows an
    interrupted attempt tells listeners to drop that attempt's text.
    """
    if not take_request(request_id):
        return None
    return _claimed(request_id)


def _claimed(request_id: int) -> Request:
    request = Request.objects.select_related("thread", "user", "message").get(pk=request_id)
    if request.attempts > 1:
        _publish_status(request, reset=True, reason=RESUMED_REASON)
    else:
        _publish_status(request)
    return request


def _publish_status(request: Request, **extra: object) -> None:
    events.publish(
        {
            "type": "request.status",
            "request_id": request.pk,
            "status": request.status,
            "phase": request.phase,
            "model": request.model,
            "route": request.route.slug if request.route else None,
            "route_method": request.route_method,
            "route_detail": request.route_detail,
            "route_ms": request.route_ms,
            "host": request.host,
            "attempt": request.attempts,
            **extra,
        },
        request_id=request.pk,
    )


def choose_route(request: Request) -> Decision:
    """The routing decision for this request (see ``routing.router``)."""
    return route_request(request)


class NoHostAvailable(Exception):
    """Every host that could run the route's models is disabled or skipped by its circuit breaker."""


NO_HOST_MESSAGE = (
    "Every model server that could answer this is failing or switched off right now, so I'm not sending it "
    "requests for a little while. Please try again in a minute or two; if it persists, tell an operator."
)


def _job_for(job: Job, placement: Placement, route: Route) -> Job:
    return replace(
        job,
        host=placement.host_url,
        host_id=placement.host_id,
        model=placement.model,
        think=placement.think,
        tools=placement.tools,
        fallbacks=placement.fallbacks,
        model_attempts=1,
        keep_alive=queue.keep_alive_for(
            model=placement.model, default=route.keep_alive or None, request_id=job.request_id
        ),
    )


def prepare_job(request: Request, *, prefer_host: int | None = None) -> Job:
    """Route the request and place it on a host (``prefer_host``: the one the scheduler chose, if any)."""
    decision = choose_route(request)
    route = decision.route
    placement = place(
        route=route,
        models=route.models_in_order,
        preference=thinking_preference(request.user_id),
        prefer_host=prefer_host,
    )
    if placement is None:
        raise NoHostAvailable(NO_HOST_MESSAGE)
    # Files are asked for in words (rules) or judged so by the classifier, at no extra model call.
    wants_file = decision.wants_file or wants_files(request.message.content)
    extra = [FILE_INSTRUCTIONS] if wants_file else []
    extra += knowledge.instructions_for(request_id=request.pk)  # /ask: the messages found, numbered
    system_prompt = compose_system_prompt(route=route, thread=request.thread, extra=extra)
    Request.objects.filter(pk=request.pk, attempts=request.attempts).update(
        route=route,
        model=placement.model,
        host=placement.host_url,
        route_method=decision.method,
        route_detail=decision.detail[:300],
        route_ms=decision.ms,
        system_prompt=system_prompt,
        status=Request.Status.GENERATING,
    )
    request.refresh_from_db()
    _publish_status(request, wants_file=decision.wants_file)
    messages = build_chat_messages(
        request=request, route=route, system_prompt=system_prompt, images=placement.sees_images
    )
    _add_sources_notice(request)
    job = Job(
        request_id=request.pk,
        attempt=request.attempts,
        host=placement.host_url,
        model=placement.model,
        messages=messages,
        options=route.chat_options(),
    )
    return _job_for(job, placement, route)


def _add_sources_notice(request: Request) -> None:
    """An /ask answer lists its sources (link, author, date) under it, after the context's own notices."""
    notice = knowledge.sources_notice(request_id=request.pk)
    if notice is not None:
        request.notices = [*(request.notices or []), notice]
        Request.objects.filter(pk=request.pk).update(notices=request.notices)


def note_host_health(job: Job, result: AttemptResult) -> None:
    """Feed the host's circuit breaker: a success closes it, a host-side failure counts towards opening it."""
    if job.host_id is None:
        return
    if result.outcome is Outcome.DONE:
        hosts.record_success(job.host_id)
    elif result.host_failure:
        hosts.record_failure(job.host_id, result.error, request_id=job.request_id)


def switch_model(job: Job, result: AttemptResult) -> Job | None:
    """Move to the next fallback model that a usable host has; None when there is none (or we lost the lease)."""
    request = Request.objects.select_related("route").filter(pk=job.request_id).first()
    if request is None or request.route is None or not job.fallbacks:
        return None
    placement = place(route=request.route, models=job.fallbacks, preference=thinking_preference(request.user_id))
    if placement is None:
        return None
    why = "is not installed" if result.missing_model else "keeps failing"
    next_job = begin_retry(job, f"{job.model} {why}; switching to {placement.model}")
    if next_job is None:
        return None
    Request.objects.filter(_owned(next_job)).update(model=placement.model, host=placement.host_url)
    return _job_for(next_job, placement, request.route)


def repick_host(job: Job) -> Job:
    """Before retrying the same model: another host if this one's breaker opened meanwhile."""
    choice = hosts.choose_host(job.model)
    if choice is None or choice.host_id == job.host_id:
        return job
    Request.objects.filter(_owned(job)).update(host=choice.url)
    return replace(job, host=choice.url, host_id=choice.host_id)


def all_models_failed(error: str, tried: list[str]) -> str:
    """The user's error once no model is left to try; names the models when fallbacks were tried."""
    if len(tried) < 2:
        return error
    return f"None of the models for this kind of message could answer (I tried {', '.join(tried)}). {error}"


def tick(job: Job, partial: str | None) -> Tick:
    """Check for cancellation and ownership; save the partial answer when given."""
    if partial is not None:
        Request.objects.filter(_owned(job)).update(partial_content=partial)
    state = Request.objects.filter(pk=job.request_id).values("attempts", "status", "cancel_requested").first()
    if state is None or state["attempts"] != job.attempt or state["status"] not in Request.RUNNING:
        return Tick.LOST
    return Tick.CANCEL if state["cancel_requested"] else Tick.CONTINUE


def record_phase(job: Job, phase: str) -> None:
    if phase == "generating":
        Request.objects.filter(_owned(job), first_token_at__isnull=True).update(first_token_at=timezone.now())
    Request.objects.filter(_owned(job)).update(phase=phase)


def _publish_positions_then_close() -> None:
    try:
        queue.publish_positions_quietly()
    finally:
        connections.close_all()  # this thread's own connections


async def stream_attempt(job: Job) -> AttemptResult:
    telling: list[threading.Thread] = []

    def tick_and_tell(partial: str | None) -> Tick:
        # The claim moved everyone else in the queue: tell them at the first tick, once the chat request is on
        # its way, and from a thread of its own, rather than between the claim and that request or in the
        # thread the stream's callbacks need (for a burst of waiting requests that is one event each, which
        # would otherwise delay every answer by as much).
        if not telling:
            telling.append(threading.Thread(target=_publish_positions_then_close, name="queue-positions"))
            telling[0].start()
        return tick(job, partial)

    callbacks = Callbacks(
        tick=sync_to_async(tick_and_tell),
        phase=sync_to_async(lambda phase: record_phase(job, phase)),
        stopping=workers.stopping,
    )
    try:
        async with AsyncPublisher() as publisher:
            return await AnswerStream(job, publisher=publisher, callbacks=callbacks).run()
    finally:
        for thread in telling:  # never outlives the attempt
            await sync_to_async(thread.join, thread_sensitive=False)()


@transaction.atomic
def finish_request(job: Job, result: AttemptResult) -> bool:
    """Store the answer and mark the request done. False if we lost the lease."""
    request = (
        Request.objects.select_for_update(of=("self",)).filter(_owned(job)).select_related("route", "thread").first()
    )
    if request is None:
        return False
    now = timezone.now()
    charge_answer(
        request=request, model=job.model, prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens
    )
    reply = Message.objects.create(
        thread=request.thread,
        role=Message.Role.ASSISTANT,
        content=result.content,
        token_count=result.completion_tokens,
        route=request.route,
        model=job.model,
        created_at=now,
    )
    request.reply = reply
    request.status = Request.Status.DONE
    request.phase = ""
    request.finished_at = now
    request.prompt_tokens = result.prompt_tokens
    request.completion_tokens = result.completion_tokens
    request.partial_content = ""
    request.thinking = result.thinking
    request.lease_expires_at = None
    request.worker = ""
    request.save()
    Thread.objects.filter(pk=request.thread_id).update(updated_at=now)
    files = store_reply_files(request, result.content)
    events.publish(
        {
            "type": "request.done",
            "request_id": request.pk,
            "content": result.content,
            "request": selectors.request_summary(request),
            **files,
        },
        request_id=request.pk,
    )
    return True


def store_reply_files(request: Request, content: str) -> dict[str, Any]:
    """Store the files in the answer as artifacts; what ``request.done`` says about them.

    Runs inside ``finish_request``'s transaction, with the request row locked
    under our lease, as its last write: artifacts exist exactly when the answer
    does, and a retry never makes them twice.
    """
    stored = store_answer_artifacts(request=request, content=content, wanted=wants_files(request.message.content))
    return {
        "artifacts": [artifact_summary(artifact) for artifact in stored.artifacts],
        "artifact_notes": stored.notes,
    }


def _settle(request_id: int, status: str, *, error: str = "", guard: Q, partial: str | None = None) -> bool:
    """Move a request to a final status (failed/cancelled) if ``guard`` still holds."""
    with transaction.atomic():
        updates: dict[str, object] = {
            "status": status,
            "error": error,
            "phase": "",
            "finished_at": timezone.now(),
            "lease_expires_at": None,
            "worker": "",
            "reserved_tokens": 0,
        }
        if partial is not None:
            updates["partial_content"] = partial
        if not Request.objects.filter(guard, pk=request_id).update(**updates):
            return False
        request = Request.objects.select_related("user", "thread", "route").get(pk=request_id)
        if status == Request.Status.FAILED:
            _count_error(request.host, "failed_request")
        kind = "request.failed" if status == Request.Status.FAILED else "request.cancelled"
        events.publish(
            {"type": kind, "request_id": request_id, "error": error, "request": selectors.request_summary(request)},
            request_id=request_id,
        )
    return True


def _count_error(host: str, kind: str) -> None:
    """``trollama_ollama_errors_total``: counted when it happens, so deleting requests never lowers it."""
    counters.increment(name=counters.OLLAMA_ERRORS, labels={"host": host or settings.OLLAMA_HOST, "kind": kind})


def fail_request(job: Job, error: str, *, partial: str | None = None) -> bool:
    return _settle(job.request_id, Request.Status.FAILED, error=error, guard=_owned(job), partial=partial)


def cancel_running(job: Job, *, partial: str) -> bool:
    return _settle(job.request_id, Request.Status.CANCELLED, guard=_owned(job), partial=partial)


def begin_retry(job: Job, reason: str) -> Job | None:
    """Take the next attempt for a retry; None if the request is no longer ours."""
    updated = Request.objects.filter(_owned(job)).update(
        attempts=F("attempts") + 1,
        phase="retrying",
        partial_content="",
        first_token_at=None,
        lease_expires_at=workers.lease_expiry(),
    )
    if not updated:
        return None
    _count_error(job.host, "retried_attempt")
    request = Request.objects.select_related("route").get(pk=job.request_id)
    # reset=True tells listeners to throw away the text of the failed attempt.
    _publish_status(request, reset=True, reason=reason)
    return Job(**{**job.__dict__, "attempt": job.attempt + 1})


def _pause(job: Job, seconds: float) -> Tick | None:
    """Sleep for a retry backoff, returning early if the request is cancelled or taken.

    None means this worker is stopping: hand the request back rather than retry here.
    """
    deadline = time.monotonic() + seconds
    while True:
        if workers.stopping():
            return None
        state = tick(job, None)
        remaining = deadline - time.monotonic()
        if state is not Tick.CONTINUE or remaining <= 0:
            return state
        time.sleep(min(remaining, settings.CANCEL_CHECK_INTERVAL))


class Interrupted(Exception):
    """The request was cancelled or taken by another worker, or this worker is stopping, before it streamed.

    ``tick`` is None when this worker is stopping (see ``_pause``).
    """

    def __init__(self, tick: Tick | None) -> None:
        # tick.value alone raised AttributeError for a stopping worker (tick None), instead of this exception.
        super().__init__(tick.value if tick is not None else "stopping")
        self.tick = tick


def reserve_budget(job: Job, *, request: Request) -> Job:
    """``job`` with its answer's ``num_predict`` capped to the budget reserved for it.

    Reserves on the request what the job is likely to cost (see
    ``budgets.services.reserve_for_request``). While the user's other running
    requests hold what it needs, it waits for them (phase ``budget``), up to
    ``BUDGET_WAIT_SECONDS``, then takes what is left. Raises ``BudgetDenied``
    when too little remains, ``Interrupted`` when cancelled or taken meanwhile.
    """
    own = job.options.get("num_predict")
    deadline = time.monotonic() + settings.BUDGET_WAIT_SECONDS
    while True:
        try:
            reservation = reserve_for_request(
                request=request,
                messages=job.messages,
                context_size=int(job.options.get("num_ctx") or 0),
                num_predict=own if isinstance(own, int) and own > 0 else None,
                may_wait=time.monotonic() < deadline,
            )
            break
        except ReservationPending:
            if request.phase != "budget":
                record_phase(job, "budget")
                request.phase = "budget"
                _publish_status(request)
            # The lease keeper renews the lease meanwhile; a stop or a cancel ends the wait.
            state = _pause(job, min(BUDGET_RETRY_INTERVAL, max(deadline - time.monotonic(), 0.0)))
            if state is not Tick.CONTINUE:
                raise Interrupted(state) from None
    if reservation.num_predict is None:
        return job
    return replace(job, options={**job.options, "num_predict": reservation.num_predict})


# How often a request waiting for budget tries its reservation again.
BUDGET_RETRY_INTERVAL = 0.5


def _logged(run: Callable[..., Outcome | None]) -> Callable[..., Outcome | None]:
    """Tag the run's log records with its request id and log how it ended (never the text)."""

    @functools.wraps(run)
    def wrapper(*, request_id: int, **options: Any) -> Outcome | None:
        with request_context(request_id):
            started = time.monotonic()
            outcome = run(request_id=request_id, **options)
            ended = outcome.value if outcome else "skipped (not this worker's to run)"
            logger.info("Request %s %s after %.1f s", request_id, ended, time.monotonic() - started)
            return outcome

    return wrapper


def process_next(*, hint: int) -> Outcome | None:
    """A worker is free: run the waiting request the scheduler starts first, or nothing.

    The broker's task names ``hint`` (the request whose arrival sent it), but
    which request runs is the queue's choice (``pipeline.queue``). A task
    that finds nothing to claim ends; one whose request is running under an
    expired lease takes it over, as ``process_request`` does. Every answer that
    ends while requests still wait sends one more task, so a request held back
    for memory is looked at again when memory frees.
    """
    if workers.stopping():
        resend_task(hint, why="handed-on")
        return None
    claimed = queue.claim_next(take=take_request)
    request_id = claimed.request_id if claimed else hint
    if claimed is None and not take_request(hint, queued=False):
        recover_abandoned(request_id=hint)
        return None
    try:
        return _run_claimed(request_id=request_id, prefer_host=claimed.ranked.host_id if claimed else None)
    finally:
        if queue.any_waiting() and not workers.stopping():
            resend_task(request_id, why="slot-free")


@_logged
def _run_claimed(*, request_id: int, prefer_host: int | None = None) -> Outcome | None:
    request = _claimed(request_id)
    with workers.LeaseKeeper(request_id, request.attempts) as lease:
        return _answer(request, lease, prefer_host=prefer_host)


@_logged
def process_request(*, request_id: int) -> Outcome | None:
    """Run a request to a final state, or hand it back. Safe to call for any id, any number of times.

    Returns what happened, or None when the request was not this worker's to run.
    """
    if workers.stopping():
        # A task this stopping worker had already taken from the broker: send it on to another.
        resend_task(request_id, why="handed-on")
        return None
    request = claim_request(request_id=request_id)
    if request is None:
        recover_abandoned(request_id=request_id)
        return None
    with workers.LeaseKeeper(request_id, request.attempts) as lease:
        return _answer(request, lease)


def _answer(request: Request, lease: workers.LeaseKeeper, *, prefer_host: int | None = None) -> Outcome:
    """Answer a claimed request, retrying and falling back as needed (see ``process_request``)."""
    request_id = request.pk
    try:
        job = prepare_job(request, prefer_host=prefer_host)
        queue.make_room(host_url=job.host, model=job.model)
        job = reserve_budget(job, request=request)
    except (NoRouteAvailable, NoHostAvailable, BudgetDenied) as exc:
        _settle(request_id, Request.Status.FAILED, error=str(exc), guard=Q(attempts=request.attempts))
        return Outcome.FAILED
    except Interrupted as stop:
        if stop.tick is None:
            handed = hand_back(request_id=request_id, attempt=request.attempts, partial="")
            return Outcome.STOPPED if handed else Outcome.LOST
        if stop.tick is Tick.CANCEL:
            _settle(request_id, Request.Status.CANCELLED, guard=Q(attempts=request.attempts))
            return Outcome.CANCELLED
        return Outcome.LOST

    tried = [job.model]
    while True:
        lease.attempt = job.attempt
        if workers.stopping():
            return _handed_back(job, partial="")
        result = async_to_sync(stream_attempt)(job)
        note_host_health(job, result)
        if result.outcome is Outcome.STOPPED:
            return _handed_back(job, partial=result.content)
        if result.outcome in (Outcome.CANCELLED, Outcome.FAILED):
            charge_interrupted(request_id=request_id, model=job.model, messages=job.messages, partial=result.content)
        if result.outcome is Outcome.DONE:
            finish, fail = functools.partial(finish_request, job, result), functools.partial(fail_request, job)
            outcome = finish_or_fail(finish=finish, fail=fail, request_id=request_id)
            if outcome is Outcome.DONE:
                after_answer(request_id=request_id)
            return outcome
        if result.outcome is Outcome.CANCELLED:
            cancel_running(job, partial=result.content)
            return Outcome.CANCELLED
        if result.outcome is Outcome.LOST:
            return Outcome.LOST

        if result.transient and job.model_attempts < settings.MAX_ATTEMPTS:
            logger.warning("Request %s attempt %s failed, retrying: %s", request_id, job.attempt, result.error)
            backoff = settings.RETRY_BACKOFF * 2 ** (job.model_attempts - 1)
            state = _pause(job, backoff)
            if state is None:
                return _handed_back(job, partial="")
            if state is Tick.CANCEL:
                cancel_running(job, partial="")
                return Outcome.CANCELLED
            if state is Tick.LOST:
                return Outcome.LOST
            next_job = begin_retry(job, result.error)
            if next_job is None:
                return Outcome.LOST
            job = repick_host(replace(next_job, model_attempts=job.model_attempts + 1))
            continue

        if (result.transient or result.missing_model) and job.fallbacks:
            logger.warning("Request %s: %s failed (%s), trying a fallback", request_id, job.model, result.error)
            switched = switch_model(job, result)
            if switched is not None:
                job = switched
                tried.append(job.model)
                continue

        error = result.error
        if result.transient:
            error += f" I tried {job.model_attempts} times; please try again later."
        fail_request(job, all_models_failed(error, tried), partial=result.content)
        return Outcome.FAILED


def _handed_back(job: Job, *, partial: str) -> Outcome:
    return (
        Outcome.STOPPED if hand_back(request_id=job.request_id, attempt=job.attempt, partial=partial) else Outcome.LOST
    )


def resend_task(request_id: int, *, why: str) -> None:
    """Send the broker a task for ``request_id``; a duplicate is harmless (its claim finds nothing to do)."""
    async_task(RUN_REQUEST_TASK, request_id, task_name=f"request-{request_id}-{why}")


def _requeue(request_id: int, guard: Q, *, why: str, partial: str | None = None) -> bool:
    """Put a running request back in the queue if ``guard`` still holds, tell listeners, and send its task.

    The attempt number stays as it is; the next claim takes the next one, so a
    late write of the interrupted attempt is fenced off. Handed back by a
    stopping worker, the attempt is not held against the request.
    """
    updates: dict[str, Any] = {
        "status": Request.Status.QUEUED,
        "phase": "",
        "lease_expires_at": None,
        "worker": "",
        "reserved_tokens": 0,
    }
    if why == "handed-back":
        updates["handbacks"] = F("handbacks") + 1
    if partial is not None:
        updates["partial_content"] = partial
    with transaction.atomic():
        if not Request.objects.filter(guard, pk=request_id, status__in=Request.RUNNING).update(**updates):
            return False
        request = Request.objects.select_related("user", "thread", "route").get(pk=request_id)
        events.publish(
            {
                "type": "request.status",
                "request_id": request_id,
                "status": request.status,
                "phase": "resuming",
                "attempt": request.attempts,
                "position": selectors.queue_position(request),
                "reset": True,
                "reason": RESUMED_REASON,
            },
            request_id=request_id,
        )
        transaction.on_commit(lambda: resend_task(request_id, why=why))
    return True


def hand_back(*, request_id: int, attempt: int, partial: str) -> bool:
    """A stopping worker gives its request back to the queue, keeping the partial answer for listeners.

    False if the attempt was no longer this worker's (cancelled, taken over).
    """
    handed = _requeue(request_id, Q(attempts=attempt), why="handed-back", partial=partial)
    if handed:
        logger.info("Request %s handed back to the queue: this worker is stopping", request_id)
    return handed


def hand_back_held_by(cluster: str) -> int:
    """Requeue every request still held by a worker of ``cluster``; returns how many.

    For a stopping ``qcluster`` whose workers did not hand back in time (one
    was still routing, say). The attempt stays fenced, so whatever that worker
    writes later is ignored.
    """
    held = Request.objects.filter(status__in=Request.RUNNING, worker__startswith=f"{cluster}/")
    count = 0
    for request_id, attempts in held.values_list("pk", "attempts"):
        count += _requeue(request_id, Q(attempts=attempts, worker__startswith=f"{cluster}/"), why="handed-back")
    return count


def holders_in(cluster: str) -> set[int]:
    """The process ids of the workers of ``cluster`` that hold a running request."""
    workers_ = Request.objects.filter(status__in=Request.RUNNING, worker__startswith=f"{cluster}/").values_list(
        "worker", flat=True
    )
    return {int(worker.rsplit("/", 1)[1]) for worker in workers_ if worker.rsplit("/", 1)[1].isdigit()}


def resend_waiting_tasks() -> int:
    """Send a task for every queued request; returns how many.

    A cluster does this as it starts: tasks a killed cluster had taken from the
    broker but not run died with it. Duplicates are harmless.
    """
    waiting = list(Request.objects.filter(status=Request.Status.QUEUED).values_list("pk", flat=True))
    for request_id in waiting:
        resend_task(request_id, why="resent")
    return len(waiting)


def nudge_stalled_queue() -> bool:
    """Send a task when requests wait and none is running: nothing else would wake a worker for them.

    (A task the scheduler found nothing for ends; answers that finish send the
    next one.) True when it sent one; a duplicate is harmless.
    """
    if Request.objects.filter(status__in=Request.RUNNING).exists():
        return False
    oldest = Request.objects.filter(status=Request.Status.QUEUED).order_by("queued_at", "pk").first()
    if oldest is None:
        return False
    resend_task(oldest.pk, why="nudged")
    return True


def recover_abandoned(*, request_id: int) -> bool:
    """Settle a request whose worker vanished and that may not be run again.

    A cancelled one becomes cancelled; one out of attempts fails with a reason.
    Returns True if it settled the request.
    """
    now = timezone.now()
    abandoned = Q(status__in=Request.RUNNING, lease_expires_at__lt=now)
    if _settle(request_id, Request.Status.CANCELLED, guard=abandoned & Q(cancel_requested=True)):
        return True
    return _settle(
        request_id,
        Request.Status.FAILED,
        error=(
            f"The worker answering this stopped unexpectedly, {settings.MAX_ATTEMPTS} times in a row. "
            "Please try again; if it keeps happening, tell an operator."
        ),
        guard=abandoned & ~_attempts_left(),
    )


def requeue_abandoned_requests() -> dict[str, int]:
    """Find running requests whose lease expired and get each going again or settled.

    A request that may still run goes back to the queue, with a reset for
    listeners and a task for the broker; the claim makes a duplicate task
    harmless. Requests still held after maintenance ended are released too.
    """
    now = timezone.now()
    stale = list(
        Request.objects.filter(status__in=Request.RUNNING, lease_expires_at__lt=now).values_list("pk", "attempts")
    )
    counts = {"requeued": 0, "settled": 0, "released": release_if_maintenance_ended()}
    for request_id, attempts in stale:
        if recover_abandoned(request_id=request_id):
            counts["settled"] += 1
        elif _requeue(request_id, Q(attempts=attempts, lease_expires_at__lt=now), why="recovered"):
            logger.warning("Request %s: its worker stopped renewing the lease; requeued", request_id)
            counts["requeued"] += 1
    return counts
