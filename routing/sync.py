"""Filling the model table from each host's ``/api/tags`` and ``/api/show``.

A sync never deletes a row: a model its host no longer lists is marked
unavailable, so the admin still shows what used to be there. A host that
cannot be reached (down, or a mistyped ``OLLAMA_HOST``) says nothing about its
models, so they are left as they were and the host is marked unreachable; the
circuit breaker, not the sync, keeps requests away from a host that is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import ollama
from django.db import transaction
from django.utils import timezone

from routing.clients import sync_client
from routing.hosts import default_host
from routing.models import OllamaHost, OllamaModel

logger = logging.getLogger(__name__)

# /api/show is quick; a host that takes longer than this is not healthy enough to route to.
SYNC_READ_TIMEOUT = 15.0


@dataclass
class HostSync:
    host: str
    reachable: bool
    models: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    error: str = ""


def _context_length(model_info: Any) -> int | None:
    for key, value in dict(model_info or {}).items():
        if key.endswith(".context_length") and isinstance(value, int):
            return value
    return None


def _describe(client: ollama.Client, listed: Any) -> dict[str, Any]:
    show = client.show(listed.model)
    capabilities = set(show.capabilities or [])
    details = listed.details
    return {
        "size": listed.size or 0,
        "family": (details.family if details else "") or "",
        "parameter_size": (details.parameter_size if details else "") or "",
        "context_length": _context_length(show.modelinfo),
        **{capability: capability in capabilities for capability in OllamaModel.CAPABILITIES},
    }


def sync_host(host: OllamaHost) -> HostSync:
    """Read one host's models into the table; an unreachable host is marked so, its models left alone."""
    now = timezone.now()
    client = sync_client(host.base_url, read_timeout=SYNC_READ_TIMEOUT)
    try:
        listed = client.list().models
        described = {item.model: _describe(client, item) for item in listed if item.model}
    except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
        OllamaHost.objects.filter(pk=host.pk).update(reachable=False, last_error=error, synced_at=now)
        logger.warning("Model sync could not reach %s: %s", host.base_url, error)
        return HostSync(host=host.name, reachable=False, error=error)
    finally:
        client.close()

    with transaction.atomic():
        for name, values in described.items():
            OllamaModel.objects.update_or_create(
                host=host, name=name, defaults={**values, "available": True, "synced_at": now}
            )
        gone = list(
            OllamaModel.objects.filter(host=host, available=True)
            .exclude(name__in=described)
            .values_list("name", flat=True)
        )
        OllamaModel.objects.filter(host=host, name__in=gone).update(available=False)
        OllamaHost.objects.filter(pk=host.pk).update(reachable=True, last_error="", synced_at=now)
    return HostSync(host=host.name, reachable=True, models=sorted(described), gone=sorted(gone))


def sync_models(*, hosts: list[OllamaHost] | None = None) -> list[HostSync]:
    """Sync every enabled host (or the given ones)."""
    if hosts is None:
        default_host()  # a fresh install has the OLLAMA_HOST row even if its seed was deleted
        hosts = list(OllamaHost.objects.filter(enabled=True))
    return [sync_host(host) for host in hosts]
