"""The worker side against the fake Ollama server over real HTTP."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Message, Request
from pipeline.processing import claim_request, process_request, requeue_abandoned_requests
from pipeline.services import cancel_request, submit_request
from pipeline.streaming import Outcome
from tests import personas

CODE_REPLY = "Here:\n\n```python\ndef f(x):\n\tif x:\n        return [x, {'a': (1, 2)}]\n```\n  trailing  \n"


def submit(text: str = "hello there") -> Request:
    user = personas.discord_user()
    thread = personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ProcessRequestTests:
    def test_it_stores_the_answer_byte_for_byte_with_ollamas_token_counts(self, fake_ollama):
        fake_ollama.script(CODE_REPLY, prompt_tokens=321, completion_tokens=45)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.status == Request.Status.DONE
        assert request.reply.content == CODE_REPLY
        assert (request.prompt_tokens, request.completion_tokens) == (321, 45)
        assert request.model == "gpt-oss:20b"
        assert request.route.slug == "general"
        assert request.attempts == 1
        assert request.started_at and request.first_token_at and request.finished_at
        assert request.queued_at <= request.started_at <= request.first_token_at <= request.finished_at
        chat = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1]
        assert chat.body["messages"][-1] == {"role": "user", "content": "hello there"}
        assert chat.body["options"]["num_ctx"] == request.route.context_size

    def test_it_sends_earlier_turns_of_the_thread_as_context(self, fake_ollama):
        fake_ollama.script("First answer.", times=1)
        first = submit("remember the number 42")
        process_request(request_id=first.pk)
        second = submit_request(user=first.user, thread=first.thread, content="what number?", enqueue=False).request

        process_request(request_id=second.pk)

        messages = fake_ollama.chats[-1].body["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
        assert messages[1]["content"] == "remember the number 42"
        assert messages[2]["content"] == "First answer."

    def test_it_fails_clearly_when_the_model_is_not_installed_without_retrying(self, fake_ollama):
        fake_ollama.remove_model("gpt-oss:20b")
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert request.status == Request.Status.FAILED
        assert "gpt-oss:20b isn't installed" in request.error
        assert "ollama pull gpt-oss:20b" in request.error
        assert request.attempts == 1
        assert not Message.objects.filter(role=Message.Role.ASSISTANT).exists()

    def test_it_retries_a_broken_stream_and_keeps_one_answer(self, fake_ollama):
        fake_ollama.script("Complete answer that arrives whole.", times=1)
        fake_ollama.script("Partial answer that breaks", break_after=2, times=1)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.attempts == 2
        assert request.reply.content == "Complete answer that arrives whole."
        assert Message.objects.filter(role=Message.Role.ASSISTANT).count() == 1

    def test_retries_are_bounded_and_the_reason_names_the_problem(self, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 3
        fake_ollama.script("never finishes", break_after=1)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert request.attempts == 3
        assert "broke off" in request.error and "tried 3 times" in request.error
        assert len([r for r in fake_ollama.requests if r.path == "/api/chat"]) == 3
        assert not Message.objects.filter(role=Message.Role.ASSISTANT).exists()

    def test_it_fails_with_a_reason_when_ollama_is_down(self, fake_ollama, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"  # the discard port: nothing listens
        settings.MAX_ATTEMPTS = 2
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert "couldn't reach the model server" in request.error
        assert "http://127.0.0.1:9" in request.error
        assert request.attempts == 2

    def test_a_silent_server_times_out_with_a_reason(self, fake_ollama, settings):
        settings.OLLAMA_READ_TIMEOUT = 0.3
        settings.MAX_ATTEMPTS = 1
        fake_ollama.script(hang=True)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert "stopped responding" in request.error
        assert fake_ollama.wait_for_hangup(timeout=2) is not None

    def test_a_server_error_is_retried(self, fake_ollama):
        fake_ollama.script("Recovered.", times=1)
        fake_ollama.script(error=(500, "llama runner process has terminated"), times=1)
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.reply.content == "Recovered."
        assert request.attempts == 2

    def test_an_empty_answer_is_never_stored(self, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 2
        fake_ollama.script("")
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert "empty answer" in request.error
        assert not Message.objects.filter(role=Message.Role.ASSISTANT).exists()

    def test_cancelling_mid_stream_closes_the_ollama_connection_within_a_second(self, fake_ollama):
        fake_ollama.script("word " * 400, tokens_per_second=30)
        request = submit()
        outcome: list[Outcome | None] = []
        worker = threading.Thread(target=lambda: outcome.append(process_request(request_id=request.pk)))
        worker.start()
        _wait_until(lambda: Request.objects.get(pk=request.pk).first_token_at is not None)

        cancelled_at = time.monotonic()
        cancel_request(request=Request.objects.get(pk=request.pk))
        hangup = fake_ollama.wait_for_hangup(timeout=3)
        worker.join(timeout=5)

        assert hangup is not None, "the fake never saw the client hang up"
        assert hangup.monotonic - cancelled_at < 1.0
        assert outcome == [Outcome.CANCELLED]
        request.refresh_from_db()
        assert request.status == Request.Status.CANCELLED
        assert request.reply is None

    def test_a_request_is_never_claimed_twice_while_its_lease_lives(self, fake_ollama):
        request = submit()

        first = claim_request(request_id=request.pk)
        second = claim_request(request_id=request.pk)

        assert first is not None and second is None
        assert process_request(request_id=request.pk) is None  # a duplicate delivery does nothing

    def test_an_abandoned_request_is_claimed_again_after_its_lease_expires(self, fake_ollama):
        request = submit()
        assert claim_request(request_id=request.pk) is not None
        # The worker was killed: its lease runs out with nobody renewing it.
        Request.objects.filter(pk=request.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.attempts == 2
        assert Message.objects.filter(role=Message.Role.ASSISTANT).count() == 1

    def test_a_stale_worker_cannot_finish_a_request_that_was_taken_over(self, fake_ollama):
        from pipeline.processing import finish_request, prepare_job
        from pipeline.streaming import AttemptResult

        request = submit()
        stale_job = prepare_job(claim_request(request_id=request.pk))
        Request.objects.filter(pk=request.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert claim_request(request_id=request.pk) is not None  # another worker took it

        stored = finish_request(stale_job, AttemptResult(Outcome.DONE, content="stale"))

        assert stored is False
        assert not Message.objects.filter(content="stale").exists()

    def test_the_sweeper_fails_a_request_whose_workers_keep_dying(self, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 2
        request = submit()
        Request.objects.filter(pk=request.pk).update(
            status=Request.Status.GENERATING, attempts=2, lease_expires_at=timezone.now() - timedelta(seconds=1)
        )

        counts = requeue_abandoned_requests()

        assert counts == {"requeued": 0, "settled": 1, "released": 0}
        request.refresh_from_db()
        assert request.status == Request.Status.FAILED
        assert "stopped unexpectedly" in request.error

    def test_a_cancelled_request_is_left_alone_by_workers(self, fake_ollama):
        request = submit()
        cancel_request(request=request)

        assert process_request(request_id=request.pk) is None
        assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]


def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
