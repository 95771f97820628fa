"""Settings for the test suite: the real settings, namespaced and made quick.

Whatever DATABASE_URL / REDIS_URL say still decides the configuration under
test, so the same suite runs on the embedded default and on PostgreSQL + Redis.
"""

import os
import uuid
from urllib.parse import urlsplit

from trollama.settings import *  # noqa: F403
from trollama.settings import CACHES, CHANNEL_LAYERS, Q_CLUSTER, REDIS_URL

# A namespace of our own, so a run never sees queue entries, channel-layer
# messages or cache keys of another run (or of an e2e test's processes) on a shared Redis.
INSTANCE_NAME = f"test-{uuid.uuid4().hex[:8]}"
Q_CLUSTER = {**Q_CLUSTER, "name": INSTANCE_NAME}


def per_worker_redis_url(url: str, worker: str) -> str:
    """Each pytest-xdist worker (gw0, gw1, …) on a Redis database of its own, after the one the URL names.

    Clearing Django's Redis cache flushes its whole database, so a test on one
    worker would otherwise empty the other workers' queues and channel layers.
    """
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return parts._replace(path=f"/{(base + 1 + int(worker.removeprefix('gw'))) % 16}").geturl()


if REDIS_URL:
    if worker := os.environ.get("PYTEST_XDIST_WORKER", ""):
        REDIS_URL = per_worker_redis_url(REDIS_URL, worker)
        CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"] = REDIS_URL  # type: ignore[index]
        CACHES["default"]["LOCATION"] = REDIS_URL
        Q_CLUSTER["redis"] = REDIS_URL
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = INSTANCE_NAME  # type: ignore[index]  # settings dicts are loosely typed
    CACHES["default"]["KEY_PREFIX"] = INSTANCE_NAME

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; never in production
RETRY_BACKOFF = 0.05
# Most tests script exactly one answer per request; routing tests switch the classifier on.
ROUTER_CLASSIFIER = False
# Likewise the embedding fast path (it would add an embedding call per message); routing tests switch it on.
ROUTER_FAST_PATH = False
