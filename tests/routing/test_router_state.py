"""The router's per-process state: few queries per decision, and every edit seen on the next decision."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from conversations.models import Attachment, Request, Thread
from pipeline.services import submit_request
from routing import embeddings, router, state
from routing.models import OllamaHost, Route, RouterRule, RouterSettings, RouterStateVersion
from routing.router import route_request
from tests import personas

ROOT = Path(__file__).resolve().parents[2]


def submit(text: str) -> Request:
    user = personas.discord_user()
    thread = Thread.objects.filter(owner=user).first() or personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


@pytest.fixture(autouse=True)
def fresh_state():
    """Each test starts as a new worker process: nothing cached."""
    state.forget()
    router._warned.clear()
    embeddings.forget_cached_vectors()
    yield
    state.forget()


ACCOUNTS = ("budgets_usageentry", "trollama_metriccounter")  # written by budgets' receiver of model_called


def routers_own(queries: list[dict]) -> list[str]:
    return [q["sql"] for q in queries if not any(table in q["sql"] for table in ACCOUNTS)]


def token() -> str:
    return RouterStateVersion.objects.values_list("token", flat=True).get(pk=1)


def in_another_process(code: str) -> None:
    """Run ``code`` in a fresh Python process on this test's database (another worker, or the admin's web process)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        url = f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,  # under pytest-xdist, this worker's own Redis database
        "LOG_TO_FILE": "false",
    }
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class QueryCountTests:
    def test_a_rule_decision_reads_once_and_records_once(self, fake_ollama, django_assert_max_num_queries):
        route_request(submit("warm up"))  # builds this process's state
        request = submit("What is the derivative of x^2?")

        with django_assert_max_num_queries(2):
            decision = route_request(request)

        assert (decision.route.slug, decision.method) == ("math", "rule")

    def test_an_embedding_decision_adds_only_the_usage_row(self, fake_ollama, django_assert_max_num_queries):
        out = io.StringIO()
        call_command("retrainrouter", stdout=out)
        route_request(submit("warm up"))
        request = submit("Write a function to remove duplicates from a list while keeping the order.")

        # The router's read and its decision's row, and what budgets records for the embedding
        # (``routing.signals.model_called``): the token counter and the usage row.
        with django_assert_max_num_queries(4) as queries:
            decision = route_request(request)

        assert decision.method == "embedding" and decision.scores
        assert len(routers_own(queries.captured_queries)) <= 2

    def test_a_follow_up_reads_the_previous_turn_in_the_same_query(self, fake_ollama, django_assert_max_num_queries):
        call_command("retrainrouter", stdout=io.StringIO())
        first = submit("Write a function to remove duplicates from a list while keeping the order.")
        Request.objects.filter(pk=first.pk).update(route=Route.objects.get(slug="simple_code"), status="done")
        route_request(submit("warm up"))  # routed but not processed: no route stored, so not a previous turn
        follow_up = submit("now make it faster")

        with django_assert_max_num_queries(4) as queries:
            decision = route_request(follow_up)

        assert len(routers_own(queries.captured_queries)) <= 2
        assert decision.previous_route == "simple_code"

    def test_an_image_and_a_pin_are_read_per_request(self, fake_ollama):
        route_request(submit("warm up"))
        request = submit("what is this?")
        Attachment.objects.create(message=request.message, kind="image", filename="cat.png", size=10)

        assert route_request(request).method == "vision"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class InvalidationTests:
    def test_an_edit_saved_in_another_process_applies_to_the_next_decision(self, fake_ollama):
        before = route_request(submit("hello there"))
        assert before.route.slug == "general"

        in_another_process(
            "from routing.models import Route, RouterRule\n"
            "route = Route.objects.get(slug='research')\n"
            "route.model = 'edited-model:7b'\n"
            "route.save()\n"  # as the admin saves it
            "RouterRule.objects.create(route=route, kind='keyword', pattern='hello', priority=1)\n"
        )
        after = route_request(submit("hello again"))

        assert (after.route.slug, after.method) == ("research", "rule")
        assert after.route.model == "edited-model:7b"

    def test_a_bulk_update_in_another_process_applies_too(self, fake_ollama):
        assert route_request(submit("hello there")).route.slug == "general"

        in_another_process(
            "from routing.models import Route\nRoute.objects.filter(slug='general').update(enabled=False)"
        )

        assert route_request(submit("hello again")).route.slug != "general"

    def test_a_deleted_rule_stops_deciding(self, fake_ollama):
        rule = RouterRule.objects.create(
            route=Route.objects.get(slug="research"), kind="keyword", pattern="zebra", priority=1
        )
        assert route_request(submit("zebra facts")).method == "rule"

        rule.delete()

        assert route_request(submit("zebra facts")).method != "rule"

    def test_a_settings_edit_changes_the_token_and_the_decision(self, fake_ollama):
        assert route_request(submit("hello there")).method in {"embedding", "default"}
        first = token()

        config = RouterSettings.current()
        config.embedding_model = ""
        config.save()

        assert token() != first
        assert route_request(submit("hello there")).method == "default"

    def test_a_retrain_applies_without_a_restart(self, fake_ollama):
        route_request(submit("warm up"))
        assert state.state_for(token()).classifier is None

        call_command("retrainrouter", stdout=io.StringIO())

        decision = route_request(submit("Write a function to remove duplicates from a list while keeping the order."))
        assert decision.scores  # scored by the classifier trained after this process cached its state

    def test_an_opened_breaker_is_seen_on_the_next_decision(self, fake_ollama):
        route_request(submit("warm up"))
        OllamaHost.objects.update(breaker_opened_at="2999-01-01T00:00Z", consecutive_failures=9)

        decision = route_request(submit("Write a function to remove duplicates from a list."))

        assert decision.method == "default"  # no host for the embedding, so no fast path

    def test_nothing_is_reread_while_nothing_changed(self, fake_ollama):
        route_request(submit("warm up"))
        cached = state.state_for(token())

        route_request(submit("again"))

        assert state.state_for(token()) is cached
