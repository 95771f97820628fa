"""Trollama's settings: the only module that reads the environment.

Two configurations share one code path:

* the embedded default, with no environment at all: SQLite in WAL mode, the
  django-q2 ORM broker, and an in-memory channel layer inside the web process,
  which relays events for the other processes (see ``trollama.events``);
* production, with ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` set: the
  django-q2 Redis broker and channels-redis.

Every variable is listed with its default in ``.env.example``. A bad value
stops start-up with ``ImproperlyConfigured`` naming the variable, so a typo
never turns into a half-working deployment.
"""

from __future__ import annotations

import secrets
import zoneinfo
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
T = TypeVar("T")


def _read(name: str, cast: Callable[[str], T], default: T) -> T:
    """Read one variable, turning any parse error into a message naming it."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        return cast(raw.strip())
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name} has an invalid value {raw!r}: {exc}") from None


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def cast(raw: str) -> int:
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ValueError(f"expected a whole number {bound}")
        return value

    return cast


def _float(minimum: float) -> Callable[[str], float]:
    def cast(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not value >= minimum:  # also rejects NaN
            raise ValueError(f"expected a number of at least {minimum}")
        return value

    return cast


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _http_url(raw: str) -> str:
    """An http(s) base URL with a host, normalised without a trailing slash."""
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"}:
        raise ValueError("expected an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a non-numeric port
    except ValueError:
        raise ValueError("the port is not a number") from None
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return raw.rstrip("/")


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a non-numeric port
    except ValueError:
        raise ValueError("the port is not a number") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("the URL has no host")
    return raw


def _slug(raw: str) -> str:
    if not raw.replace("-", "").isalnum() or not raw.isascii():
        raise ValueError("use letters, digits and dashes only")
    return raw


def _csv(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _int_list(raw: str) -> list[int]:
    try:
        return [int(item) for item in _csv(raw)]
    except ValueError:
        raise ValueError("expected comma-separated numeric ids") from None


def _timezone(raw: str) -> str:
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone") from None
    return raw


def _choice(*allowed: str) -> Callable[[str], str]:
    def cast(raw: str) -> str:
        if raw.lower() not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw.lower()

    return cast


def _database(raw: str) -> dict[str, Any]:
    scheme = urlsplit(raw).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ValueError("expected a sqlite:// or postgres:// URL")
    try:
        config: dict[str, Any] = env.db_url_config(raw)
    except Exception as exc:  # django-environ raises assorted errors for odd URLs
        raise ValueError(str(exc) or "malformed URL") from None
    if scheme != "sqlite" and not config.get("NAME"):
        raise ValueError("the URL names no database")
    return config


def _persistent_secret(path: Path) -> str:
    """A random secret kept in the data directory, shared by every local process.

    The embedded default needs a SECRET_KEY and an internal token that web,
    workers, bot and terminal agree on without the operator inventing them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(48)
        path.write_text(value + "\n")
        path.chmod(0o600)
        return value


# -- Core -------------------------------------------------------------------

DATA_DIR = Path(_read("DATA_DIR", str, str(BASE_DIR / "var"))).resolve()
# "production" means web is reachable by others, behind a TLS proxy: secrets
# must be given, cookies are secure and HSTS is on. "development" (the
# default) is the embedded, local configuration with generated secrets.
DJANGO_ENV = _read("DJANGO_ENV", _choice("development", "production"), "development")
IS_PRODUCTION = DJANGO_ENV == "production"
DEBUG = _read("DEBUG", _bool, False)
if IS_PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be false when DJANGO_ENV is production.")
SECRET_KEY = _read("SECRET_KEY", str, "")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DJANGO_ENV is production: set it to a long random value, e.g. the output "
            'of `python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
        )
    SECRET_KEY = _persistent_secret(DATA_DIR / "secret_key")
INTERNAL_TOKEN = _read("INTERNAL_TOKEN", str, "") or _persistent_secret(DATA_DIR / "internal_token")
# Namespaces the queue, channel layer and cache, so several instances (or a
# test run) can share one Redis without seeing each other's traffic.
INSTANCE_NAME = _read("INSTANCE_NAME", _slug, "trollama")
ALLOWED_HOSTS = _read("ALLOWED_HOSTS", _csv, ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = _read("CSRF_TRUSTED_ORIGINS", _csv, [])
TIME_ZONE = _read("TIME_ZONE", _timezone, "UTC")

# -- Behind a TLS proxy (production) ------------------------------------------

# Trust the proxy's X-Forwarded-Proto header to tell HTTPS from HTTP. Only safe
# when web is reachable through the proxy alone (it strips the client's own).
BEHIND_TLS_PROXY = _read("BEHIND_TLS_PROXY", _bool, IS_PRODUCTION)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = IS_PRODUCTION
SECURE_SSL_REDIRECT = IS_PRODUCTION
# The other processes talk to web over plain HTTP on loopback (WEB_URL): the
# event relay, health and metrics must answer there rather than redirect.
SECURE_REDIRECT_EXEMPT = [r"^internal/", r"^health$", r"^metrics$"]
SECURE_HSTS_SECONDS = _read("SECURE_HSTS_SECONDS", _int(0), 31_536_000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _read("SECURE_HSTS_INCLUDE_SUBDOMAINS", _bool, False)
SECURE_HSTS_PRELOAD = _read("SECURE_HSTS_PRELOAD", _bool, False)
# Both bind more than this site (every subdomain; the browsers' preload list),
# so they are the operator's choice, not a default that check --deploy forces.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "conversations",
    # Before django_q: its `qcluster` command replaces django-q2's (pipeline.cluster).
    "pipeline",
    "django_q",
    "axes",
    "csp",
    "trollama",
    "routing",
    "budgets",
    "artifacts",
    "knowledge",
    "ops",
    "bots",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "trollama.urls"
# The websocket routes, read by trollama.asgi as Django reads ROOT_URLCONF: by name, so the ground floor imports no app.
WEBSOCKET_URLCONF = "ops.routing"
ASGI_APPLICATION = "trollama.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing one
MEDIA_ROOT = Path(_read("MEDIA_ROOT", str, str(DATA_DIR / "media")))
# Serve straight from the apps' static folders when collectstatic has not run,
# so the embedded default needs no build step.
WHITENOISE_USE_FINDERS = True
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Content-Security-Policy (django-csp) on every response: the console and the
# admin load scripts, styles and images from this server only, with no inline
# script or style (none is needed: templates keep theirs in static files).
# connect-src 'self' covers the console's websocket on the same host and port.
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# -- Database ---------------------------------------------------------------

DATABASE: dict[str, Any] = _read("DATABASE_URL", _database, {})
if not DATABASE or DATABASE["ENGINE"] == "django.db.backends.sqlite3":
    sqlite_name = DATABASE.get("NAME") or str(DATA_DIR / "trollama.sqlite3")
    DATABASE = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": sqlite_name,
        "OPTIONS": {
            # WAL lets the web process read while a worker writes; IMMEDIATE
            # takes the write lock up front so concurrent writers queue on the
            # busy timeout instead of failing with "database is locked".
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # A file, not memory: tests run workers in threads and subprocesses.
        "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
    }
else:
    DATABASE.setdefault("CONN_MAX_AGE", 0)
    DATABASE["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": DATABASE}
USES_SQLITE = DATABASE["ENGINE"] == "django.db.backends.sqlite3"

# -- Redis: broker, channel layer and cache ---------------------------------

REDIS_URL = _read("REDIS_URL", _redis_url, "")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's default 5 s read timeout kills idle receive()
                # calls (channels_redis#422); a listener may be idle for hours.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": INSTANCE_NAME,
                "capacity": 1000,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": INSTANCE_NAME,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}
    # django-q2 keeps cluster statistics in the cache, so it must be shared by
    # every process for /health to see the workers.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "trollama_cache"}}

# -- Web and events ---------------------------------------------------------

# The port web listens on (the Procfile passes it to Daphne), and where web is
# as seen from the other processes on this machine: the internal event relay
# and the websocket that the bot and terminal follow. WEB_URL follows WEB_PORT
# unless it is set.
WEB_PORT = _read("WEB_PORT", _int(1, 65535), 8000)
WEB_URL = _read("WEB_URL", _http_url, f"http://127.0.0.1:{WEB_PORT}")
EVENT_PUBLISH_TIMEOUT = _read("EVENT_PUBLISH_TIMEOUT", _float(0.01), 0.5)
STREAM_DELTA_INTERVAL = _read("STREAM_DELTA_INTERVAL_MS", _int(0, 60_000), 250) / 1000
PARTIAL_SAVE_INTERVAL = _read("PARTIAL_SAVE_INTERVAL", _float(0.1), 3.0)
CANCEL_CHECK_INTERVAL = _read("CANCEL_CHECK_INTERVAL", _float(0.05), 0.5)

# -- Ollama -----------------------------------------------------------------

OLLAMA_HOST = _read("OLLAMA_HOST", _http_url, "http://localhost:11434")
OLLAMA_CONNECT_TIMEOUT = _read("OLLAMA_CONNECT_TIMEOUT", _float(0.1), 5.0)
# The longest silence tolerated between two streamed chunks. Loading a large
# model before the first token can take minutes on a cold GPU.
OLLAMA_READ_TIMEOUT = _read("OLLAMA_READ_TIMEOUT", _float(0.1), 300.0)
DEFAULT_ROUTE = _read("DEFAULT_ROUTE", str, "general")
# Circuit breaker per Ollama host: this many failures in a row and the host
# is skipped for the cool-down, then probed with one request.
OLLAMA_BREAKER_FAILURES = _read("OLLAMA_BREAKER_FAILURES", _int(1), 3)
OLLAMA_BREAKER_COOLDOWN = _read("OLLAMA_BREAKER_COOLDOWN", _float(1), 60.0)
# The LLM classifier for messages the pre-router leaves undecided. Off: those
# go to the default route (one Ollama call fewer per message).
ROUTER_CLASSIFIER = _read("ROUTER_CLASSIFIER", _bool, True)
# The embedding fast path (the trained classifier, see Router settings). Off: rules, then the LLM classifier.
ROUTER_FAST_PATH = _read("ROUTER_FAST_PATH", _bool, True)
# How long the router may spend on its classifier call before the default route is used.
ROUTER_TIMEOUT = _read("ROUTER_TIMEOUT", _float(0.1), 20.0)

# -- Web tools (research and reasoning routes) -------------------------------

WEB_SEARCH_BACKEND = _read("WEB_SEARCH_BACKEND", _choice("off", "ollama", "searxng"), "off")
OLLAMA_API_KEY = _read("OLLAMA_API_KEY", str, "")
OLLAMA_WEB_API_URL = _read("OLLAMA_WEB_API_URL", _http_url, "https://ollama.com")
SEARXNG_URL = _read("SEARXNG_URL", str, "")
TOOL_MAX_CALLS = _read("TOOL_MAX_CALLS", _int(1, 50), 5)
TOOL_MAX_PAGE_BYTES = _read("TOOL_MAX_PAGE_BYTES", _int(1000), 20_000)
TOOL_TIME_LIMIT = _read("TOOL_TIME_LIMIT", _float(1), 60.0)

# -- Queue and requests -----------------------------------------------------

MAX_QUEUE_SIZE = _read("MAX_QUEUE_SIZE", _int(1), 50)
MAX_ATTEMPTS = _read("MAX_ATTEMPTS", _int(1, 20), 3)
RETRY_BACKOFF = _read("RETRY_BACKOFF", _float(0), 1.0)
# The longest one generation (one attempt at an answer) may take; past it the
# answer fails with a reason instead of holding a worker and the GPU.
REQUEST_TIMEOUT = _read("REQUEST_TIMEOUT", _int(5), 1200)
# Liveness, separate from REQUEST_TIMEOUT: a running request's worker renews its
# lease every REQUEST_LEASE/4 seconds from a heartbeat thread. A request whose
# lease ran out (its worker was killed) is handed to another worker by the
# reaper in every `qcluster`, which looks every REQUEST_LEASE/4 seconds too.
REQUEST_LEASE = _read("REQUEST_LEASE", _int(4, 3600), 20)
# On SIGTERM/SIGINT, `qcluster` hands the requests in flight back to the queue
# and exits within this many seconds (honcho waits 5 s before SIGKILL).
WORKER_STOP_GRACE = _read("WORKER_STOP_GRACE", _float(0.5), 4.0)
MAX_MESSAGE_CHARS = _read("MAX_MESSAGE_CHARS", _int(1), 20_000)
Q_WORKERS = _read("Q_WORKERS", _int(1, 64), 4)
# Which waiting request a free worker takes: "gpu" (the one cheapest to start
# given what each Ollama host has loaded; see pipeline.scheduling) or
# "fifo" (arrival order, as a broker would).
REQUEST_SCHEDULER = _read("REQUEST_SCHEDULER", _choice("gpu", "fifo"), "gpu")
# Under "gpu", no request waits more than this many seconds beyond its
# first-in-first-out turn (a request queued after it started that long ago).
SCHEDULER_AGING = _read("SCHEDULER_AGING", _float(0), 30.0)
# How long a host's /api/ps answer is reused, and how long reading it may take
# before the claim goes ahead without it (first in, first out).
SCHEDULER_PS_CACHE = _read("SCHEDULER_PS_CACHE", _float(0), 1.0)
SCHEDULER_PS_TIMEOUT = _read("SCHEDULER_PS_TIMEOUT", _float(0.05), 0.5)
# Waiting requests are told their new position and wait at most this often.
QUEUE_UPDATE_INTERVAL = _read("QUEUE_UPDATE_INTERVAL", _float(0.1), 2.0)
Q_POLL = _read("Q_POLL", _float(0.01), 0.05)

Q_CLUSTER: dict[str, Any] = {
    "name": INSTANCE_NAME,
    "workers": Q_WORKERS,
    # A worker process is recycled after this many tasks to bound memory.
    "recycle": 500,
    # A backstop only: a task runs every attempt of a request (retries and
    # fallback models), each bounded by REQUEST_TIMEOUT inside the task, and
    # liveness is the lease's job (see REQUEST_LEASE). django-q2 kills a task
    # past `timeout`; the ORM broker hands an unacknowledged task out again
    # after `retry`, which a claim then ignores if the request moved on.
    "timeout": REQUEST_TIMEOUT * MAX_ATTEMPTS + 120,
    "retry": REQUEST_TIMEOUT * MAX_ATTEMPTS + 180,
    # Retrying is done by the task itself, with backoff and a bound.
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = Q_POLL

# -- Conversations: memory, summaries, attachments ---------------------------

# A thread is summarized once its context passes either threshold, whichever
# comes first: a number of tokens, or a share of the route's context window.
SUMMARY_THRESHOLD_TOKENS = _read("SUMMARY_THRESHOLD_TOKENS", _int(100), 9000)
SUMMARY_THRESHOLD_RATIO = _read("SUMMARY_THRESHOLD_RATIO", _float(0.05), 0.75)
# The most recent turns (messages) always stay verbatim; the summary covers the rest.
SUMMARY_KEEP_TURNS = _read("SUMMARY_KEEP_TURNS", _int(1), 5)
SUMMARIZER_MODEL = _read("SUMMARIZER_MODEL", str, "gpt-oss:20b")
SUMMARIZER_CONTEXT_SIZE = _read("SUMMARIZER_CONTEXT_SIZE", _int(2048), 16384)
# Uploads: the largest file accepted, and how long the upload itself is kept
# (the text read from it stays with the thread).
MAX_FILE_SIZE_MB = _read("MAX_FILE_SIZE_MB", _int(1, 500), 10)
UPLOAD_CLEANUP_HOURS = _read("UPLOAD_CLEANUP_HOURS", _int(1), 1)
ATTACHMENT_MAX_TEXT_CHARS = _read("ATTACHMENT_MAX_TEXT_CHARS", _int(1000), 40_000)
PDF_MAX_PAGES = _read("PDF_MAX_PAGES", _int(1), 50)
IMAGE_MAX_SIDE = _read("IMAGE_MAX_SIDE", _int(64), 1568)

# -- Budgets ----------------------------------------------------------------

# Weekly token allowances of the seeded tiers. A tier row whose allowance is
# left empty in the admin follows these, so a restart applies a new value.
FREE_TIER_WEEKLY_BUDGET = _read("FREE_TIER_WEEKLY_BUDGET", _int(0), 100_000)
ADMIN_TIER_WEEKLY_BUDGET = _read("ADMIN_TIER_WEEKLY_BUDGET", _int(0), 500_000)
# Weeks start Monday 00:00 in this zone; usage is summed from timestamps, so there is no reset job.
BUDGET_TIMEZONE = _read("BUDGET_TIMEZONE", _timezone, "UTC")
# Switches refusals and num_predict caps off; usage is still recorded.
DISABLE_TOKEN_BUDGET = _read("DISABLE_TOKEN_BUDGET", _bool, False)
# Requests a user may submit per minute (0: no limit); tiers can be exempt.
RATE_LIMIT_PER_MINUTE = _read("RATE_LIMIT_PER_MINUTE", _int(0), 10)
# A running request reserves its prompt plus the answer its route usually needs,
# learned from the route's recent answers; this is the answer assumed before a route has any.
BUDGET_EXPECTED_ANSWER_TOKENS = _read("BUDGET_EXPECTED_ANSWER_TOKENS", _int(32), 1024)
# How long a request waits for the user's other running requests to give back what they
# reserved and did not use, when what is left would not hold it otherwise.
BUDGET_WAIT_SECONDS = _read("BUDGET_WAIT_SECONDS", _float(0), 120.0)

# -- Discord ----------------------------------------------------------------

DISCORD_TOKEN = _read("DISCORD_TOKEN", str, "")
# Discord's REST API v10, or anything that speaks it: a rate-limit proxy
# (nirn-proxy, twilight-http-proxy) or the test suite's stand-in. The gateway
# URL is then taken from this API's GET /gateway/bot.
DISCORD_API_URL = _read("DISCORD_API_URL", _http_url, "https://discord.com/api/v10")
DISCORD_EDIT_INTERVAL = _read("DISCORD_EDIT_INTERVAL", _float(0.2), 1.1)
DISCORD_ALLOWED_GUILDS: list[int] = _read("DISCORD_ALLOWED_GUILDS", _int_list, [])
DISCORD_ALLOWED_CHANNELS: list[int] = _read("DISCORD_ALLOWED_CHANNELS", _int_list, [])
# Who the bot answers (bots.intake.AccessPolicy); the admin's access rules add to these lists.
DISCORD_ALLOW_DMS = _read("DISCORD_ALLOW_DMS", _bool, True)
DISCORD_ALLOWED_ROLES: list[int] = _read("DISCORD_ALLOWED_ROLES", _int_list, [])
DISCORD_BLOCKED_ROLES: list[int] = _read("DISCORD_BLOCKED_ROLES", _int_list, [])
DISCORD_ALLOWED_USERS: list[int] = _read("DISCORD_ALLOWED_USERS", _int_list, [])
DISCORD_BLOCKED_USERS: list[int] = _read("DISCORD_BLOCKED_USERS", _int_list, [])
# Finished answers older than this are not redelivered after a bot restart.
DISCORD_OUTBOX_HOURS = _read("DISCORD_OUTBOX_HOURS", _int(1), 24)
# The bot records a heartbeat this often; health calls it gone after three missed beats.
BOT_HEARTBEAT_INTERVAL = _read("BOT_HEARTBEAT_INTERVAL", _float(1), 15.0)

# -- Server knowledge (/ask) ---------------------------------------------------

# The Ollama model that embeds indexed messages and questions. Empty: the router's
# embedding model (Router settings in the admin, all-minilm by default).
KNOWLEDGE_EMBEDDING_MODEL = _read("KNOWLEDGE_EMBEDDING_MODEL", str, "")
# Indexed messages older than this many days are deleted by a scheduled cleanup (0: kept until removed).
KNOWLEDGE_RETENTION_DAYS = _read("KNOWLEDGE_RETENTION_DAYS", _int(0), 365)
# Messages embedded per /api/embed call on the workers.
KNOWLEDGE_EMBED_BATCH = _read("KNOWLEDGE_EMBED_BATCH", _int(1, 1000), 32)
KNOWLEDGE_EMBED_TIMEOUT = _read("KNOWLEDGE_EMBED_TIMEOUT", _float(1), 60.0)
# Seconds the bot waits between two pages (100 messages) of channel history while backfilling.
KNOWLEDGE_BACKFILL_PAGE_DELAY = _read("KNOWLEDGE_BACKFILL_PAGE_DELAY", _float(0), 2.0)
# When the bot starts it reads this many days of each indexed channel again, so edits and deletions made
# while it was offline reach the index (0: only what was written while it was away is read).
KNOWLEDGE_RESYNC_DAYS = _read("KNOWLEDGE_RESYNC_DAYS", _float(0), 3.0)
# How many messages /ask shows the model, and the cosine similarity one needs to count as relevant.
KNOWLEDGE_RESULTS = _read("KNOWLEDGE_RESULTS", _int(1, 50), 6)
KNOWLEDGE_MIN_SIMILARITY = _read("KNOWLEDGE_MIN_SIMILARITY", _float(0), 0.27)

# -- Files (artifacts) -------------------------------------------------------

# Files extracted from answers are deleted this long after they were made; their
# signed download links stop working at the same moment.
ARTIFACT_TTL_HOURS = _read("ARTIFACT_TTL_HOURS", _int(1), 12)
# Larger files stay in the answer's text only (with a note saying so).
ARTIFACT_MAX_BYTES = int(_read("ARTIFACT_MAX_SIZE_MB", _float(0.001), 8.0) * 1_000_000)
# The address people use to reach web, for download links shown in Discord and
# the terminal. Defaults to WEB_URL, which is right when everyone is on this machine.
PUBLIC_URL = _read("PUBLIC_URL", _http_url, WEB_URL)
ARTIFACT_STORAGE = _read("ARTIFACT_STORAGE", _choice("local", "s3"), "local")
if ARTIFACT_STORAGE == "s3":
    _bucket = _read("ARTIFACT_S3_BUCKET", str, "")
    if not _bucket:
        raise ImproperlyConfigured("ARTIFACT_STORAGE is s3 but ARTIFACT_S3_BUCKET is not set.")
    # django-storages' S3 backend; any S3-compatible service (MinIO, R2, Garage…)
    # works through the endpoint URL. Keys left empty fall back to boto3's own
    # lookup (environment, instance role).
    STORAGES["artifacts"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _bucket,
            "endpoint_url": _read("ARTIFACT_S3_ENDPOINT_URL", _http_url, "") or None,
            "region_name": _read("ARTIFACT_S3_REGION", str, "") or None,
            "access_key": _read("ARTIFACT_S3_ACCESS_KEY_ID", str, "") or None,
            "secret_key": _read("ARTIFACT_S3_SECRET_ACCESS_KEY", str, "") or None,
            "location": _read("ARTIFACT_S3_PREFIX", str, ""),
            # Downloads always go through Trollama (counted, checked for expiry),
            # so objects stay private and are never overwritten.
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    STORAGES["artifacts"] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

# -- Local accounts ---------------------------------------------------------

ADMIN_USERNAME = _read("ADMIN_USERNAME", str, "admin")
ADMIN_PASSWORD = _read("ADMIN_PASSWORD", str, "")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": _read("PASSWORD_MIN_LENGTH", _int(8, 128), 10)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Failed sign-ins (admin and console) are throttled by django-axes, kept in the
# database so every web process sees them. After LOGIN_FAILURE_LIMIT failures
# for one user name from one address, that pair is locked out for
# LOGIN_COOLOFF_MINUTES, even with the right password; a failure during the
# lockout starts the cool-off again. `manage.py axes_reset` lifts every lockout.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _read("LOGIN_FAILURE_LIMIT", _int(1, 1000), 5)
AXES_COOLOFF_TIME = timedelta(minutes=_read("LOGIN_COOLOFF_MINUTES", _float(0.01), 15.0))
# By user name and address together: by address alone, everyone behind one
# proxy would share a lockout; by user name alone, anyone could lock the admin out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Not verbose: no start-up line in every process, and log lines name only the user name and address.
AXES_VERBOSE = False

# -- Logging ----------------------------------------------------------------

LOG_LEVEL = _read("LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info").upper()
# text for people reading a terminal; json (one object per line) for a log shipper.
LOG_FORMAT = _read("LOG_FORMAT", _choice("text", "json"), "text")
LOG_TO_FILE = _read("LOG_TO_FILE", _bool, True)
LOG_DIR = Path(_read("LOG_DIR", str, str(DATA_DIR / "logs")))
# Daily files kept besides today's; older ones are deleted at the rollover.
LOG_RETENTION_DAYS = _read("LOG_RETENTION_DAYS", _int(1, 3650), 14)

_log_handlers = ["console"]
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "trollama.logs.RequestIdFilter"},
        "redact_secrets": {"()": "trollama.logs.RedactSecretsFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [pid %(process)d req %(request_id)s]: %(message)s"},
        # python-json-logger (a well-kept library) rather than a hand-written
        # formatter: it serialises extras, exceptions and stack info correctly.
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact_secrets"],
        },
    },
    "root": {"handlers": _log_handlers, "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO" if LOG_LEVEL == "DEBUG" else LOG_LEVEL},
        # One line per HTTP request from the ollama client is noise.
        "httpx": {"level": "WARNING"},
        # django-axes says "Successful login… Cleaned up 0 attempts…" at info on every sign-in; failures are warnings.
        "axes": {"level": "WARNING"},
    },
}
if LOG_TO_FILE:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    LOGGING["handlers"]["file"] = {
        "class": "trollama.logs.SharedTimedRotatingFileHandler",
        "filename": str(LOG_DIR / "trollama.log"),
        "when": "midnight",
        "utc": True,
        "backupCount": LOG_RETENTION_DAYS,
        "encoding": "utf-8",
        "formatter": LOG_FORMAT,
        "filters": ["request_id", "redact_secrets"],
    }
    _log_handlers.append("file")

# -- Metrics and health ------------------------------------------------------

# /health reuses its report this long, so a flood of probes never reaches the Ollama hosts.
HEALTH_CACHE_SECONDS = _read("HEALTH_CACHE_SECONDS", _float(0), 5.0)

# Bearer token for GET /metrics (Prometheus). Empty: staff sessions only.
METRICS_TOKEN = _read("METRICS_TOKEN", str, "")
# Histograms of /metrics cover requests finished in this many minutes.
METRICS_WINDOW_MINUTES = _read("METRICS_WINDOW_MINUTES", _int(1, 7 * 24 * 60), 60)

LOGIN_URL = "admin:login"
