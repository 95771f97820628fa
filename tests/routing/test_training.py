"""Training the router's classifier from the examples, and the fast path that uses it, against the fake Ollama."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from conversations.models import Request, Thread
from pipeline.services import submit_request
from routing import embeddings, router, tasks, training
from routing import state as router_state
from routing.models import Route, RouteClassifier, RouteExample, RouterSettings, RoutingDecision
from routing.router import route_request
from tests import personas

ROUTER = "routing.router"


def submit(text: str) -> Request:
    user = personas.discord_user()
    thread = Thread.objects.filter(owner=user).first() or personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


def retrain() -> str:
    out = io.StringIO()
    call_command("retrainrouter", stdout=out)
    return out.getvalue()


def retrain_tasks() -> int:
    """How many retrain tasks wait in the broker, on either broker."""
    if settings.REDIS_URL:
        broker = get_broker()
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        payloads = [row.payload for row in OrmQ.objects.all()]
    return sum(SignedPackage.loads(payload)["func"] == "routing.tasks.retrain_router" for payload in payloads)


@pytest.fixture
def fresh_router():
    """A new worker process: nothing cached, nothing warned about yet."""
    router._warned.clear()
    router_state.forget()
    embeddings.forget_cached_vectors()
    yield
    router._warned.clear()
    router_state.forget()


@pytest.mark.usefixtures("fresh_router")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RetrainTests:
    def test_a_fresh_install_has_the_default_embedding_model_and_the_shipped_examples(self):
        assert RouterSettings.current().embedding_model == "all-minilm"
        shipped = [json.loads(line) for line in training.SHIPPED_EXAMPLES.read_text().splitlines() if line.strip()]
        assert RouteExample.objects.filter(source="trollama").count() == len(shipped)
        assert {row["route"] for row in shipped} == {
            "math", "simple_code", "complex_code", "reasoning", "research", "general"
        }  # fmt: skip

    def test_retraining_stores_a_classifier_that_the_next_message_is_scored_with(self, fake_ollama):
        output = retrain()

        row = RouteClassifier.objects.get(embedding_model="all-minilm")
        assert f"Trained on {row.examples} examples with all-minilm" in output
        assert set(row.labels) == {"math", "simple_code", "complex_code", "reasoning", "research", "general"}
        assert row.examples == len(training.training_examples())
        request = submit("Write a function to remove duplicates from a list while keeping the order.")

        decision = route_request(request)

        assert (decision.route.slug, decision.method) == ("simple_code", "embedding")
        assert set(decision.scores) == set(row.labels) and decision.confidence >= row.thresholds["simple_code"]
        stored = RoutingDecision.objects.get(request=request)
        assert (stored.route, stored.method, stored.scores) == ("simple_code", "embedding", decision.scores)

    def test_a_retrain_applies_to_the_next_message_without_a_restart(self, fake_ollama):
        retrain()
        # Not a training example, so its probabilities are not saturated at 1.0 and show a change of weights.
        text = "drop the repeated entries from my list but keep them in order"
        before = route_request(submit(text))
        RouterSettings.objects.filter(pk=1).update(calibration_precision=1.0)
        RouteExample.objects.create(route=Route.objects.get(slug="simple_code"), text="Dedupe a list in Python")

        retrained = training.retrain_if_stale()
        after = route_request(submit(text))

        assert retrained is not None
        best = max(after.scores, key=after.scores.__getitem__)
        assert f"needs {retrained.thresholds[best]:.2f}" in after.detail
        assert before.scores != after.scores  # the new weights, read without a restart

    def test_nothing_is_retrained_while_the_examples_are_unchanged(self, fake_ollama):
        retrain()

        assert training.retrain_if_stale() is None

    def test_examples_can_be_loaded_from_a_file_with_their_provenance(self, fake_ollama, tmp_path):
        path = tmp_path / "more.jsonl"
        lines = [
            {"route": "math", "text": "Natalia sold clips to 48 friends...", "source": "GSM8K", "licence": "MIT"},
            {"route": "nonsense", "text": "skipped"},
        ]
        path.write_text("\n".join(json.dumps(line) for line in lines))
        out = io.StringIO()

        call_command("retrainrouter", "--load", str(path), stdout=out)

        assert f"{path}: 1 examples added, 1 skipped" in out.getvalue()
        example = RouteExample.objects.get(text="Natalia sold clips to 48 friends...")
        assert (example.route.slug, example.source, example.licence) == ("math", "GSM8K", "MIT")

    def test_without_the_embedding_model_it_says_what_to_pull(self, fake_ollama):
        fake_ollama.remove_model("all-minilm")

        with pytest.raises(CommandError, match="ollama pull all-minilm"):
            retrain()
        assert not RouteClassifier.objects.exists()

    def test_the_scheduled_sync_trains_a_classifier_that_is_missing(self, fake_ollama):
        result = tasks.sync_models()

        assert result["retrained"] == 1
        assert RouteClassifier.objects.filter(embedding_model="all-minilm").exists()

    def test_an_admin_edit_of_an_example_queues_a_retrain(self, client, fake_ollama):
        get_broker().purge_queue()
        client.force_login(personas.staff_admin())
        route = Route.objects.get(slug="general")

        response = client.post(
            "/admin/routing/routeexample/add/",
            {"route": route.pk, "text": "Howdy partner!", "source": "operator", "licence": "", "enabled": "on"},
        )

        assert response.status_code == 302
        assert RouteExample.objects.filter(text="Howdy partner!", route=route).exists()
        assert retrain_tasks() == 1
        assert tasks.retrain_router()["examples"] == len(training.training_examples())


@pytest.mark.usefixtures("fresh_router")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class FastPathTests:
    def test_a_short_follow_up_keeps_the_previous_turns_route(self, fake_ollama):
        retrain()
        first = submit("Write a Python function that returns the second largest number in a list.")
        Request.objects.filter(pk=first.pk).update(route=Route.objects.get(slug="simple_code"), status="done")

        request = submit("now make it async")
        decision = route_request(request)

        assert (decision.route.slug, decision.method) == ("simple_code", "follow_up")
        assert RoutingDecision.objects.get(request=request).previous_route == "simple_code"
        embed = [r for r in fake_ollama.requests if r.path == "/api/embed"][-1]
        assert embed.body["input"] == [
            "now make it async",
            "Write a Python function that returns the second largest number in a list.\nnow make it async",
        ]

    def test_without_a_trained_classifier_it_compares_with_route_examples_and_says_so(self, fake_ollama, caplog):
        with caplog.at_level(logging.WARNING, logger=ROUTER):
            route_request(submit("How do I reverse a list in Python?"))
            route_request(submit("How do I reverse a list in Python?"))

        warnings = [r.getMessage() for r in caplog.records if "retrainrouter" in r.getMessage()]
        assert len(warnings) == 1  # once per process, not per message

    def test_a_missing_embedding_model_is_skipped_with_the_pull_to_run(self, fake_ollama, caplog):
        retrain()
        fake_ollama.remove_model("all-minilm")
        request = submit("Write a function to remove duplicates from a list while keeping the order.")

        with caplog.at_level(logging.WARNING, logger=ROUTER):
            decision = route_request(request)

        assert decision.method == "default"
        assert any("ollama pull all-minilm" in r.getMessage() for r in caplog.records)
        assert RoutingDecision.objects.get(request=request).method == "default"
