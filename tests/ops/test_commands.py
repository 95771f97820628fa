"""manage.py maintenance, queue, retry and doctor: output, exit status and bad input."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from conversations.models import Request, Thread
from ops.doctor import discord_token_problem
from ops.maintenance import set_maintenance
from pipeline.services import submit_request
from tests import personas
from tests.ops.queue_helpers import empty_queue, enqueued_request_ids
from trollama.maintenance import current_maintenance
from trollama.models import Maintenance

BOT_ID = "123456789012345678"
WELL_FORMED_TOKEN = base64.urlsafe_b64encode(BOT_ID.encode()).decode().rstrip("=") + ".GaBcDe." + "x" * 38


def manage(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def doctor() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("doctor", stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def submit(content: str = "hello") -> Request:
    user = personas.discord_user()
    thread = Thread.objects.filter(external_id="general-chat").first() or personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=content, enqueue=False).request


@pytest.mark.usefixtures(empty_queue.__name__)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MaintenanceCommandTests:
    def test_status_when_off(self):
        assert manage("maintenance", "status").startswith("Maintenance is off")

    def test_soft_with_a_message_switches_and_reports(self):
        output = manage("maintenance", "soft", "--message", "Upgrading Ollama.", "--by", "ops")

        assert "Maintenance is SOFT" in output
        assert "Users are told: Upgrading Ollama." in output
        maintenance = current_maintenance()
        assert (maintenance.mode, maintenance.message, maintenance.changed_by) == ("soft", "Upgrading Ollama.", "ops")

    def test_off_reports_how_many_are_still_held(self):
        set_maintenance(mode="soft", changed_by="ada")
        submit()

        output = manage("maintenance", "off")

        assert "Maintenance is off" in output
        assert "Held requests: 0." in output
        assert Request.objects.get().status == Request.Status.QUEUED

    def test_an_unknown_action_is_a_clear_error(self):
        with pytest.raises(CommandError, match="invalid choice: 'sideways'"):
            manage("maintenance", "sideways")

    def test_a_message_with_off_is_refused(self):
        with pytest.raises(CommandError, match="--message only goes with soft or hard"):
            manage("maintenance", "off", "--message", "hi")

    def test_a_too_long_message_is_refused_and_nothing_changes(self):
        with pytest.raises(CommandError, match="limit is 500"):
            manage("maintenance", "hard", "--message", "x" * 600)

        assert current_maintenance().mode == Maintenance.Mode.OFF


@pytest.mark.usefixtures(empty_queue.__name__)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class QueueCommandTests:
    def test_it_counts_each_state_and_names_the_oldest_waiting(self):
        oldest = submit("one")
        Request.objects.filter(pk=oldest.pk).update(queued_at=timezone.now() - timedelta(minutes=3))
        submit("two")
        running = submit("three")
        Request.objects.filter(pk=running.pk).update(status=Request.Status.GENERATING)
        failed = submit("four")
        Request.objects.filter(pk=failed.pk).update(status=Request.Status.FAILED, finished_at=timezone.now())
        old_failure = submit("five")
        Request.objects.filter(pk=old_failure.pk).update(
            status=Request.Status.FAILED, finished_at=timezone.now() - timedelta(hours=2)
        )

        output = manage("queue")

        assert "Waiting:          2" in output
        assert "Running:          1" in output
        assert "Held:             0" in output
        assert "Failed (1 hour):  1" in output
        assert f"Oldest waiting:   request {oldest.pk}, waiting 3 min" in output

    def test_json_output_for_scripts(self):
        set_maintenance(mode="soft", changed_by="ada")
        held = submit()

        data = json.loads(manage("queue", "--json"))

        assert data["held"] == 1
        assert data["queued"] == 0
        assert data["oldest_waiting_id"] is None
        assert data["maintenance"] == "soft"
        assert held.pk

    def test_an_empty_queue(self):
        assert "Oldest waiting:   none" in manage("queue")


@pytest.mark.usefixtures(empty_queue.__name__)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RetryCommandTests:
    def test_it_requeues_a_failed_request_with_a_fresh_attempt_budget(self):
        request = submit()
        Request.objects.filter(pk=request.pk).update(
            status=Request.Status.FAILED, attempts=3, error="Ollama fell over.", finished_at=timezone.now()
        )

        output = manage("retry", str(request.pk))

        assert f"Request {request.pk} is queued again" in output
        request.refresh_from_db()
        assert (request.status, request.attempts, request.error, request.finished_at) == (
            Request.Status.QUEUED,
            0,
            "",
            None,
        )
        assert enqueued_request_ids() == [request.pk]

    def test_under_maintenance_the_retry_is_held(self):
        request = submit()
        Request.objects.filter(pk=request.pk).update(status=Request.Status.FAILED)
        set_maintenance(mode="hard", changed_by="ada")

        output = manage("retry", str(request.pk))

        assert "held" in output
        request.refresh_from_db()
        assert request.status == Request.Status.HELD
        assert enqueued_request_ids() == []

    def test_an_unknown_id_is_a_clear_error(self):
        with pytest.raises(CommandError, match=r"There is no request 999999\."):
            manage("retry", "999999")

    def test_a_request_that_did_not_fail_is_refused_and_left_alone(self):
        request = submit()
        Request.objects.filter(pk=request.pk).update(status=Request.Status.DONE)

        with pytest.raises(CommandError, match="is done, not failed"):
            manage("retry", str(request.pk))

        request.refresh_from_db()
        assert request.status == Request.Status.DONE

    def test_a_non_numeric_id_is_a_clear_error(self):
        with pytest.raises(CommandError, match="invalid int value: 'abc'"):
            manage("retry", "abc")


@pytest.mark.usefixtures(empty_queue.__name__)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class DoctorCommandTests:
    def test_a_healthy_install_passes_every_check(self, fake_ollama, settings):
        settings.DISCORD_TOKEN = WELL_FORMED_TOKEN

        code, output = doctor()

        assert code == 0, output
        assert "ollama" in output and "answers, version" in output
        assert "model gpt-oss:20b is on" in output
        assert "migrations" in output and "none pending" in output
        assert "DISCORD_TOKEN is set and well formed" in output
        assert WELL_FORMED_TOKEN not in output

    def test_a_missing_embedding_model_warns_with_the_pull_command(self, fake_ollama):
        fake_ollama.remove_model("all-minilm")

        _, output = doctor()

        assert "the embedding model all-minilm is not on" in output and "run `ollama pull all-minilm`" in output
        assert "router fast path" in output

    def test_an_untrained_classifier_warns_with_the_command_to_train_it(self, fake_ollama):
        _, output = doctor()

        assert "no classifier is trained for it yet: run `manage.py retrainrouter`" in output
        call_command("retrainrouter", stdout=io.StringIO())
        _, output = doctor()
        assert "classifier trained on" in output

    def test_a_missing_model_fails_with_the_pull_command(self, fake_ollama):
        fake_ollama.remove_model("gpt-oss:20b")

        code, output = doctor()

        assert code == 1
        assert "FAIL" in output
        assert "run `ollama pull gpt-oss:20b` there" in output

    def test_an_unreachable_ollama_fails(self, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        code, output = doctor()

        assert code == 1
        assert "is not answering" in output

    def test_a_malformed_token_fails_without_being_printed(self, fake_ollama, settings):
        settings.DISCORD_TOKEN = "not-a-token-at-all-but-secret"

        code, output = doctor()

        assert code == 1
        assert "does not look like a bot token" in output
        assert settings.DISCORD_TOKEN not in output

    def test_no_token_is_a_warning_not_a_failure(self, fake_ollama, settings):
        settings.DISCORD_TOKEN = ""

        code, output = doctor()

        assert code == 0, output
        assert "the bot stays off" in output


class DiscordTokenShapeTests:
    def test_a_well_formed_token_passes(self):
        assert discord_token_problem(WELL_FORMED_TOKEN) is None

    def test_a_client_secret_is_recognised_as_the_wrong_thing(self):
        secret_like = base64.urlsafe_b64encode(b"not-an-id-at-all!!").decode().rstrip("=") + ".GaBcDe." + "x" * 38

        assert "client secret" in (discord_token_problem(secret_like) or "")
