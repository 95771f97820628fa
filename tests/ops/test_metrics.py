"""GET /metrics: who may read it, and what it says about the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from bots.services import beat
from budgets.usage import record_usage
from conversations.models import Request
from ops.maintenance import set_maintenance
from ops.metrics import histogram_buckets
from pipeline.processing import process_request
from pipeline.services import close_thread, submit_request
from routing.models import OllamaHost, Route
from tests import personas
from tests.ops.queue_helpers import no_cluster_statistics, pretend_a_worker_cluster_reported

TOKEN = "metrics-token-for-tests-0123456789"


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def make_request(content: str, **fields) -> Request:
    user = personas.discord_user()
    thread = personas.thread_of(user, f"thread-{content}")
    request = submit_request(user=user, thread=thread, content=content, enqueue=False).request
    Request.objects.filter(pk=request.pk).update(**fields)
    return request


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MetricsAccessTests:
    def test_anonymous_gets_401_with_a_challenge(self, client):
        response = client.get("/metrics")

        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_a_wrong_token_gets_403(self, client, settings):
        settings.METRICS_TOKEN = TOKEN

        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403

    def test_no_token_is_accepted_when_none_is_configured(self, client, settings):
        settings.METRICS_TOKEN = ""

        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 403

    def test_the_token_opens_it(self, client, settings):
        settings.METRICS_TOKEN = TOKEN

        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        assert b"trollama_queue_depth" in response.content

    def test_a_staff_session_opens_it(self, client):
        client.force_login(personas.staff_admin())

        assert client.get("/metrics").status_code == 200

    def test_signed_in_non_staff_get_403(self, client):
        client.force_login(personas.outsider())

        assert client.get("/metrics").status_code == 403

    def test_other_authorization_schemes_are_asked_for_the_token_not_crashed_on(self, client, settings):
        settings.METRICS_TOKEN = TOKEN

        for header in ("Basic YWRhOnB3", "Bearer", "garbage", "Bearer \u00e9\u00e9"):
            assert client.get("/metrics", headers={"Authorization": header}).status_code in (401, 403), header

    def test_only_get_is_allowed(self, client, settings):
        settings.METRICS_TOKEN = TOKEN

        assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MetricsContentTests:
    @pytest.fixture
    def scrape(self, client, settings):
        settings.METRICS_TOKEN = TOKEN
        settings.OLLAMA_HOST = "http://gpu-box:11434"

        def get() -> dict:
            response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200
            return samples(response.content)

        return get

    def test_requests_by_route_and_status_and_the_queue_depth(self, scrape):
        general = Route.objects.get(slug="general")
        now = timezone.now()
        make_request("a")
        make_request("b", status=Request.Status.GENERATING, route=general)
        make_request("c", status=Request.Status.DONE, route=general, finished_at=now)
        make_request("d", status=Request.Status.HELD)

        metrics = scrape()

        assert metrics[("trollama_requests", (("route", ""), ("status", "queued")))] == 1
        assert metrics[("trollama_requests", (("route", "general"), ("status", "generating")))] == 1
        assert metrics[("trollama_requests", (("route", "general"), ("status", "done")))] == 1
        assert metrics[("trollama_queue_depth", (("state", "queued"),))] == 1
        assert metrics[("trollama_queue_depth", (("state", "held"),))] == 1
        assert metrics[("trollama_queue_depth", (("state", "running"),))] == 1

    def test_timings_are_histograms_over_the_recent_window(self, scrape):
        now = timezone.now()
        queued = now - timedelta(seconds=10)
        make_request(
            "fast",
            status=Request.Status.DONE,
            queued_at=queued,
            started_at=queued + timedelta(seconds=0.2),
            first_token_at=queued + timedelta(seconds=1.7),
            finished_at=queued + timedelta(seconds=4),
        )
        old = now - timedelta(days=2)
        make_request("old", status=Request.Status.DONE, queued_at=old, started_at=old, finished_at=old)

        metrics = scrape()

        wait = "trollama_request_queue_wait_seconds"
        assert metrics[(f"{wait}_count", ())] == 1
        assert metrics[(f"{wait}_bucket", (("le", "0.25"),))] == 1
        assert metrics[(f"{wait}_bucket", (("le", "0.1"),))] == 0
        assert metrics[(f"{wait}_sum", ())] == pytest.approx(0.2)
        ttft = "trollama_request_time_to_first_token_seconds"
        assert metrics[(f"{ttft}_bucket", (("le", "1.0"),))] == 0
        assert metrics[(f"{ttft}_bucket", (("le", "2.5"),))] == 1
        assert metrics[("trollama_request_total_seconds_sum", ())] == pytest.approx(4)

    def test_tokens_by_route_model_and_use_as_they_are_used(self, scrape):
        general = Route.objects.get(slug="general")
        user = personas.discord_user()
        for prompt in (100, 50):
            record_usage(
                user=user, kind="answer", model="gpt-oss:20b", prompt_tokens=prompt, completion_tokens=7, route=general
            )
        record_usage(user=user, kind="router", model="gpt-oss:20b", prompt_tokens=30, completion_tokens=1)

        metrics = scrape()

        labels = (("kind", "prompt"), ("model", "gpt-oss:20b"), ("route", "general"), ("use", "answer"))
        assert metrics[("trollama_tokens_total", labels)] == 150
        assert metrics[("trollama_tokens_total", (("kind", "completion"), *labels[1:]))] == 14
        router = (("kind", "prompt"), ("model", "gpt-oss:20b"), ("route", ""), ("use", "router"))
        assert metrics[("trollama_tokens_total", router)] == 30

    def test_tokens_never_go_down_when_a_conversation_is_closed(self, scrape, fake_ollama):
        fake_ollama.script("An answer.", prompt_tokens=120, completion_tokens=30)
        user = personas.discord_user()
        thread = personas.thread_of(user, "to-close")
        request = submit_request(user=user, thread=thread, content="hello", enqueue=False).request
        process_request(request_id=request.pk)
        labels = (("kind", "prompt"), ("model", "gpt-oss:20b"), ("route", "general"), ("use", "answer"))
        before = scrape()[("trollama_tokens_total", labels)]

        close_thread(thread=thread, by="console:ada")
        after = scrape()

        assert before == 120
        assert not Request.objects.filter(pk=request.pk).exists()
        assert after[("trollama_tokens_total", labels)] == 120

    def test_every_enabled_route_has_token_samples_from_the_start(self, scrape):
        metrics = scrape()

        for route, model in Route.objects.filter(enabled=True).values_list("slug", "model"):
            for kind in ("prompt", "completion"):
                labels = (("kind", kind), ("model", model), ("route", route), ("use", "answer"))
                assert metrics[("trollama_tokens_total", labels)] == 0, (route, kind)

    def test_ollama_errors_have_samples_for_every_host_from_the_start(self, scrape):
        OllamaHost.objects.create(name="second-gpu", url="http://second:11434")

        metrics = scrape()

        for host in ("http://gpu-box:11434", "http://second:11434"):
            for kind in ("failed_request", "retried_attempt"):
                assert metrics[("trollama_ollama_errors_total", (("host", host), ("kind", kind)))] == 0

    @pytest.mark.usefixtures(no_cluster_statistics.__name__)
    def test_live_workers_per_cluster(self, scrape):
        assert scrape()[("trollama_worker_clusters", ())] == 0

        pretend_a_worker_cluster_reported()
        metrics = scrape()

        assert metrics[("trollama_worker_clusters", ())] == 1
        ((labels, value),) = [(k[1], v) for k, v in metrics.items() if k[0] == "trollama_workers_alive"]
        assert dict(labels)["cluster"] == "test-cluster" and dict(labels)["host"]
        assert value == 2

    def test_ollama_errors_are_counted_as_they_happen_and_never_go_down(self, scrape, fake_ollama, settings):
        settings.MAX_ATTEMPTS = 2
        user = personas.discord_user()
        thread = personas.thread_of(user, "errors")
        fake_ollama.script("Fine the second time.", match="^retried$")
        fake_ollama.script(error=(500, "oom"), match="^retried$", times=1)
        fake_ollama.script(error=(500, "oom"), match="^broken$")
        for text in ("retried", "broken"):
            request = submit_request(user=user, thread=thread, content=text, enqueue=False).request
            process_request(request_id=request.pk)
        host = Request.objects.get(message__content="broken").host
        errors = "trollama_ollama_errors_total"
        failed, retried = (
            (errors, (("host", host), ("kind", "failed_request"))),
            (
                errors,
                (("host", host), ("kind", "retried_attempt")),
            ),
        )
        before = scrape()

        close_thread(thread=thread, by="console:ada")  # deletes both requests
        after = scrape()

        assert (before[failed], before[retried]) == (1, 2)  # one retry each; the second one then failed
        assert (after[failed], after[retried]) == (1, 2)

    def test_the_bot_connection_and_maintenance(self, scrape):
        assert scrape()[("trollama_bot_up", ())] == 0

        beat(name="trollama#1", connected=True, latency_ms=42.0, guilds=2, events_connected=True)
        set_maintenance(mode="soft", changed_by="ada")
        metrics = scrape()

        assert metrics[("trollama_bot_up", ())] == 1
        assert metrics[("trollama_bot_gateway_latency_seconds", ())] == pytest.approx(0.042)
        assert metrics[("trollama_maintenance", (("mode", "soft"),))] == 1
        assert metrics[("trollama_maintenance", (("mode", "off"),))] == 0


class HistogramBucketsTests:
    def test_buckets_are_cumulative_with_an_infinite_top(self):
        buckets, total = histogram_buckets([0.05, 0.3, 5000], bounds=(0.1, 1.0))

        assert buckets == [("0.1", 1.0), ("1.0", 2.0), ("+Inf", 3.0)]
        assert total == pytest.approx(5000.35)

    def test_a_value_on_a_bound_counts_in_that_bucket(self):
        assert histogram_buckets([1.0], bounds=(1.0,))[0] == [("1.0", 1.0), ("+Inf", 1.0)]
