"""The worker with routing: stored decisions, fallbacks, the breaker, think values, web tools, live edits."""

from __future__ import annotations

import pytest

from conversations.models import Request
from pipeline.processing import process_request
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from routing import services
from routing.models import OllamaHost, Route
from routing.sync import sync_models
from tests import personas
from tests.pipeline.test_submit_request import listener  # noqa: F401  (a fixture)


def submit(text: str = "hello there", *, route: str | None = None) -> Request:
    user = personas.discord_user()
    thread = personas.thread_of(user, f"t-{Request.objects.count()}")
    return submit_request(user=user, thread=thread, content=text, route_slug=route, enqueue=False).request


def chats(fake) -> list:
    return [r for r in fake.requests if r.path == "/api/chat"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class DecisionRecordTests:
    def test_the_request_stores_the_decision_host_and_prompt_and_events_carry_them(self, fake_ollama, listener):  # noqa: F811
        request = submit("What is the derivative of x^2?")

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert (request.route.slug, request.model, request.route_method) == ("math", "rnj-1:8b", "rule")
        assert request.host == fake_ollama.url and request.route_ms is not None
        assert request.system_prompt.startswith("You are Trollama")
        assert "step by step" in request.system_prompt and "Today is" in request.system_prompt
        assert chats(fake_ollama)[0].body["messages"][0] == {"role": "system", "content": request.system_prompt}
        routed = next(e for e in listener() if e["type"] == "request.status" and e.get("route") == "math")
        assert routed["route_method"] == "rule" and routed["host"] == fake_ollama.url and "route_ms" in routed

    def test_an_admin_edit_applies_to_the_next_request_without_a_restart(self, fake_ollama):
        process_request(request_id=submit().pk)
        Route.objects.filter(slug="general").update(model="magistral:24b", system_prompt="Answer like a pirate.")

        request = submit()
        process_request(request_id=request.pk)

        request.refresh_from_db()
        assert request.model == "magistral:24b" and "Answer like a pirate." in request.system_prompt
        assert chats(fake_ollama)[-1].body["model"] == "magistral:24b"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class FallbackTests:
    def test_a_missing_model_moves_to_the_next_fallback_and_says_so(self, fake_ollama, listener):  # noqa: F811
        Route.objects.filter(slug="general").update(fallback_models="deepcoder:14b\nrnj-1:8b")
        fake_ollama.remove_model("gpt-oss:20b")
        fake_ollama.remove_model("deepcoder:14b")
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.model == "rnj-1:8b" and request.reply.model == "rnj-1:8b"
        assert [c.body["model"] for c in chats(fake_ollama)] == ["gpt-oss:20b", "deepcoder:14b", "rnj-1:8b"]
        reasons = [e.get("reason", "") for e in listener() if e.get("phase") == "retrying"]
        assert reasons == [
            "gpt-oss:20b is not installed; switching to deepcoder:14b",
            "deepcoder:14b is not installed; switching to rnj-1:8b",
        ]

    def test_a_model_that_keeps_failing_gives_way_to_the_fallback(self, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 2
        Route.objects.filter(slug="general").update(fallback_models="rnj-1:8b")
        fake_ollama.script(error=(500, "CUDA error"), model="gpt-oss:20b")
        fake_ollama.script("Fallback answer.", model="rnj-1:8b")
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.reply.content == "Fallback answer." and request.attempts == 3
        assert [c.body["model"] for c in chats(fake_ollama)] == ["gpt-oss:20b", "gpt-oss:20b", "rnj-1:8b"]

    def test_when_every_model_fails_the_user_gets_a_clear_error(self, fake_ollama):
        Route.objects.filter(slug="general").update(fallback_models="deepcoder:14b")
        fake_ollama.remove_model("gpt-oss:20b")
        fake_ollama.remove_model("deepcoder:14b")
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.FAILED

        request.refresh_from_db()
        assert request.error.startswith("None of the models for this kind of message could answer")
        assert "gpt-oss:20b, deepcoder:14b" in request.error and "ollama pull deepcoder:14b" in request.error


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class BreakerInTheWorkerTests:
    def test_failures_of_two_requests_open_the_breaker_and_later_requests_fail_fast(self, fake_ollama, settings):
        settings.OLLAMA_BREAKER_FAILURES = 2
        settings.MAX_ATTEMPTS = 2
        fake_ollama.script(error=(503, "overloaded"))

        assert process_request(request_id=submit().pk) is Outcome.FAILED
        host = OllamaHost.objects.get(name="default")
        # Two attempts of one request count once: one bad request does not take the host away.
        assert host.breaker_state() == "closed" and host.consecutive_failures == 1
        assert process_request(request_id=submit().pk) is Outcome.FAILED
        host.refresh_from_db()
        assert host.breaker_state() == "open" and host.consecutive_failures == 2

        later = submit()
        assert process_request(request_id=later.pk) is Outcome.FAILED
        later.refresh_from_db()
        assert "failing or switched off right now" in later.error
        assert len(chats(fake_ollama)) == 4  # two attempts each for the first two; the open breaker spared the host

    def test_a_request_goes_to_a_healthy_host_when_the_first_is_broken(self, fake_ollama, second_ollama, settings):
        OllamaHost.objects.filter(name="default").update(consecutive_failures=9, breaker_opened_at="2999-01-01T00:00Z")
        OllamaHost.objects.create(name="gpu2", url=second_ollama.url)
        second_ollama.add_model("gpt-oss:20b", ("completion",))
        request = submit()

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.host == second_ollama.url and chats(fake_ollama) == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ThinkTests:
    @pytest.mark.parametrize(
        ("route", "think", "expected"),
        [
            ("general", "low", "low"),  # gpt-oss thinks, with levels
            ("reasoning", "on", True),  # magistral thinks
            ("general", "off", False),
            ("math", "off", None),  # rnj-1 cannot think: think is left out
        ],
    )
    def test_think_is_sent_per_route_within_the_models_capability(self, fake_ollama, route, think, expected):
        sync_models()
        Route.objects.filter(slug=route).update(think=think)
        # Circumvents the admin on purpose: a route asking a non-thinking model to think.
        Route.objects.filter(slug="math").update(think="high")

        process_request(request_id=submit(route=route).pk)

        assert chats(fake_ollama)[-1].body.get("think") == expected

    def test_thinking_is_stored_apart_from_the_answer_and_shown_as_a_status(self, fake_ollama, listener):  # noqa: F811
        sync_models()
        fake_ollama.script("The answer.", thinking="Let me think about this carefully.")
        request = submit(route="reasoning")

        process_request(request_id=request.pk)

        request.refresh_from_db()
        assert request.reply.content == "The answer."
        assert request.thinking == "Let me think about this carefully."
        assert any(e.get("phase") == "thinking" for e in listener())

    def test_a_users_preference_turns_thinking_off(self, fake_ollama):
        sync_models()
        request = submit(route="reasoning")
        services.set_thinking(user=request.user, thinking="off")

        process_request(request_id=request.pk)

        assert chats(fake_ollama)[-1].body["think"] is False


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class WebToolTests:
    @pytest.fixture(autouse=True)
    def searxng(self, settings, web):
        settings.WEB_SEARCH_BACKEND = "searxng"
        settings.SEARXNG_URL = web.url

    def test_the_model_searches_reads_and_answers_with_sources_listed_after_its_text(
        self,
        fake_ollama,
        web,
        listener,  # noqa: F811
    ):
        sync_models()
        fake_ollama.script("Django 5.2 is an LTS release.\n", model="magistral:24b")
        fake_ollama.script(
            tool_calls=[{"name": "web_fetch", "arguments": {"url": f"{web.url}/page/1"}}], reply="", times=1
        )
        fake_ollama.script(tool_calls=[{"name": "web_search", "arguments": {"query": "django 5.2"}}], reply="", times=1)
        request = submit(route="research")

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.reply.content == (
            f"Django 5.2 is an LTS release.\n\n\n**Sources**\n1. [Page](<{web.url}/page/1>)"
        )
        assert web.paths == ["/search?q=django+5.2&format=json", "/page/1"]
        first, _second, third = chats(fake_ollama)
        assert [t["function"]["name"] for t in first.body["tools"]] == ["web_search", "web_fetch"]
        tool_turns = [m for m in third.body["messages"] if m["role"] == "tool"]
        assert "Result 1 for django 5.2" in tool_turns[0]["content"]
        assert "word word" in tool_turns[1]["content"] and "x()" not in tool_turns[1]["content"]
        statuses = [(e["phase"], e.get("reason")) for e in listener() if e["type"] == "request.status"]
        assert ("searching", "django 5.2") in statuses and ("reading", f"{web.url}/page/1") in statuses

    def test_the_loop_stops_at_the_call_limit_and_pages_are_cut_to_size(self, fake_ollama, web, settings):
        settings.TOOL_MAX_CALLS = 2
        settings.TOOL_MAX_PAGE_BYTES = 1000
        web.page_size = 5000
        sync_models()
        fake_ollama.script("Done reading.", tool_calls=[{"name": "web_fetch", "arguments": {"url": f"{web.url}/p"}}])
        request = submit(route="research")

        assert process_request(request_id=request.pk) is Outcome.DONE

        assert len(web.paths) == 2
        calls = chats(fake_ollama)
        assert len(calls) == 3 and not calls[-1].body.get("tools")  # the last round may only answer
        page = next(m for m in calls[-1].body["messages"] if m["role"] == "tool")["content"]
        assert len(page.encode()) < 1100 and page.endswith("[…cut: the page was longer]")

    def test_tools_are_not_offered_when_the_backend_is_off(self, fake_ollama, settings):
        settings.WEB_SEARCH_BACKEND = "off"
        sync_models()

        process_request(request_id=submit(route="research").pk)

        assert not chats(fake_ollama)[-1].body.get("tools")
