"""GET /health reports the real components and says 503 when one is down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import AsyncClient
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from bots.models import BotHeartbeat
from bots.services import beat
from routing.models import OllamaHost
from trollama.health import check_bot


def pretend_a_worker_cluster_reported() -> None:
    """Save a cluster statistic the way a running qcluster's sentinel does."""
    status = Status(pid=1, cluster_id="test-cluster")
    status.workers = [11, 12]
    get_broker().set_stat(Stat.get_key(status.cluster_id), SignedPackage.dumps(status, True), 3)


@pytest.fixture(autouse=True)
def no_cluster_statistics():
    """Cluster statistics live in the cache, which outlives a test's database."""
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class HealthTests:
    async def test_it_reports_every_component_and_is_healthy_when_all_are_up(self, fake_ollama):
        from asgiref.sync import sync_to_async

        await sync_to_async(pretend_a_worker_cluster_reported)()

        response = await AsyncClient().get("/health")

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

        response = await AsyncClient().get("/health")

        (host,) = response.json()["checks"]["ollama"]["hosts"]
        (loaded,) = host["loaded_models"]
        spec = fake_ollama.find_model("gpt-oss:20b")
        assert loaded["name"] == "gpt-oss:20b"
        assert loaded["size_vram"] == spec.size and loaded["context_length"] == 8192
        assert loaded["expires_at"]

    async def test_it_is_503_when_ollama_is_unreachable(self, fake_ollama, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        response = await AsyncClient().get("/health")

        assert response.status_code == 503
        host = response.json()["checks"]["ollama"]["hosts"][0]
        assert host["ok"] is False and host["error"]

    async def test_it_checks_every_enabled_host_and_is_healthy_while_one_answers(self, fake_ollama):
        await OllamaHost.objects.acreate(name="second-gpu", url="http://127.0.0.1:9")
        await OllamaHost.objects.acreate(name="retired", url="http://127.0.0.1:10", enabled=False)

        response = await AsyncClient().get("/health")

        hosts = response.json()["checks"]["ollama"]["hosts"]
        assert [(host["url"], host["ok"]) for host in hosts] == [(fake_ollama.url, True), ("http://127.0.0.1:9", False)]
        assert response.json()["checks"]["ollama"]["ok"] is True

    async def test_it_is_503_when_no_worker_is_running(self, fake_ollama):
        response = await AsyncClient().get("/health")

        assert response.status_code == 503
        broker = response.json()["checks"]["broker"]
        assert broker["workers"] == 0
        assert "qcluster" in broker["error"]

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
