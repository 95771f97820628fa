"""Reading what was handed to the django-q2 broker, on either broker."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import cache
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from django_q.status import Stat, Status


def enqueued_request_ids() -> list[int]:
    """Request ids of the run_request tasks waiting in the broker, in the order workers take them."""
    if settings.REDIS_URL:
        broker = get_broker()
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        from django_q.models import OrmQ

        payloads = [row.payload for row in OrmQ.objects.order_by("id")]
    tasks = [SignedPackage.loads(payload) for payload in payloads]
    return [task["args"][0] for task in tasks if task["func"] == "pipeline.tasks.run_request"]


@pytest.fixture
def empty_queue(transactional_db: None) -> None:
    """Start from an empty broker: a shared Redis keeps earlier tests' tasks."""
    get_broker().purge_queue()


def pretend_a_worker_cluster_reported() -> None:
    """Save a cluster statistic (two workers) the way a running qcluster's sentinel does."""
    status = Status(pid=1, cluster_id="test-cluster")
    status.workers = [11, 12]
    get_broker().set_stat(Stat.get_key(status.cluster_id), SignedPackage.dumps(status, True), 3)


@pytest.fixture
def no_cluster_statistics(db: None) -> object:
    """Cluster statistics live in the cache, which outlives a test's database."""
    cache.clear()
    yield
    cache.clear()
