"""What the console's pages show, for staff."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from budgets.models import UsageEntry
from budgets.usage import record_usage
from conversations.models import Message, Request
from pipeline.services import submit_request
from routing.selectors import default_route
from tests import personas

SEEDED = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def initial_rows(response) -> list[dict]:
    html = response.content.decode()
    start = html.index('<script id="initial-requests" type="application/json">') + len(
        '<script id="initial-requests" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def ask(user, content: str, thread_name: str = "chat") -> Request:
    thread = personas.thread_of(user, thread_name)
    return submit_request(user=user, thread=thread, content=content, enqueue=False).request


@pytest.mark.django_db
class RequestsPageTests:
    def test_it_embeds_the_recent_requests_for_the_live_table(self, staff_client, queued_request):
        response = staff_client.get(reverse("console:requests"))

        (row,) = initial_rows(response)
        assert row["id"] == queued_request.pk
        assert row["user"] == "Alice" and row["username"] == "alice"
        assert row["status"] == "queued" and row["position"] == 1
        assert "host" in row and "prompt_tokens" in row

    def test_filters_apply_on_the_server(self, staff_client):
        alice, bob = personas.discord_user("alice", "1"), personas.discord_user("bob", "2")
        mine = ask(alice, "one", "a")
        ask(bob, "two", "b")
        Request.objects.filter(pk=mine.pk).update(status=Request.Status.DONE)

        by_user = initial_rows(staff_client.get(reverse("console:requests"), {"user": "ALI"}))
        by_status = initial_rows(staff_client.get(reverse("console:requests"), {"status": "active"}))
        by_route = initial_rows(staff_client.get(reverse("console:requests"), {"route": "nope"}))

        assert [row["id"] for row in by_user] == [mine.pk]
        assert [row["user"] for row in by_status] == ["Bob"]
        assert by_route == []

    def test_an_unknown_status_filter_is_ignored(self, staff_client, queued_request):
        response = staff_client.get(reverse("console:requests"), {"status": "<script>"})

        assert response.status_code == 200
        assert len(initial_rows(response)) == 1

    def test_it_links_to_the_admin_and_the_admin_links_back(self, staff_client):
        console = staff_client.get(reverse("console:requests")).content.decode()
        admin = staff_client.get(reverse("admin:index")).content.decode()

        assert f'href="{reverse("admin:index")}"' in console
        assert f'href="{reverse("console:requests")}">Console</a>' in admin

    def test_assets_are_local(self, staff_client):
        html = staff_client.get(reverse("console:requests")).content.decode()

        assert 'src="/static/console/requests.js"' in html
        assert "http://" not in html and "https://" not in html


@SEEDED
class RequestDetailTests:
    def test_it_shows_the_prompt_the_route_decision_the_timeline_usage_and_thinking(self, staff_client):
        alice = personas.discord_user()
        request = ask(alice, "Prove it")
        started = request.queued_at + timedelta(seconds=2)
        Request.objects.filter(pk=request.pk).update(
            status=Request.Status.DONE,
            route=default_route(),
            model="gpt-oss:20b",
            host="http://gpu-1:11434",
            route_method="classifier",
            route_detail="the classifier said: general",
            route_ms=12.5,
            system_prompt="You are Trollama, be kind.",
            thinking="Let me think about <this>.",
            started_at=started,
            first_token_at=started + timedelta(seconds=1),
            finished_at=started + timedelta(seconds=4),
            prompt_tokens=30,
            completion_tokens=12,
        )
        record_usage(
            user=alice,
            kind=UsageEntry.Kind.ROUTER,
            model="gpt-oss:20b",
            prompt_tokens=9,
            completion_tokens=1,
            request=request.pk,
        )

        html = staff_client.get(reverse("console:request", args=[request.pk])).content.decode()

        assert "You are Trollama, be kind." in html
        assert "classifier" in html and "the classifier said: general" in html and "12.5 ms" in html
        assert "http://gpu-1:11434" in html
        assert "Let me think about &lt;this&gt;." in html
        assert "+2.00 s" in html and "+1.00 s" in html and "+3.00 s" in html
        assert "Router classification" in html
        assert "Prove it" in html
        assert "data-cancel" not in html  # finished: nothing to cancel

    def test_it_shows_the_error_and_the_partial_answer_of_a_failed_request(self, staff_client):
        request = ask(personas.discord_user(), "Hello")
        Request.objects.filter(pk=request.pk).update(
            status=Request.Status.FAILED,
            error="The model server is down.",
            partial_content="Hel",
            finished_at=timezone.now(),
        )

        html = staff_client.get(reverse("console:request", args=[request.pk])).content.decode()

        assert "The model server is down." in html
        assert '<pre class="text" data-answer>Hel</pre>' in html

    def test_a_waiting_request_has_a_cancel_form_with_a_csrf_token(self, staff_client, queued_request):
        html = staff_client.get(reverse("console:request-facts", args=[queued_request.pk])).content.decode()

        form = html[html.index("data-cancel") :]
        assert f'action="{reverse("console:request-cancel", args=[queued_request.pk])}"' in html
        assert 'name="csrfmiddlewaretoken"' in form.split("</form>")[0]

    def test_cancel_stops_a_waiting_request_and_returns_to_it(self, staff_client, queued_request):
        response = staff_client.post(reverse("console:request-cancel", args=[queued_request.pk]))

        assert response.status_code == 302
        assert response["Location"] == reverse("console:request", args=[queued_request.pk])
        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.CANCELLED

    def test_cancel_flags_a_running_request_for_its_worker(self, staff_client, queued_request):
        Request.objects.filter(pk=queued_request.pk).update(status=Request.Status.GENERATING)

        staff_client.post(reverse("console:request-cancel", args=[queued_request.pk]))

        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.GENERATING and queued_request.cancel_requested

    def test_cancelling_a_finished_request_changes_nothing(self, staff_client, queued_request):
        Request.objects.filter(pk=queued_request.pk).update(status=Request.Status.DONE)

        response = staff_client.post(reverse("console:request-cancel", args=[queued_request.pk]))

        assert response.status_code == 302
        queued_request.refresh_from_db()
        assert queued_request.status == Request.Status.DONE and not queued_request.cancel_requested


@pytest.mark.django_db
class HealthPageTests:
    def test_it_shows_each_component_and_the_models_ollama_holds(self, staff_client, fake_ollama):
        fake_ollama.begin_use("gpt-oss:20b", keep_alive=300, context_length=8192)
        fake_ollama.end_use("gpt-oss:20b")

        html = staff_client.get(reverse("console:health")).content.decode()

        assert "Database" in html and "Queue and workers" in html and "Channel layer" in html
        assert "no worker is running" in html
        assert fake_ollama.url in html and "Ollama 0.12.0" in html
        assert "gpt-oss:20b" in html and "8,192" in html
        assert 'data-url="/console/health/panel/"' in html

    def test_an_unreachable_ollama_host_says_which_setting_to_change(self, staff_client, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        html = staff_client.get(reverse("console:health-panel")).content.decode()

        assert "Ollama is not reachable at http://127.0.0.1:9; set OLLAMA_HOST in .env." in html
        assert 'data-overall="unhealthy"' in html


@SEEDED
class UsagePageTests:
    def test_it_charts_tokens_by_route_model_and_user_and_lists_top_users(self, staff_client):
        alice, bob = personas.discord_user("alice", "1"), personas.discord_user("bob", "2")
        route = default_route()
        record_usage(
            user=alice, kind="answer", model="gpt-oss:20b", prompt_tokens=100, completion_tokens=50, route=route
        )
        record_usage(user=bob, kind="answer", model="qwen3:8b", prompt_tokens=10, completion_tokens=5)
        old = record_usage(user=bob, kind="answer", model="ancient:1b", prompt_tokens=1000, completion_tokens=0)
        UsageEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

        response = staff_client.get(reverse("console:usage"))

        html = response.content.decode()
        assert html.count('<svg class="chart"') == 4
        assert "Tokens per day by route" in html and "Tokens per day by model" in html
        assert "gpt-oss:20b: 150 tokens" in html and "qwen3:8b: 15 tokens" in html
        assert "ancient:1b" not in html  # older than four weeks
        top = response.context["top_users"]
        assert [(row["user__username"], row["tokens"]) for row in top] == [("alice", 150), ("bob", 15)]

    def test_the_routers_and_summarizers_own_tokens_are_named_by_what_they_were_for(self, staff_client):
        alice = personas.discord_user()
        record_usage(user=alice, kind="router", model="gpt-oss:20b", prompt_tokens=30, completion_tokens=2)
        record_usage(user=alice, kind="embedding", model="all-minilm", prompt_tokens=8, completion_tokens=0)
        record_usage(user=alice, kind="summary", model="gpt-oss:20b", prompt_tokens=90, completion_tokens=10)
        record_usage(user=alice, kind="knowledge", model="all-minilm", prompt_tokens=5, completion_tokens=0)

        html = staff_client.get(reverse("console:usage")).content.decode()

        assert "(none)" not in html
        assert "Router classification: 32 tokens" in html and "Router embedding: 8 tokens" in html
        assert "Summary: 100 tokens" in html and "Server knowledge question: 5 tokens" in html

    def test_it_reports_latency_percentiles_of_finished_requests(self, staff_client):
        alice = personas.discord_user()
        for i, wait in enumerate([1, 2, 3, 4, 100]):
            request = ask(alice, f"q{i}", f"t{i}")
            started = request.queued_at + timedelta(seconds=wait)
            Request.objects.filter(pk=request.pk).update(
                status=Request.Status.DONE,
                started_at=started,
                first_token_at=started + timedelta(seconds=1),
                finished_at=started + timedelta(seconds=2),
            )
        ask(alice, "still waiting", "t-last")

        latencies = {row.name: row for row in staff_client.get(reverse("console:usage")).context["latencies"]}

        assert latencies["Queue wait"].count == 5
        assert latencies["Queue wait"].p50 == pytest.approx(3)
        assert latencies["Queue wait"].p95 == pytest.approx(80.8)
        assert latencies["Time to first token"].p50 == pytest.approx(4)
        assert latencies["Total time"].p50 == pytest.approx(5)

    def test_it_counts_requests_per_hour(self, staff_client):
        alice = personas.discord_user()
        ask(alice, "now", "a")
        ask(alice, "now too", "b")

        chart = staff_client.get(reverse("console:usage")).context["hourly"]

        assert "2 requests</title>" in chart.svg

    def test_an_empty_usage_page_says_so(self, staff_client):
        html = staff_client.get(reverse("console:usage")).content.decode()

        assert "No tokens recorded in the last 28 days." in html
        assert "Nobody has used any tokens" in html


@pytest.mark.django_db
class ConversationsPageTests:
    def test_search_finds_threads_by_title_message_text_and_user(self, staff_client):
        alice, bob = personas.discord_user("alice", "1"), personas.discord_user("bob", "2")
        ask(alice, "how do I bake bread?", "baking")
        ask(bob, "what is a monad?", "haskell-help")

        def found(query: str) -> list[str]:
            page = staff_client.get(reverse("console:conversations"), {"q": query}).context["page"]
            return [thread.title for thread in page.object_list]

        assert found("BAKING") == ["baking"]
        assert found("monad") == ["haskell-help"]
        assert found("bob") == ["haskell-help"]
        assert sorted(found("")) == ["baking", "haskell-help"]
        assert found("nothing like this") == []

    def test_a_thread_shows_its_messages_in_order_with_links_to_requests(self, staff_client):
        alice = personas.discord_user()
        request = ask(alice, "first <question>")
        Message.objects.create(
            thread=request.thread, role=Message.Role.ASSISTANT, content="an answer", model="gpt-oss:20b"
        )

        html = staff_client.get(reverse("console:conversation", args=[request.thread_id])).content.decode()

        assert html.index("first &lt;question&gt;") < html.index("an answer")
        assert reverse("console:request", args=[request.pk]) in html

    def test_a_search_with_no_match_says_what_to_try(self, staff_client):
        html = staff_client.get(reverse("console:conversations"), {"q": "zzz"}).content.decode()

        assert "No conversation matches “zzz”" in html


@pytest.mark.django_db
class LoginTests:
    def test_the_login_page_is_ours_and_has_a_csrf_token(self):
        html = Client().get(reverse("console:login")).content.decode()

        assert "Sign in to the console" in html and 'name="csrfmiddlewaretoken"' in html

    def test_staff_sign_in_and_land_where_they_were_going(self):
        personas.staff_admin()

        response = Client().post(
            reverse("console:login"), {"username": "ada", "password": "correct horse", "next": "/console/usage/"}
        )

        assert response.status_code == 302 and response["Location"] == "/console/usage/"

    def test_a_wrong_password_says_so(self):
        personas.staff_admin()

        response = Client().post(reverse("console:login"), {"username": "ada", "password": "wrong"})

        assert response.status_code == 200
        assert "do not match a staff account" in response.content.decode()

    def test_logout_is_a_post_and_signs_out(self, staff_client):
        assert staff_client.get(reverse("console:logout")).status_code == 405

        response = staff_client.post(reverse("console:logout"))

        assert response.status_code == 302
        assert staff_client.get(reverse("console:requests")).status_code == 302
