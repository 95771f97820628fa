"""Settings for the test suite: the real settings, namespaced and made quick.

Whatever DATABASE_URL / REDIS_URL say still decides the configuration under
test, so the same suite runs on the embedded default and on PostgreSQL + Redis.
"""

import uuid

from trollama.settings import *  # noqa: F403
from trollama.settings import CHANNEL_LAYERS, Q_CLUSTER, REDIS_URL

# A namespace of our own, so a run never sees queue entries or channel-layer
# messages of another run (or of an e2e test's processes) on a shared Redis.
INSTANCE_NAME = f"test-{uuid.uuid4().hex[:8]}"
Q_CLUSTER = {**Q_CLUSTER, "name": INSTANCE_NAME}
if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = INSTANCE_NAME  # type: ignore[index]  # settings dicts are loosely typed

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; never in production
RETRY_BACKOFF = 0.05
# Most tests script exactly one answer per request; routing tests switch the classifier on.
ROUTER_CLASSIFIER = False
# Likewise the embedding fast path (it would add an embedding call per message); routing tests switch it on.
ROUTER_FAST_PATH = False
