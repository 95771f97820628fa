"""``manage.py doctor``: is this installation able to answer messages?

Each check returns one ``Finding``; the command prints one line per finding
and fails when any is ``FAIL``. Checks talk to the real thing (the database,
Ollama's HTTP API) with short timeouts, and never print a secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from trollama.tls import tls_context

OK, WARN, FAIL = "ok", "warn", "fail"
TIMEOUT = 3.0
MIN_SECRET_KEY_LENGTH = 50
# Three dot-separated base64url parts: the bot's user id, a timestamp, an HMAC.
DISCORD_TOKEN_SHAPE = re.compile(r"^([A-Za-z0-9_-]{18,40})\.([A-Za-z0-9_-]{4,10})\.([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str


def check_configuration() -> list[Finding]:
    findings = []
    if settings.DEBUG:
        findings.append(Finding("debug", WARN, "DEBUG is on: never run like this where others can reach web."))
    else:
        findings.append(Finding("debug", OK, "DEBUG is off."))
    if len(settings.SECRET_KEY) < MIN_SECRET_KEY_LENGTH:
        findings.append(Finding("secret key", FAIL, f"SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters."))
    else:
        findings.append(Finding("secret key", OK, "SECRET_KEY is set and long enough."))
    if settings.IS_PRODUCTION:
        findings.append(
            Finding("environment", OK, f"production settings; allowed hosts {', '.join(settings.ALLOWED_HOSTS)}.")
        )
    else:
        findings.append(
            Finding("environment", OK, "embedded default (set DJANGO_ENV=production for a public deployment).")
        )
    return findings


def check_database() -> list[Finding]:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
        plan = MigrationExecutor(connection).migration_plan(MigrationExecutor(connection).loader.graph.leaf_nodes())
    except Exception as exc:
        return [Finding("database", FAIL, f"cannot reach the {connection.vendor} database: {exc}")]
    findings = [Finding("database", OK, f"{connection.vendor} answers.")]
    if plan:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan[:5])
        more = f" and {len(plan) - 5} more" if len(plan) > 5 else ""
        findings.append(
            Finding("migrations", FAIL, f"{len(plan)} pending ({names}{more}): run `python manage.py migrate`.")
        )
    else:
        findings.append(Finding("migrations", OK, "none pending."))
    return findings


def _model_names(tags: dict[str, object]) -> set[str]:
    names: set[str] = set()
    for entry in tags.get("models") or []:  # type: ignore[attr-defined]
        for key in ("name", "model"):
            name = entry.get(key) if isinstance(entry, dict) else None
            if name:
                names.add(name)
                # Ollama treats "llama3" and "llama3:latest" as the same model.
                names.add(name.removesuffix(":latest"))
    return names


def check_ollama(*, route_models: dict[str, str] | None = None) -> list[Finding]:
    """Reachability of OLLAMA_HOST, then whether each enabled route's model is on it."""
    host = settings.OLLAMA_HOST
    if route_models is None:
        route_models = _enabled_route_models()
    try:
        with httpx.Client(timeout=TIMEOUT, verify=tls_context()) as client:
            version = client.get(f"{host}/api/version")
            version.raise_for_status()
            tags = client.get(f"{host}/api/tags")
            tags.raise_for_status()
            available = _model_names(tags.json())
    except (httpx.HTTPError, ValueError) as exc:
        return [Finding("ollama", FAIL, f"{host} is not answering ({exc or type(exc).__name__}). Is Ollama running?")]
    findings = [Finding("ollama", OK, f"{host} answers, version {version.json().get('version', '?')}.")]
    if not route_models:
        findings.append(Finding("routes", FAIL, "no route is enabled: enable one in the admin under Routing → Routes."))
    for slug, model in sorted(route_models.items()):
        if model in available or model.removesuffix(":latest") in available:
            findings.append(Finding(f"route {slug}", OK, f"model {model} is on {host}."))
        else:
            findings.append(
                Finding(f"route {slug}", FAIL, f"model {model} is not on {host}: run `ollama pull {model}` there.")
            )
    findings.extend(_fast_path_findings(host, available))
    return findings


def _fast_path_findings(host: str, available: set[str]) -> list[Finding]:
    """The router's embedding model and trained classifier: missing ones only slow routing down, so they warn."""
    from routing.models import RouteClassifier, RouterSettings

    model = RouterSettings.current().embedding_model
    if not model:
        return [
            Finding(
                "router fast path",
                WARN,
                "no embedding model is set (admin: Routing → Router settings), so every message no rule decides "
                "costs a call to the router model.",
            )
        ]
    if model not in available and model.removesuffix(":latest") not in available:
        return [
            Finding(
                "router fast path",
                WARN,
                f"the embedding model {model} is not on {host}: run `ollama pull {model}` there. Until then "
                "every message no rule decides costs a call to the router model.",
            )
        ]
    trained = RouteClassifier.objects.filter(embedding_model=model).first()
    if trained is None:
        return [
            Finding(
                "router fast path",
                WARN,
                f"{model} is on {host} but no classifier is trained for it yet: run `manage.py retrainrouter` "
                "(the scheduled model sync also trains it).",
            )
        ]
    return [
        Finding(
            "router fast path",
            OK,
            f"{model} is on {host}; classifier trained on {trained.examples} examples "
            f"at {trained.trained_at:%Y-%m-%d %H:%M}.",
        )
    ]


def _enabled_route_models() -> dict[str, str]:
    from routing.selectors import enabled_routes

    return {route.slug: route.model for route in enabled_routes()}


def discord_token_problem(token: str) -> str | None:
    """What is wrong with the token's shape, or None if it looks like a bot token. Never echoes it."""
    match = DISCORD_TOKEN_SHAPE.match(token)
    if not match:
        return "it does not look like a bot token (three dot-separated parts); copy it again from the Developer Portal"
    first = match.group(1)
    try:
        user_id = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        user_id = ""
    if not user_id.isdigit():
        return "its first part is not a Discord application id; is it a client secret instead of the bot token?"
    return None


def check_discord_token() -> list[Finding]:
    token = settings.DISCORD_TOKEN
    if not token:
        return [Finding("discord token", WARN, "DISCORD_TOKEN is not set: the bot stays off, the rest runs.")]
    problem = discord_token_problem(token)
    if problem:
        return [Finding("discord token", FAIL, f"DISCORD_TOKEN is set but {problem}.")]
    return [Finding("discord token", OK, f"DISCORD_TOKEN is set and well formed ({len(token)} characters).")]


CHECKS: list[Callable[[], list[Finding]]] = [check_configuration, check_database, check_ollama, check_discord_token]


def run_checks() -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings.extend(check())
        except Exception as exc:  # one broken check must not hide the others
            findings.append(Finding(check.__name__.removeprefix("check_"), FAIL, f"the check itself failed: {exc}"))
    return findings
