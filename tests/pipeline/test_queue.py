"""The queue decides what runs next: the snapshot, the ordered atomic claim, positions, against the fake Ollama."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from conversations import selectors
from conversations.models import Request
from pipeline import cluster, queue
from pipeline.processing import process_next, take_request
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from routing import gpu
from routing.clients import sync_client
from routing.hosts import default_host
from routing.models import OllamaHost
from tests import personas
from tests.concurrency import race
from tests.layer import listening
from tests.ops.queue_helpers import (
    empty_queue,
    enqueued_request_ids,
    no_cluster_statistics,
    pretend_a_worker_cluster_reported,
)
from trollama import events

_threads = itertools.count()


def submit(route: str, *, user_name: str = "alice", text: str = "hello") -> Request:
    user = personas.discord_user(user_name, external_id=str(abs(hash(user_name)) % 10**9))
    thread = personas.thread_of(user, f"thread-{next(_threads)}")
    return submit_request(user=user, thread=thread, content=text, route_slug=route, enqueue=False).request


def preload(url: str, model: str) -> None:
    """Load ``model`` the way Ollama documents it: a generate call without a prompt."""
    sync_client(url).generate(model=model, keep_alive="5m")


@pytest.fixture(autouse=True)
def fresh_ps() -> Iterator[None]:
    gpu.forget()
    yield
    gpu.forget()


@pytest.fixture
def host(fake_ollama, db) -> OllamaHost:
    found = default_host()
    OllamaHost.objects.filter(pk=found.pk).update(url=fake_ollama.url, num_parallel=2)
    found.refresh_from_db()
    return found


def claim() -> int | None:
    claimed = queue.claim_next(take=take_request)
    return claimed.request_id if claimed else None


@pytest.mark.django_db
class ClaimOrderTests:
    def test_a_free_worker_takes_the_request_whose_model_is_loaded_before_an_older_one(self, host, fake_ollama):
        older = submit("general")  # gpt-oss:20b, not loaded
        newer = submit("math")  # rnj-1:8b
        preload(fake_ollama.url, "rnj-1:8b")

        assert claim() == newer.pk
        newer.refresh_from_db()
        assert newer.status == Request.Status.ROUTING and newer.attempts == 1
        older.refresh_from_db()
        assert older.status == Request.Status.QUEUED

    def test_the_fifo_scheduler_claims_in_arrival_order(self, host, fake_ollama, settings):
        settings.REQUEST_SCHEDULER = "fifo"
        older = submit("general")
        submit("math")
        preload(fake_ollama.url, "rnj-1:8b")

        assert claim() == older.pk

    def test_a_host_that_does_not_answer_ps_in_time_leaves_first_in_first_out(self, host, settings):
        settings.SCHEDULER_PS_TIMEOUT = 0.2
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (the kernel does) and never answers
        try:
            OllamaHost.objects.filter(pk=host.pk).update(url=f"http://127.0.0.1:{silent.getsockname()[1]}")
            older = submit("general")
            submit("math")
            assert claim() == older.pk
        finally:
            silent.close()

    def test_the_model_expected_at_intake_comes_from_the_route_asked_for(self, host):
        assert submit("math").expected_model == "rnj-1:8b"
        assert submit("vision").expected_model == "qwen3-vl:8b"

    def test_a_request_held_back_for_memory_is_not_claimed_while_others_run(self, host, fake_ollama):
        # A 14 GB budget: gpt-oss (13.8 GB) cannot join the loaded rnj-1 while that one answers.
        OllamaHost.objects.filter(pk=host.pk).update(vram_budget_gb=14)
        preload(fake_ollama.url, "rnj-1:8b")
        running = submit("math")
        assert claim() == running.pk
        Request.objects.filter(pk=running.pk).update(model="rnj-1:8b", host=fake_ollama.url)
        waiting = submit("general")

        assert claim() is None
        waiting.refresh_from_db()
        assert waiting.status == Request.Status.QUEUED

    def test_a_request_claimed_but_not_yet_routed_already_holds_its_models_slot(self, host, fake_ollama):
        OllamaHost.objects.filter(pk=host.pk).update(num_parallel=1, vram_budget_gb=24)
        preload(fake_ollama.url, "rnj-1:8b")
        first, second = submit("math"), submit("math")
        other = submit("general")

        assert claim() == first.pk  # still routing: no host or model of its own yet
        assert claim() == other.pk  # rnj-1's one slot is taken; gpt-oss fits beside it
        second.refresh_from_db()
        assert second.status == Request.Status.QUEUED

    def test_cancelled_and_exhausted_requests_are_never_claimed(self, host):
        cancelled = submit("math")
        Request.objects.filter(pk=cancelled.pk).update(cancel_requested=True)
        exhausted = submit("math")
        Request.objects.filter(pk=exhausted.pk).update(attempts=3)
        assert claim() is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ClaimConcurrencyTests:
    """Real threads, each with its own connection, claiming at the same instant (both databases)."""

    def test_two_workers_never_claim_the_same_request(self, host, fake_ollama):
        preload(fake_ollama.url, "rnj-1:8b")
        requests = [submit("math" if n % 2 else "general", user_name=f"user{n % 3}") for n in range(6)]

        claimed = race(lambda _: claim(), list(range(10)))

        errors = [result for result in claimed if isinstance(result, Exception)]
        assert errors == []
        taken = [result for result in claimed if result is not None]
        assert sorted(taken) == sorted(request.pk for request in requests)
        assert len(set(taken)) == len(taken) == 6
        rows = Request.objects.filter(pk__in=taken)
        assert set(rows.values_list("status", flat=True)) == {Request.Status.ROUTING}
        assert set(rows.values_list("attempts", flat=True)) == {1}
        connections.close_all()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures(empty_queue.__name__)
class ProcessNextTests:
    def test_the_task_answers_the_policys_choice_and_sends_a_task_while_others_wait(self, host, fake_ollama):
        fake_ollama.script("From the loaded model.", model="rnj-1:8b")
        older = submit("general")
        newer = submit("math")
        preload(fake_ollama.url, "rnj-1:8b")

        assert process_next(hint=older.pk) is Outcome.DONE

        newer.refresh_from_db()
        assert newer.status == Request.Status.DONE and newer.reply.content == "From the loaded model."
        older.refresh_from_db()
        assert older.status == Request.Status.QUEUED
        # The answer ended with a request still waiting: a worker is told to look again.
        assert newer.pk in enqueued_request_ids()

    def test_the_worker_that_claimed_tells_the_others_their_new_places_while_it_answers(
        self, host, fake_ollama, settings
    ):
        settings.CANCEL_CHECK_INTERVAL = 0.05
        fake_ollama.script("one two three four five six", model="rnj-1:8b", tokens_per_second=20)
        older = submit("general")
        submit("math")
        preload(fake_ollama.url, "rnj-1:8b")

        with listening(events.request_group(older.pk)) as received:
            assert process_next(hint=older.pk) is Outcome.DONE
            published = [e for e in received() if e["type"] == "request.queued"]

        older.refresh_from_db()
        assert older.status == Request.Status.QUEUED and older.queue_position == 1
        assert [e["position"] for e in published] == [1]
        assert fake_ollama.chats[-1].model == "rnj-1:8b"

    def test_a_task_that_finds_nothing_to_claim_ends(self, host):
        done = submit("math")
        Request.objects.filter(pk=done.pk).update(status=Request.Status.DONE)
        assert process_next(hint=done.pk) is None
        assert enqueued_request_ids() == []


@pytest.mark.django_db
class PositionTests:
    def test_positions_and_waits_shown_are_the_policys_and_are_published_when_they_change(
        self, host, fake_ollama, django_capture_on_commit_callbacks
    ):
        older = submit("general")
        newer = submit("math")
        assert selectors.queue_position(older) == 1  # arrival order until the scheduler has looked
        preload(fake_ollama.url, "rnj-1:8b")

        with listening(events.request_group(older.pk), events.request_group(newer.pk)) as received:
            with django_capture_on_commit_callbacks(execute=True):
                assert queue.publish_positions(force=True) == 2
            published = received()

        older.refresh_from_db()
        newer.refresh_from_db()
        assert (newer.queue_position, older.queue_position) == (1, 2)
        assert selectors.queue_position(newer) == 1 and selectors.queue_position(older) == 2
        assert older.wait_estimate is not None and older.wait_estimate >= newer.wait_estimate
        queued = {e["request_id"]: e for e in published if e["type"] == "request.queued"}
        assert queued[newer.pk]["position"] == 1 and queued[older.pk]["position"] == 2
        assert queued[older.pk]["request"]["position"] == 2 and "wait" in queued[older.pk]

        with listening(events.request_group(older.pk)) as received:
            with django_capture_on_commit_callbacks(execute=True):
                assert queue.publish_positions(force=True) == 0  # nothing moved: nothing said
            assert [e for e in received() if e["type"] == "request.queued"] == []

    def test_updates_are_rate_bounded(self, host, settings):
        settings.QUEUE_UPDATE_INTERVAL = 3600
        submit("math")
        queue.publish_positions(force=True)
        submit("general")
        assert queue.publish_positions() == 0


@pytest.mark.django_db
class KeepAliveTests:
    def test_a_model_is_kept_while_requests_for_it_wait_and_the_routes_own_applies_after(self, host):
        first = submit("math")
        second = submit("math")
        assert queue.keep_alive_for(model="rnj-1:8b", default="5m", request_id=first.pk) == queue.LONG_KEEP_ALIVE
        Request.objects.filter(pk=second.pk).update(status=Request.Status.DONE)
        assert queue.keep_alive_for(model="rnj-1:8b", default="5m", request_id=first.pk) == "5m"

    def test_the_fifo_scheduler_leaves_keep_alive_alone(self, host, settings):
        settings.REQUEST_SCHEDULER = "fifo"
        first = submit("math")
        submit("math")
        assert queue.keep_alive_for(model="rnj-1:8b", default="5m", request_id=first.pk) == "5m"

    def test_idle_models_nobody_waits_for_are_released_to_make_room(self, host, fake_ollama):
        OllamaHost.objects.filter(pk=host.pk).update(vram_budget_gb=20)
        preload(fake_ollama.url, "rnj-1:8b")
        preload(fake_ollama.url, "qwen3-vl:8b")
        submit("vision")  # someone waits for qwen3-vl: it stays
        assert queue.make_room(host_url=fake_ollama.url, model="gpt-oss:20b") == ["rnj-1:8b"]
        assert "rnj-1:8b" not in fake_ollama.loaded_models and "qwen3-vl:8b" in fake_ollama.loaded_models


@pytest.mark.django_db
@pytest.mark.usefixtures(no_cluster_statistics.__name__)
class WorkerLivenessTests:
    def test_a_worker_holding_a_request_under_a_live_lease_is_running(self, host):
        request = submit("math")
        assert not cluster.workers_running()
        assert take_request(request.pk)
        assert cluster.workers_running()
        Request.objects.filter(pk=request.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert not cluster.workers_running()  # its worker died: nobody renews the lease

    def test_a_cluster_that_reported_is_running_with_every_worker_between_answers(self, host):
        waiting = submit("math")
        ended = submit("math")
        Request.objects.filter(pk=ended.pk).update(status=Request.Status.DONE, finished_at=timezone.now())
        assert not cluster.workers_running()  # an answer that ended is no sign of a worker still there

        pretend_a_worker_cluster_reported()

        assert cluster.workers_running()  # about to take ``waiting``
        assert Request.objects.get(pk=waiting.pk).status == Request.Status.QUEUED
