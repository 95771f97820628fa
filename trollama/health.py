"""Health checks of the real components: each check really talks to its component.

A check returns a JSON-able dict with at least ``ok`` and ``critical``. The
report is unhealthy when any critical check fails.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.status import Stat

from bots.selectors import latest_heartbeat
from routing.models import OllamaHost
from trollama.tls import tls_context

Check = dict[str, Any]

# A cluster that has not reported for this long is counted as gone.
CLUSTER_STALE_SECONDS = 30
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
        clusters = [stat for stat in Stat.get_all(broker=broker) if _is_recent(stat)]
    except Exception as exc:
        return {"ok": False, "critical": True, "error": str(exc)}
    workers = sum(len(stat.workers) for stat in clusters)
    check: Check = {
        "ok": workers > 0,
        "critical": True,
        "broker": broker.info(),
        "queue_depth": depth,
        "clusters": len(clusters),
        "workers": workers,
        "latency_ms": _timed(started),
    }
    if not workers:
        check["error"] = "no worker is running: start one with `python manage.py qcluster`"
    return check


def _is_recent(stat: Stat) -> bool:
    return (timezone.now() - stat.timestamp).total_seconds() < CLUSTER_STALE_SECONDS


async def check_channel_layer() -> Check:
    """Send a message to a fresh channel and read it back."""
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "critical": True, "error": "no channel layer is configured"}
    started = time.perf_counter()
    try:
        channel = await layer.new_channel("health.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        message = await asyncio.wait_for(layer.receive(channel), timeout=CHECK_TIMEOUT)
    except Exception as exc:
        return {"ok": False, "critical": True, "error": str(exc) or type(exc).__name__}
    if message.get("token") != token:
        return {"ok": False, "critical": True, "error": "the channel layer returned another message"}
    return {"ok": True, "critical": True, "backend": type(layer).__name__, "latency_ms": _timed(started)}


async def check_ollama_host(client: httpx.AsyncClient, url: str) -> Check:
    """The host's version, and the models it holds in memory (``/api/ps``) with their VRAM."""
    started = time.perf_counter()
    try:
        response = await client.get(f"{url}/api/version")
        response.raise_for_status()
        version = response.json().get("version")
        latency = _timed(started)
        response = await client.get(f"{url}/api/ps")
        response.raise_for_status()
        loaded = [_loaded_model(entry) for entry in response.json().get("models") or []]
    except Exception as exc:
        return {"url": url, "ok": False, "error": str(exc) or type(exc).__name__}
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
    return {"ok": any(result["ok"] for result in results), "critical": True, "hosts": results}


def check_bot() -> Check:
    """The Discord bot's heartbeat. Not critical: the rest works without Discord."""
    heartbeat = latest_heartbeat()
    if heartbeat is None:
        reason = "the bot has never run" if settings.DISCORD_TOKEN else "DISCORD_TOKEN is not set, so the bot is off"
        return {"ok": False, "critical": False, "error": reason}
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


async def health_report() -> dict[str, Any]:
    database = await sync_to_async(check_database)()
    broker = await sync_to_async(check_broker)()
    bot = await sync_to_async(check_bot)()
    layer, ollama_hosts = await asyncio.gather(check_channel_layer(), check_ollama())
    checks = {"database": database, "broker": broker, "channel_layer": layer, "ollama": ollama_hosts, "bot": bot}
    healthy = all(check["ok"] for check in checks.values() if check.get("critical"))
    return {"status": "ok" if healthy else "unhealthy", "checked_at": timezone.now().isoformat(), "checks": checks}
