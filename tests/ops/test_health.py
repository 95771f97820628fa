"""GET /health reports the real components and says 503 when one is down."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.test import AsyncClient, Client
from django.utils import timezone

from bots.models import BotHeartbeat
from bots.services import beat
from ops.health import check_bot, forget_cached_health
from ops.maintenance import set_maintenance
from routing.models import OllamaHost
from tests import personas
from tests.ops.queue_helpers import pretend_a_worker_cluster_reported

METRICS_TOKEN = "health-metrics-token"
DETAILS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture(autouse=True)
def _no_cluster_statistics():
    """Cluster statistics live in the cache, which outlives a test's database."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_health(settings):
    """Each test checks afresh (no report cached by another), with a metrics token that sees the details."""
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.HEALTH_CACHE_SECONDS = 0
    forget_cached_health()
    yield
    forget_cached_health()


def ollama_calls(fake) -> list[str]:
    return [request.path for request in fake.requests if request.path in ("/api/ps", "/api/version")]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class HealthTests:
    async def test_it_reports_every_component_and_is_healthy_when_all_are_up(self, fake_ollama):
        await sync_to_async(pretend_a_worker_cluster_reported)()

        response = await AsyncClient().get("/health", headers=DETAILS)

        report = response.json()
        assert response.status_code == 200, report
        assert report["status"] == "ok"
        checks = report["checks"]
        assert checks["database"]["ok"]
        assert checks["broker"]["workers"] == 2 and checks["broker"]["queue_depth"] == 0
        assert checks["channel_layer"]["ok"]
        assert checks["ollama"]["hosts"] == [
            {
                "url": fake_ollama.url,
                "ok": True,
                "version": "0.12.0",
                "latency_ms": checks["ollama"]["hosts"][0]["latency_ms"],
                "loaded_models": [],
            }
        ]

    async def test_it_lists_the_models_an_ollama_host_holds_in_memory_with_their_vram(self, fake_ollama):
        fake_ollama.begin_use("gpt-oss:20b", keep_alive=300, context_length=8192)
        fake_ollama.end_use("gpt-oss:20b")

        response = await AsyncClient().get("/health", headers=DETAILS)

        (host,) = response.json()["checks"]["ollama"]["hosts"]
        (loaded,) = host["loaded_models"]
        spec = fake_ollama.find_model("gpt-oss:20b")
        assert loaded["name"] == "gpt-oss:20b"
        assert loaded["size_vram"] == spec.size and loaded["context_length"] == 8192
        assert loaded["expires_at"]

    async def test_it_is_503_when_ollama_is_unreachable(self, fake_ollama, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        response = await AsyncClient().get("/health", headers=DETAILS)

        assert response.status_code == 503
        host = response.json()["checks"]["ollama"]["hosts"][0]
        assert host["ok"] is False and host["error"]

    async def test_an_unreachable_ollama_host_is_explained_in_words_to_everyone(self, fake_ollama, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"
        await sync_to_async(pretend_a_worker_cluster_reported)()

        details = (await AsyncClient().get("/health", headers=DETAILS)).json()
        public = (await AsyncClient().get("/health")).json()

        words = "Ollama is not reachable at http://127.0.0.1:9; set OLLAMA_HOST in .env"
        assert details["checks"]["ollama"]["hosts"][0]["message"] == words
        assert details["problems"] == [words]
        assert public["problems"] == [
            "Ollama is not reachable; set OLLAMA_HOST in .env, or check the hosts in the admin"
        ]

    async def test_a_host_listed_in_the_admin_points_to_the_admin(self, fake_ollama):
        await OllamaHost.objects.acreate(name="second-gpu", url="http://127.0.0.1:9")
        await sync_to_async(pretend_a_worker_cluster_reported)()

        details = (await AsyncClient().get("/health", headers=DETAILS)).json()

        assert details["status"] == "degraded" and details["problems"] == [
            "Ollama is not reachable at http://127.0.0.1:9; check its URL in the admin (Routing → Ollama hosts)"
        ]

    async def test_a_failing_host_is_logged_once_not_at_every_probe(self, fake_ollama, settings, caplog):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        for _ in range(3):
            assert (await AsyncClient().get("/health")).status_code == 503

        warnings = [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
        assert [r.getMessage() for r in warnings] == [
            "Ollama is not reachable at http://127.0.0.1:9; set OLLAMA_HOST in .env (All connection attempts failed)"
        ]

    async def test_it_checks_every_enabled_host_and_is_healthy_while_one_answers(self, fake_ollama):
        await OllamaHost.objects.acreate(name="second-gpu", url="http://127.0.0.1:9")
        await OllamaHost.objects.acreate(name="retired", url="http://127.0.0.1:10", enabled=False)

        response = await AsyncClient().get("/health", headers=DETAILS)

        hosts = response.json()["checks"]["ollama"]["hosts"]
        assert [(host["url"], host["ok"]) for host in hosts] == [(fake_ollama.url, True), ("http://127.0.0.1:9", False)]
        assert response.json()["checks"]["ollama"]["ok"] is True

    async def test_it_is_503_when_no_worker_is_running(self, fake_ollama):
        response = await AsyncClient().get("/health", headers=DETAILS)

        assert response.status_code == 503
        broker = response.json()["checks"]["broker"]
        assert broker["workers"] == 0
        assert "qcluster" in broker["error"]

    async def test_one_of_several_hosts_down_is_degraded_not_unhealthy(self, fake_ollama):
        await sync_to_async(pretend_a_worker_cluster_reported)()
        await OllamaHost.objects.acreate(name="second-gpu", url="http://127.0.0.1:9")

        response = await AsyncClient().get("/health")

        assert response.status_code == 200
        assert response.json()["status"] == "degraded"

    async def test_it_reports_the_workers_of_each_cluster(self, fake_ollama):
        await sync_to_async(pretend_a_worker_cluster_reported)()

        response = await AsyncClient().get("/health", headers=DETAILS)

        (cluster,) = response.json()["checks"]["broker"]["cluster_workers"]
        assert cluster["cluster"] == "test-cluster" and cluster["workers"] == 2 and cluster["host"]

    async def test_it_only_answers_get(self):
        response = await AsyncClient().post("/health")

        assert response.status_code == 405


@pytest.mark.django_db
class BotHealthTests:
    def test_a_bot_that_never_ran_is_reported_with_the_reason(self, settings):
        settings.DISCORD_TOKEN = ""
        check = check_bot()
        assert check["ok"] is False and check["critical"] is False
        assert "DISCORD_TOKEN is not set" in check["error"]

    def test_a_fresh_heartbeat_of_a_connected_bot_is_healthy(self):
        beat(name="trollama#0001", connected=True, latency_ms=42.0, guilds=3, events_connected=True)
        check = check_bot()
        assert check["ok"] is True
        assert check["guilds"] == 3 and check["latency_ms"] == 42.0 and check["heartbeat_age_s"] < 5

    def test_a_stale_heartbeat_means_the_bot_is_gone(self, settings):
        beat(name="trollama#0001", connected=True, latency_ms=42.0, guilds=3, events_connected=True)
        BotHeartbeat.objects.update(beat_at=timezone.now() - timedelta(seconds=settings.BOT_HEARTBEAT_INTERVAL * 4))
        check = check_bot()
        assert check["ok"] is False
        assert "is `manage.py runbot` running?" in check["error"]

    def test_a_bot_that_lost_discord_says_so(self):
        beat(name="trollama#0001", connected=False, latency_ms=None, guilds=0, events_connected=True)
        check = check_bot()
        assert check["ok"] is False and "not connected to Discord" in check["error"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class PublicHealthTests:
    async def test_anyone_gets_the_status_and_maintenance_mode_only(self, fake_ollama):
        await sync_to_async(pretend_a_worker_cluster_reported)()

        response = await AsyncClient().get("/health")

        assert response.status_code == 200
        report = response.json()
        assert set(report) == {"status", "maintenance", "checked_at", "problems"}
        assert report["status"] == "ok" and report["maintenance"] == "off" and report["problems"] == []
        assert fake_ollama.url not in response.content.decode()

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
    async def test_an_unhealthy_system_says_so_with_503_and_no_details(self, fake_ollama, settings, headers):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        response = await AsyncClient().get("/health", headers=headers)

        assert response.status_code == 503
        assert set(response.json()) == {"status", "maintenance", "checked_at", "problems"}
        assert response.json()["status"] == "unhealthy"
        assert "127.0.0.1:9" not in response.content.decode()

    def test_a_staff_session_gets_the_details(self, fake_ollama):
        client = Client()
        client.force_login(personas.staff_admin())

        report = client.get("/health").json()

        assert report["checks"]["ollama"]["hosts"][0]["url"] == fake_ollama.url
        assert report["maintenance"]["mode"] == "off"

    def test_a_signed_in_non_staff_user_gets_the_public_status(self, fake_ollama):
        client = Client()
        client.force_login(personas.outsider())

        assert "checks" not in client.get("/health").json()

    def test_it_includes_the_maintenance_mode(self, fake_ollama):
        set_maintenance(mode="soft", message="Swapping the GPU.", changed_by="ops")

        public = Client().get("/health").json()
        details = Client().get("/health", headers=DETAILS).json()

        assert public["maintenance"] == "soft"
        assert details["maintenance"]["mode"] == "soft" and details["maintenance"]["message"] == "Swapping the GPU."


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class HealthCacheTests:
    async def test_each_hit_asks_each_host_one_question(self, fake_ollama):
        for _ in range(3):
            assert (await AsyncClient().get("/health", headers=DETAILS)).json()["checks"]["ollama"]["hosts"][0]["ok"]

        # /api/ps at every hit; the version once, then from memory.
        assert ollama_calls(fake_ollama) == ["/api/ps", "/api/version", "/api/ps", "/api/ps"]

    async def test_a_flood_of_hits_reaches_ollama_once_per_cache_period(self, fake_ollama, settings):
        settings.HEALTH_CACHE_SECONDS = 60

        responses = await asyncio.gather(*(AsyncClient().get("/health") for _ in range(20)))
        responses += [await AsyncClient().get("/health", headers=DETAILS) for _ in range(5)]

        assert {response.json()["checked_at"] for response in responses} == {responses[0].json()["checked_at"]}
        assert ollama_calls(fake_ollama) == ["/api/ps", "/api/version"]


@pytest.mark.django_db
class ChannelLayerCheckTests:
    async def test_it_answers_while_a_listener_waits_on_the_layer(self):
        """An idle websocket consumer is always receiving; with channels-redis that must not starve the check."""
        from channels.layers import get_channel_layer

        from ops.health import check_channel_layer

        layer = get_channel_layer()
        listener_channel = await layer.new_channel()
        idle = asyncio.ensure_future(layer.receive(listener_channel))  # as a connected console or bot does
        await asyncio.sleep(0.2)  # it is now waiting inside the layer
        try:
            checks = [await check_channel_layer() for _ in range(3)]
        finally:
            await layer.send(listener_channel, {"type": "done"})
            await asyncio.wait_for(idle, timeout=10)

        assert [check["ok"] for check in checks] == [True, True, True], checks
