"""Health checks of the real components: each check really talks to its component.

A check returns a JSON-able dict with at least ``ok`` and ``critical``. The
report's ``status`` is ``unhealthy`` when any critical check fails,
``degraded`` when everything critical works but something else does not (the
bot, when a Discord token is set; one Ollama host of several), else ``ok``.

``health_report()`` runs every check now, asking each Ollama host one
question (``/api/ps``; its version is asked once per ``VERSION_TTL``).
``cached_health_report()`` is what ``/health`` serves: the same report, reused
for ``HEALTH_CACHE_SECONDS`` and computed once however many hits arrive
together, so a flood of anonymous probes never reaches the Ollama hosts.
``public_health()`` is the part anyone may see: the status and the
maintenance mode, without URLs, versions, models or workers.

A host that does not answer gets a sentence saying what to do
(``unreachable_message``), and is logged once when it stops answering and once
when it answers again, not at every probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker

from bots.selectors import latest_heartbeat
from pipeline.cluster import live_clusters
from routing.models import OllamaHost
from trollama.maintenance import maintenance_snapshot
from trollama.tls import tls_context

Check = dict[str, Any]

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0


def _timed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def check_database() -> Check:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "critical": True, "error": str(exc)}
    return {"ok": True, "critical": True, "vendor": connection.vendor, "latency_ms": _timed(started)}


def check_broker() -> Check:
    """Queue depth and the workers that reported recently."""
    started = time.perf_counter()
    try:
        broker = get_broker()
        if not broker.ping():
            return {"ok": False, "critical": True, "error": "the broker did not answer"}
        depth = broker.queue_size()
        clusters = live_clusters(broker)
    except Exception as exc:
        return {"ok": False, "critical": True, "error": str(exc)}
    workers = sum(cluster["workers"] for cluster in clusters)
    check: Check = {
        "ok": workers > 0,
        "critical": True,
        "broker": broker.info(),
        "queue_depth": depth,
        "clusters": len(clusters),
        "workers": workers,
        "cluster_workers": clusters,
        "latency_ms": _timed(started),
    }
    if not workers:
        check["error"] = "no worker is running: start one with `python manage.py qcluster`"
    return check


_slow_receives: set[asyncio.Future[Any]] = set()


async def check_channel_layer() -> Check:
    """Send a message to a fresh channel and read it back."""
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "critical": True, "error": "no channel layer is configured"}
    started = time.perf_counter()
    try:
        # The default prefix, as the websocket consumers' channels have: channels-redis lets one
        # receiver at a time pop messages, for every channel of this process with the same prefix.
        # With a prefix of its own the check waited behind each idle websocket's 5 s pop and failed
        # whenever a listener (the bot, a console) was connected.
        channel = await layer.new_channel()
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        # A slow receive is left to finish in the background (its message was sent, so it will):
        # channels-redis forgets a cancelled receive's buffer, and the message would then stay in
        # memory for good.
        receiving = asyncio.ensure_future(layer.receive(channel))
        done, _ = await asyncio.wait({receiving}, timeout=CHECK_TIMEOUT)
        if not done:
            _slow_receives.add(receiving)
            receiving.add_done_callback(_slow_receives.discard)
            return {"ok": False, "critical": True, "error": f"no answer within {CHECK_TIMEOUT:g} s"}
        message = receiving.result()
    except Exception as exc:
        return {"ok": False, "critical": True, "error": str(exc) or type(exc).__name__}
    if message.get("token") != token:
        return {"ok": False, "critical": True, "error": "the channel layer returned another message"}
    return {"ok": True, "critical": True, "backend": type(layer).__name__, "latency_ms": _timed(started)}


# A host's version changes only when someone upgrades it: ask for it this rarely.
VERSION_TTL = 600.0
_versions: dict[str, tuple[float, str | None]] = {}


async def _version(client: httpx.AsyncClient, url: str) -> str | None:
    """The host's Ollama version, from ``/api/version`` at most once per ``VERSION_TTL``; None when it will not say."""
    known = _versions.get(url)
    if known is not None and time.monotonic() - known[0] < VERSION_TTL:
        return known[1]
    try:
        response = await client.get(f"{url}/api/version")
        response.raise_for_status()
        version = response.json().get("version")
    except Exception:
        return known[1] if known else None  # the host answered /api/ps, so it is up; the version can wait
    _versions[url] = (time.monotonic(), version)
    return version


def unreachable_message(url: str | None) -> str:
    """What to do about a host that does not answer: the default host is OLLAMA_HOST, the others are in the admin.

    ``url`` None: the same words without the URL (and so without saying which kind of host), for anyone to read.
    """
    if url is None:
        return "Ollama is not reachable; set OLLAMA_HOST in .env, or check the hosts in the admin"
    if url == settings.OLLAMA_HOST:
        return f"Ollama is not reachable at {url}; set OLLAMA_HOST in .env"
    return f"Ollama is not reachable at {url}; check its URL in the admin (Routing → Ollama hosts)"


async def check_ollama_host(client: httpx.AsyncClient, url: str) -> Check:
    """The models the host holds in memory (``/api/ps``) with their VRAM, and its (cached) version."""
    started = time.perf_counter()
    try:
        response = await client.get(f"{url}/api/ps")
        response.raise_for_status()
        latency = _timed(started)
        loaded = [_loaded_model(entry) for entry in response.json().get("models") or []]
    except httpx.TransportError as exc:  # refused, timed out, no such name: nothing answered
        return {"url": url, "ok": False, "error": str(exc) or type(exc).__name__, "message": unreachable_message(url)}
    except Exception as exc:
        error = str(exc) or type(exc).__name__
        return {"url": url, "ok": False, "error": error, "message": f"Ollama at {url} answered with an error: {error}"}
    version = await _version(client, url)
    return {"url": url, "ok": True, "version": version, "latency_ms": latency, "loaded_models": loaded}


def _loaded_model(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": entry.get("name") or entry.get("model"),
        "size": entry.get("size"),
        "size_vram": entry.get("size_vram"),
        "context_length": entry.get("context_length"),
        "expires_at": entry.get("expires_at"),
    }


def enabled_host_urls() -> list[str]:
    """The URL of every enabled Ollama host (from the admin), or ``OLLAMA_HOST`` when none is listed."""
    urls = [host.base_url for host in OllamaHost.objects.filter(enabled=True).order_by("pk")]
    return list(dict.fromkeys(urls)) or [settings.OLLAMA_HOST]


async def check_ollama() -> Check:
    """Every Ollama host; critical only when none is reachable."""
    hosts = await sync_to_async(enabled_host_urls)()
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT, verify=tls_context()) as client:
        results = await asyncio.gather(*(check_ollama_host(client, url) for url in hosts))
    _log_host_changes(results)
    return {"ok": any(result["ok"] for result in results), "critical": True, "hosts": results}


# Hosts this process last saw failing: each change is logged once, not at every probe.
_failing_hosts: set[str] = set()


def _log_host_changes(results: list[Check]) -> None:
    for result in results:
        url = result["url"]
        if not result["ok"] and url not in _failing_hosts:
            _failing_hosts.add(url)
            logger.warning("%s (%s)", result["message"], result["error"])
        elif result["ok"] and url in _failing_hosts:
            _failing_hosts.discard(url)
            logger.info("Ollama at %s answers again", url)


def check_bot() -> Check:
    """The Discord bot's heartbeat. Not critical: the rest works without Discord."""
    heartbeat = latest_heartbeat()
    if heartbeat is None:
        if not settings.DISCORD_TOKEN:
            # Switched off on purpose: not a fault, so the report is not degraded by it.
            return {"ok": False, "critical": False, "off": True, "error": "DISCORD_TOKEN is not set, so the bot is off"}
        return {"ok": False, "critical": False, "error": "the bot has never run"}
    alive = heartbeat.is_alive(settings.BOT_HEARTBEAT_INTERVAL)
    check: Check = {
        "ok": alive and heartbeat.connected,
        "critical": False,
        "name": heartbeat.name,
        "connected": heartbeat.connected,
        "events_connected": heartbeat.events_connected,
        "heartbeat_age_s": round(heartbeat.age_seconds, 1),
        "latency_ms": heartbeat.latency_ms,
        "guilds": heartbeat.guilds,
    }
    if not alive:
        check["error"] = f"no heartbeat for {heartbeat.age_seconds:.0f} s: is `manage.py runbot` running?"
    elif not heartbeat.connected:
        check["error"] = "the bot is running but not connected to Discord"
    return check


def _guarded(check: Callable[[], Check], *, critical: bool) -> Callable[[], Check]:
    """``check`` that reports its own crash (a missing table, a dead cache) as a failed check, not a 500."""

    def run() -> Check:
        try:
            return check()
        except Exception as exc:
            return {"ok": False, "critical": critical, "error": str(exc) or type(exc).__name__}

    return run


def overall_status(checks: dict[str, Check]) -> str:
    """``unhealthy``, ``degraded`` or ``ok``: see the module docstring."""
    if not all(check["ok"] for check in checks.values() if check.get("critical")):
        return "unhealthy"
    hosts = checks.get("ollama", {}).get("hosts", [])
    troubled = any(not check["ok"] and not check.get("off") for check in checks.values() if not check.get("critical"))
    return "degraded" if troubled or not all(host["ok"] for host in hosts) else "ok"


async def health_report() -> dict[str, Any]:
    """Every check, run now, and the maintenance state."""
    database = await sync_to_async(_guarded(check_database, critical=True))()
    broker = await sync_to_async(_guarded(check_broker, critical=True))()
    bot = await sync_to_async(_guarded(check_bot, critical=False))()
    try:
        maintenance = await sync_to_async(maintenance_snapshot)()
    except Exception:  # the database is down: its check says so
        maintenance = {"mode": "unknown"}
    layer, ollama_hosts = await asyncio.gather(check_channel_layer(), check_ollama())
    checks = {"database": database, "broker": broker, "channel_layer": layer, "ollama": ollama_hosts, "bot": bot}
    report = {
        "status": overall_status(checks),
        "maintenance": maintenance,
        "checked_at": timezone.now().isoformat(),
        "checks": checks,
    }
    report["problems"] = problems(report)
    return report


# Each critical check: its name in the details, and what anyone may read when it fails (fixed words,
# since the errors may name hosts and users).
CRITICAL_CHECKS = {
    "database": ("Database", "The database is not answering."),
    "broker": ("Queue and workers", "No worker is running, or the queue broker is not answering."),
    "channel_layer": ("Channel layer", "The channel layer is not answering."),
}


def problems(report: dict[str, Any], *, public: bool = False) -> list[str]:
    """What is failing, in words that say what to do; ``public`` leaves out URLs and errors.

    The details name every host that does not answer; the public words only
    say so when none does (the report is then unhealthy).
    """
    checks = report["checks"]
    found: list[str] = []
    if public:
        if not checks["ollama"]["ok"]:
            found.append(unreachable_message(None))
    else:
        found += [host["message"] for host in checks["ollama"]["hosts"] if not host["ok"]]
    for name, (label, words) in CRITICAL_CHECKS.items():
        if not checks[name]["ok"]:
            found.append(words if public else f"{label}: {checks[name].get('error', 'failing')}")
    return found


def public_health(report: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see: the status, the maintenance mode, when it was checked, and what is wrong in plain words."""
    return {
        "status": report["status"],
        "maintenance": report["maintenance"]["mode"],
        "checked_at": report["checked_at"],
        "problems": problems(report, public=True),
    }


_cached: tuple[float, dict[str, Any]] | None = None
_refreshing: dict[asyncio.AbstractEventLoop, asyncio.Task[dict[str, Any]]] = {}


async def _refresh() -> dict[str, Any]:
    global _cached
    report = await health_report()
    _cached = (time.monotonic(), report)
    return report


async def cached_health_report() -> dict[str, Any]:
    """``health_report()``, reused for ``HEALTH_CACHE_SECONDS``; hits that arrive while it runs wait for that run.

    Kept in this process's memory (one web process asks each host at most once
    per period): the cache backend would cost a database query a hit on the
    embedded default, and a flood is exactly when that matters.
    """
    if _cached is not None and time.monotonic() - _cached[0] < settings.HEALTH_CACHE_SECONDS:
        return _cached[1]
    loop = asyncio.get_running_loop()
    task = _refreshing.get(loop)
    if task is None or task.done():
        task = _refreshing[loop] = loop.create_task(_refresh())
        task.add_done_callback(lambda done: _refreshing.pop(loop, None) if _refreshing.get(loop) is done else None)
    # Shielded: a client that hangs up must not cancel the run the others wait for.
    return await asyncio.shield(task)


def forget_cached_health() -> None:
    """Drop the cached report and versions (tests, and after changing hosts in a shell)."""
    global _cached
    _cached = None
    _versions.clear()
    _failing_hosts.clear()
