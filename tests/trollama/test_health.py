"""GET /health reports the real components and says 503 when one is down."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import AsyncClient
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from django_q.status import Stat, Status


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
            }
        ]

    async def test_it_is_503_when_ollama_is_unreachable(self, fake_ollama, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"

        response = await AsyncClient().get("/health")

        assert response.status_code == 503
        host = response.json()["checks"]["ollama"]["hosts"][0]
        assert host["ok"] is False and host["error"]

    async def test_it_is_503_when_no_worker_is_running(self, fake_ollama):
        response = await AsyncClient().get("/health")

        assert response.status_code == 503
        broker = response.json()["checks"]["broker"]
        assert broker["workers"] == 0
        assert "qcluster" in broker["error"]

    async def test_it_only_answers_get(self):
        response = await AsyncClient().post("/health")

        assert response.status_code == 405
