"""Every way the router decides, against the fake Ollama server."""

from __future__ import annotations

import json

import pytest

from budgets.models import UsageEntry
from conversations.models import Attachment, Request, Thread
from pipeline.processing import process_request
from pipeline.services import submit_request
from routing import embeddings, services
from routing.models import ExampleEmbedding, Route, RouterRule, RouterSettings
from routing.router import route_request
from tests import personas

CLASSIFIER = "Latest message"  # every classifier prompt has it; answers never do


def submit(text: str, *, route: str | None = None) -> Request:
    """A message from the same user in the same thread each time."""
    user = personas.discord_user()
    thread = Thread.objects.filter(owner=user).first() or personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=text, route_slug=route, enqueue=False).request


@pytest.fixture
def classifier(settings):
    settings.ROUTER_CLASSIFIER = True


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class OverrideTests:
    def test_an_explicit_route_wins_over_everything(self, fake_ollama, classifier):
        decision = route_request(submit("what is 2 + 2", route="research"))

        assert (decision.route.slug, decision.method) == ("research", "override")
        assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]

    def test_a_route_forced_for_the_next_message_is_used_once(self, fake_ollama):
        first = submit("hello")
        services.set_next_route(user=first.user, thread=first.thread, route=Route.objects.get(slug="reasoning"))

        forced = route_request(submit("hello again"))
        after = route_request(submit("and again"))

        assert (forced.route.slug, forced.method) == ("reasoning", "override")
        assert after.method == "default"

    def test_a_pinned_route_applies_until_unpinned(self, fake_ollama):
        request = submit("hello")
        services.pin_route(user=request.user, route=Route.objects.get(slug="simple_code"))

        assert route_request(submit("hi")).route.slug == "simple_code"
        services.pin_route(user=request.user, route=None)
        assert route_request(submit("hi")).route.slug == "general"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class VisionTests:
    def test_a_message_with_an_image_goes_to_the_vision_route(self, fake_ollama, classifier):
        request = submit("what is this?")
        Attachment.objects.create(message=request.message, kind="image", filename="cat.png", size=10)

        decision = route_request(request)

        assert (decision.route.slug, decision.method) == ("vision", "vision")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class PreRouterTests:
    def test_a_seeded_rule_decides_without_calling_any_model(self, fake_ollama, classifier):
        decision = route_request(submit("What is the derivative of x^2?"))

        assert (decision.route.slug, decision.method) == ("math", "rule")
        assert fake_ollama.requests == []

    def test_a_rule_added_in_the_admin_applies_to_the_next_message(self, fake_ollama):
        RouterRule.objects.create(
            route=Route.objects.get(slug="research"), kind="keyword", pattern="weather", priority=1
        )

        assert route_request(submit("What's the WEATHER in Oslo?")).route.slug == "research"

    def test_a_confident_similarity_decides_and_example_vectors_are_cached(self, fake_ollama, classifier):
        RouterSettings.objects.filter(pk=1).update(embedding_model="all-minilm", similarity_threshold=0.5)
        embeddings.forget_cached_vectors()

        decision = route_request(submit("How do I reverse a list in Python quickly?"))
        embeds_first = len([r for r in fake_ollama.requests if r.path == "/api/embed"])
        embeddings.forget_cached_vectors()  # a new process: the table still has them
        route_request(submit("How do I reverse a list in Python quickly?"))
        embeds_second = len([r for r in fake_ollama.requests if r.path == "/api/embed"]) - embeds_first

        assert (decision.route.slug, decision.method) == ("simple_code", "embedding")
        assert "simple_code" in decision.detail
        examples = sum(len(route.example_list) for route in Route.objects.filter(enabled=True).exclude(slug="vision"))
        # Examples once, in batches, then only the message.
        assert embeds_first == -(-examples // embeddings.EMBED_BATCH) + 1 and embeds_second == 1
        assert ExampleEmbedding.objects.filter(model="all-minilm").count() == sum(
            len(route.example_list) for route in Route.objects.filter(enabled=True).exclude(slug="vision")
        )
        assert UsageEntry.objects.filter(kind="embedding", model="all-minilm").count() == 2

    def test_the_decision_time_says_how_much_of_it_the_model_server_spent(self, fake_ollama):
        RouterSettings.objects.filter(pk=1).update(embedding_model="all-minilm")
        route_request(submit("warm up: the examples get embedded and cached"))
        fake_ollama.script(match="reverse a list", endpoints=["embed"], latency=0.3)

        decision = route_request(submit("How do I reverse a list in Python quickly?"))

        assert decision.model_ms >= 300  # Ollama's total_duration for the message's embedding
        assert decision.ms >= decision.model_ms

    def test_an_unsure_similarity_leaves_it_to_the_classifier(self, fake_ollama, classifier):
        RouterSettings.objects.filter(pk=1).update(embedding_model="all-minilm", similarity_threshold=0.99)
        fake_ollama.script('{"route": "general", "wants_file": false}', match=CLASSIFIER)

        assert route_request(submit("How do I reverse a list in Python quickly?")).method == "classifier"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ClassifierTests:
    @pytest.fixture(autouse=True)
    def _no_fast_path(self, db):
        """These are about the router model, so the embedding fast path is off."""
        RouterSettings.objects.filter(pk=1).update(embedding_model="")

    @pytest.mark.parametrize(
        ("answer", "slug", "method"),
        [
            ('{"route": "math", "wants_file": false}', "math", "classifier"),
            ("**MATH**", "math", "classifier"),
            ("route: math", "math", "classifier"),
            ("junk", "general", "default"),
            ("", "general", "default"),
        ],
    )
    def test_it_reads_messy_answers_and_falls_back_to_the_default(self, fake_ollama, classifier, answer, slug, method):
        fake_ollama.script(answer, match=CLASSIFIER, prompt_tokens=120, completion_tokens=7)
        request = submit("how many legs do three spiders have")

        decision = route_request(request)

        assert (decision.route.slug, decision.method) == (slug, method)
        (call,) = [r for r in fake_ollama.requests if r.path == "/api/chat"]
        assert call.body["model"] == "gpt-oss:20b" and call.body["stream"] is False
        # Vision is only for messages with images, which never reach the classifier.
        assert set(call.body["format"]["properties"]["route"]["enum"]) == set(
            Route.objects.filter(enabled=True).exclude(slug="vision").values_list("slug", flat=True)
        )
        usage = UsageEntry.objects.get(kind="router")
        assert (usage.prompt_tokens, usage.completion_tokens, usage.request_id) == (120, 7, request.pk)

    def test_the_wants_file_flag_is_on_the_decision(self, fake_ollama, classifier):
        fake_ollama.script('{"route": "general", "wants_file": true}', match=CLASSIFIER)

        assert route_request(submit("put a packing list in a file for me")).wants_file is True

    def test_a_failing_router_model_means_the_default_route(self, fake_ollama, classifier):
        fake_ollama.script(error=(500, "out of memory"), match=CLASSIFIER)

        decision = route_request(submit("how many legs do three spiders have"))

        assert (decision.route.slug, decision.method) == ("general", "default")

    def test_a_follow_up_is_classified_with_the_threads_last_turns(self, fake_ollama, classifier):
        def answer(body: dict) -> str:
            prompt = body["messages"][-1]["content"]
            return json.dumps({"route": "math" if "integrate" in prompt else "general", "wants_file": False})

        fake_ollama.script(answer, match=CLASSIFIER)
        fake_ollama.script("x^3/3 + C", times=1, match="^please integrate")
        first = submit("please integrate x^2 for me, step by step")
        process_request(request_id=first.pk)

        decision = route_request(submit("and now x^3?"))

        assert (decision.route.slug, decision.method) == ("math", "classifier")
        prompt = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body["messages"][-1]["content"]
        assert "user: please integrate x^2" in prompt and "assistant: x^3/3 + C" in prompt

    def test_switched_off_in_router_settings_it_is_not_asked(self, fake_ollama, classifier):
        RouterSettings.objects.filter(pk=1).update(classifier_enabled=False)

        assert route_request(submit("how many legs do three spiders have")).method == "default"
        assert fake_ollama.requests == []
