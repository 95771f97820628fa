"""The delivery contract on the worker side: leases kept by a heartbeat, hand-back on stop, resumption after a crash."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker

from conversations.models import Message, Request
from pipeline import workers
from pipeline.processing import (
    RESUMED_REASON,
    claim_request,
    hand_back_held_by,
    process_request,
    requeue_abandoned_requests,
)
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from tests import personas
from tests.layer import listening
from trollama import events

SLOW = "slow " * 200  # 10 s at 20 tokens/s


def submit(text: str = "hello there") -> Request:
    user = personas.discord_user()
    return submit_request(user=user, thread=personas.thread_of(user), content=text, enqueue=False).request


def tasks_on_broker() -> int:
    return get_broker().queue_size() or 0


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def stop_flag():
    workers.reset_stop()
    yield workers
    workers.reset_stop()


@pytest.fixture(autouse=True)
def empty_broker():
    get_broker().purge_queue()
    yield
    get_broker().purge_queue()


def run_in_thread(request_id: int) -> tuple[threading.Thread, list[Outcome | None]]:
    from django.db import connections

    result: list[Outcome | None] = []

    def target() -> None:
        try:
            result.append(process_request(request_id=request_id))
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class HandBackTests:
    def test_a_stopping_worker_hands_its_request_back_with_the_partial_answer(self, fake_ollama, stop_flag):
        fake_ollama.script(SLOW, tokens_per_second=20)
        request = submit()
        with listening(events.request_group(request.pk)) as received:
            thread, result = run_in_thread(request.pk)
            wait_until(lambda: Request.objects.get(pk=request.pk).phase == "generating")
            time.sleep(0.5)  # some text streams first

            workers.request_stop()
            thread.join(timeout=10)
            published = received()

        assert result == [Outcome.STOPPED]
        request.refresh_from_db()
        assert request.status == Request.Status.QUEUED
        assert (request.attempts, request.handbacks) == (1, 1)
        assert request.lease_expires_at is None and request.worker == ""
        assert request.partial_content.startswith("slow ")  # kept for listeners that resync
        assert not Message.objects.filter(role=Message.Role.ASSISTANT).exists()
        assert fake_ollama.wait_for_hangup() is not None  # the stream to Ollama was closed
        resets = [e for e in published if e["type"] == "request.status" and e.get("reset")]
        assert resets[-1]["status"] == "queued" and resets[-1]["reason"] == RESUMED_REASON
        assert tasks_on_broker() == 1  # another worker will take it

    def test_a_handed_back_request_is_answered_once_and_the_hand_back_costs_no_attempt(self, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 1
        fake_ollama.script("The answer.")
        request = submit()
        claim_request(request_id=request.pk)
        Request.objects.filter(pk=request.pk).update(worker="box:100/101")  # as a worker of cluster box:100 would

        assert hand_back_held_by("box:10") == 0  # another cluster's name
        assert hand_back_held_by("box:100") == 1

        with listening(events.request_group(request.pk)) as received:
            assert process_request(request_id=request.pk) is Outcome.DONE
            published = received()
        request.refresh_from_db()
        assert request.status == Request.Status.DONE and request.reply.content == "The answer."
        assert (request.attempts, request.handbacks) == (2, 1)
        first = next(e for e in published if e["type"] == "request.status")
        assert first["reset"] is True and first["reason"] == RESUMED_REASON

    def test_a_task_reaching_a_stopping_worker_is_passed_on_unclaimed(self, fake_ollama, stop_flag):
        request = submit()
        workers.request_stop()

        assert process_request(request_id=request.pk) is None

        request.refresh_from_db()
        assert (request.status, request.attempts) == (Request.Status.QUEUED, 0)
        assert tasks_on_broker() == 1
        assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class LeaseTests:
    def test_the_heartbeat_renews_the_lease_while_the_worker_runs(self, settings):
        settings.REQUEST_LEASE = 4  # a beat every second
        request = submit()
        claimed = claim_request(request_id=request.pk)
        Request.objects.filter(pk=request.pk).update(lease_expires_at=timezone.now())

        with workers.LeaseKeeper(request.pk, claimed.attempts):
            wait_until(lambda: Request.objects.get(pk=request.pk).lease_expires_at > timezone.now())

        assert Request.objects.get(pk=request.pk).lease_expires_at > timezone.now()

    def test_the_heartbeat_leaves_a_request_it_lost_alone(self):
        request = submit()
        claim_request(request_id=request.pk)
        keeper = workers.LeaseKeeper(request.pk, attempt=99)

        assert keeper.renew() is False

    def test_the_lease_is_short_whatever_the_generation_time_limit(self, settings):
        settings.REQUEST_TIMEOUT = 3600
        request = submit()

        claim_request(request_id=request.pk)

        lease = Request.objects.get(pk=request.pk).lease_expires_at - timezone.now()
        assert lease <= timedelta(seconds=settings.REQUEST_LEASE)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ReaperTests:
    def test_a_request_whose_lease_ran_out_goes_back_to_the_queue_with_a_reset(self):
        request = submit()
        claim_request(request_id=request.pk)
        Request.objects.filter(pk=request.pk).update(
            partial_content="half an ans", lease_expires_at=timezone.now() - timedelta(seconds=1)
        )

        with listening(events.request_group(request.pk)) as received:
            counts = requeue_abandoned_requests()
            published = received()

        assert counts == {"requeued": 1, "settled": 0, "released": 0}
        request.refresh_from_db()
        assert (request.status, request.attempts, request.handbacks) == (Request.Status.QUEUED, 1, 0)
        assert [e["reset"] for e in published if e["type"] == "request.status"] == [True]
        assert tasks_on_broker() == 1
        assert requeue_abandoned_requests()["requeued"] == 0  # queued now: not requeued twice

    def test_a_live_lease_is_left_alone(self):
        request = submit()
        claim_request(request_id=request.pk)

        assert requeue_abandoned_requests() == {"requeued": 0, "settled": 0, "released": 0}
        assert Request.objects.get(pk=request.pk).status == Request.Status.ROUTING

    def test_hand_backs_do_not_use_up_attempts_but_crashes_do(self):
        request = submit()
        Request.objects.filter(pk=request.pk).update(
            status=Request.Status.GENERATING,
            attempts=settings.MAX_ATTEMPTS + 1,
            handbacks=1,
            lease_expires_at=timezone.now() - timedelta(seconds=1),
        )

        counts = requeue_abandoned_requests()

        assert counts["settled"] == 1
        request.refresh_from_db()
        assert request.status == Request.Status.FAILED and "stopped unexpectedly" in request.error


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class GenerationTimeLimitTests:
    def test_an_answer_longer_than_request_timeout_fails_with_a_reason(self, fake_ollama, settings):
        settings.REQUEST_TIMEOUT = 1
        fake_ollama.script(SLOW, tokens_per_second=20)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert request.status == Request.Status.FAILED
        assert "took longer than 1 seconds" in request.error and "REQUEST_TIMEOUT" in request.error
        assert request.attempts == 1  # not retried: it would only take as long again
        assert fake_ollama.wait_for_hangup() is not None
