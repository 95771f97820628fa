"""The console's Routing page: recent decisions to review, and a one-click relabel that retrains the fast path."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from conversations.models import Message, Request, Thread
from pipeline.services import submit_request
from routing import state as router_state
from routing import tasks, training
from routing.models import Route, RouteExample, RoutingDecision
from routing.router import route_request
from tests import personas
from tests.routing.test_training import retrain, retrain_tasks

PAGE = reverse("console:routing")


def submit(text: str) -> Request:
    user = personas.discord_user()
    thread = Thread.objects.filter(owner=user).first() or personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


def decided(text: str, *, route: str = "general", method: str = "classifier", **fields) -> RoutingDecision:
    return RoutingDecision.objects.create(request=submit(text), route=route, method=method, **fields)


def relabel_url(decision: RoutingDecision) -> str:
    return reverse("console:routing-relabel", kwargs={"decision_id": decision.pk})


def notes(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.django_db
class RoutingPageTests:
    def test_it_lists_what_the_fast_path_was_unsure_of_with_scores_and_a_button_per_route(self, staff_client):
        unsure = decided(
            "Five friends sit around a round table; who sits opposite Dana?",
            scores={"math": 0.41, "reasoning": 0.38, "general": 0.05},
            confidence=0.41,
        )
        decided("Write me a sonnet about rain", route="general", method="embedding", confidence=0.97)

        html = staff_client.get(PAGE).content.decode()

        assert "who sits opposite Dana?" in html
        assert "math 0.41" in html and "reasoning 0.38" in html
        assert "sonnet about rain" not in html  # decided confidently by the fast path: nothing to review
        assert f'action="{relabel_url(unsure)}"' in html
        for slug in ("math", "reasoning", "general", "simple_code", "complex_code", "research"):
            assert f'name="route" value="{slug}"' in html
        assert 'value="vision"' not in html  # images decide that route, not text

    def test_overrides_and_corrections_have_views_of_their_own(self, staff_client):
        decided("use the coder for this", route="complex_code", method="override")
        decided("pinned question", route="research", method="pinned")
        fixed = decided("already fixed", corrected_route="math", corrected_by="console:admin")

        overrides = staff_client.get(PAGE, {"show": "overrides"}).content.decode()
        corrected = staff_client.get(PAGE, {"show": "corrected"}).content.decode()
        unsure = staff_client.get(PAGE).content.decode()

        assert "use the coder for this" in overrides and "pinned question" in overrides
        assert "already fixed" not in overrides
        assert "already fixed" in corrected and "relabelled math by console:admin" in corrected
        assert "already fixed" not in unsure  # reviewed already
        assert fixed.pk

    def test_an_empty_view_says_why_it_is_empty(self, staff_client):
        html = staff_client.get(PAGE).content.decode()

        assert "Nothing to review" in html

    def test_it_is_for_staff_only(self, outsider_client):
        decision = decided("secret question")

        assert outsider_client.get(PAGE).status_code == 403
        assert outsider_client.post(relabel_url(decision), {"route": "math"}).status_code == 403
        assert not RouteExample.objects.filter(text="secret question").exists()
        assert Client().get(PAGE).status_code == 302  # to the login page


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RelabelTests:
    @pytest.fixture(autouse=True)
    def _fresh_router(self):
        router_state.forget()
        yield
        router_state.forget()

    def test_one_click_makes_the_message_an_example_marks_the_decision_and_queues_a_retrain(self, staff_client):
        from django_q.brokers import get_broker

        get_broker().purge_queue()
        decision = decided("Alice is taller than Bob, Bob is taller than Carol: who is shortest?")

        response = staff_client.post(relabel_url(decision), {"route": "reasoning", "next": f"{PAGE}?show=unsure"})

        assert response.status_code == 302 and response["Location"] == f"{PAGE}?show=unsure"
        example = RouteExample.objects.get(text=decision.request.message.content)
        assert (example.route.slug, example.source, example.enabled) == ("reasoning", "console", True)
        decision.refresh_from_db()
        assert (decision.corrected_route, decision.corrected_by) == ("reasoning", "console:ada")
        assert decision.corrected_at is not None
        assert retrain_tasks() == 1
        assert ("reasoning", example.text) in training.training_examples()
        followed = staff_client.get(response["Location"])
        assert "Saved as a training example of reasoning" in " ".join(notes(followed))

    def test_the_retrain_it_queues_moves_the_next_such_message_towards_the_new_route(
        self, staff_client, fake_ollama, settings
    ):
        settings.ROUTER_FAST_PATH = True
        retrain()
        text = "Tell me about the weather patterns of the Sahara in a short paragraph"
        before = route_request(submit(text))
        stored = RoutingDecision.objects.filter(request__message__content=text).first()
        assert stored is not None

        staff_client.post(relabel_url(stored), {"route": "research"})
        tasks.retrain_router()  # what the queued task runs in a worker
        after = route_request(submit(text))

        assert after.scores["research"] > before.scores["research"]

    def test_the_same_text_under_another_route_is_disabled_not_deleted(self, staff_client):
        text = "how many legs do three spiders have?"
        wrong = RouteExample.objects.create(route=Route.objects.get(slug="general"), text=text, source="operator")
        decision = decided(text)

        staff_client.post(relabel_url(decision), {"route": "math"})

        wrong.refresh_from_db()
        assert not wrong.enabled
        assert ("general", text) not in training.training_examples()
        assert ("math", text) in training.training_examples()

    def test_relabelling_twice_keeps_one_example_per_route_and_the_last_word(self, staff_client):
        decision = decided("what is the integral of x squared?")

        staff_client.post(relabel_url(decision), {"route": "reasoning"})
        staff_client.post(relabel_url(decision), {"route": "math"})

        examples = RouteExample.objects.filter(text="what is the integral of x squared?")
        assert {(example.route.slug, example.enabled) for example in examples} == {("reasoning", False), ("math", True)}
        decision.refresh_from_db()
        assert decision.corrected_route == "math"

    @pytest.mark.parametrize(
        ("route", "expected"),
        [
            ("nonsense", "Pick one of the listed routes"),
            ("vision", "chosen by attached images"),
        ],
    )
    def test_a_bad_route_is_refused_with_a_reason_and_stores_nothing(self, staff_client, route, expected):
        decision = decided("a question")

        response = staff_client.post(relabel_url(decision), {"route": route}, follow=True)

        assert expected in " ".join(notes(response))
        assert not RouteExample.objects.filter(text="a question").exists()
        decision.refresh_from_db()
        assert decision.corrected_route == ""

    def test_a_disabled_route_is_refused(self, staff_client):
        Route.objects.filter(slug="research").update(enabled=False)
        decision = decided("a question")

        response = staff_client.post(relabel_url(decision), {"route": "research"}, follow=True)

        assert "The route research is disabled" in " ".join(notes(response))
        assert not RouteExample.objects.filter(text="a question").exists()

    def test_a_message_of_only_files_cannot_be_learned_from(self, staff_client):
        decision = decided("a picture, no words")
        Message.objects.filter(pk=decision.request.message_id).update(
            content=""
        )  # as a message of only files is stored

        response = staff_client.post(relabel_url(decision), {"route": "math"}, follow=True)

        assert "no text to learn from" in " ".join(notes(response))

    def test_an_offsite_next_is_ignored(self, staff_client):
        decision = decided("a question")

        response = staff_client.post(relabel_url(decision), {"route": "math", "next": "https://evil.example/"})

        assert response["Location"] == PAGE
