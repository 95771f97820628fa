"""What each Ollama host's GPU holds right now: ``/api/ps``, cached briefly, and releasing idle models.

The scheduler (``pipeline.queue``) reads this before every claim, so it
must never wait on a slow host: each host's answer is kept for
``SCHEDULER_PS_CACHE`` seconds, a read gives up after
``SCHEDULER_PS_TIMEOUT``, and a host that did not answer is reported as
unknown (the policy then falls back to first in, first out) and not asked
again until its cache entry expires.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db.models import Max

from routing.clients import shared_sync_client
from routing.hosts import canonical_model_name
from routing.models import OllamaHost, OllamaModel

logger = logging.getLogger(__name__)

GB = 1024**3  # a "24 GB" card holds 24 GiB; nvidia-smi and Ollama's logs count in these


@dataclass(frozen=True)
class Loaded:
    """One host's ``/api/ps``: model -> bytes it holds; ``None`` when the host did not answer."""

    models: dict[str, int] | None
    read_at: float


_cache: dict[str, Loaded] = {}
_lock = threading.Lock()
# What each model held the last time a host showed it loaded: a better guess of what loading it costs than its file.
_seen_sizes: dict[str, int] = {}


def _reset_after_fork() -> None:
    """A forked child (django-q2 forks its workers) starts with a free lock: another thread may have held it."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _read_ps(url: str) -> dict[str, int] | None:
    try:
        client = shared_sync_client(url, read_timeout=settings.SCHEDULER_PS_TIMEOUT)
        response = client.ps()
    except (httpx.HTTPError, OSError, ValueError) as exc:
        logger.info("Could not read /api/ps of %s: %s", url, exc)
        return None
    except Exception as exc:  # ollama.ResponseError and the like: the host is no help to the scheduler now
        logger.info("Could not read /api/ps of %s: %s", url, exc)
        return None
    loaded: dict[str, int] = {}
    for model in response.models:
        name = canonical_model_name(model.model or "")
        loaded[name] = int(model.size_vram or model.size or 0)
    return loaded


def loaded_models(url: str, *, max_age: float | None = None) -> dict[str, int] | None:
    """The models ``url`` holds (bytes each), at most ``max_age`` (default ``SCHEDULER_PS_CACHE``) seconds old."""
    max_age = settings.SCHEDULER_PS_CACHE if max_age is None else max_age
    now = time.monotonic()
    with _lock:
        cached = _cache.get(url)
    if cached is not None and now - cached.read_at < max_age:
        return cached.models
    models = _read_ps(url)
    with _lock:
        _cache[url] = Loaded(models, time.monotonic())
        if models:
            _seen_sizes.update({name: size for name, size in models.items() if size})
    return models


def cached_loaded(url: str) -> dict[str, int]:
    """What ``url`` held at its last ``/api/ps`` read, without asking again (empty when unknown)."""
    with _lock:
        cached = _cache.get(url)
    return dict(cached.models or {}) if cached is not None else {}


def forget(url: str | None = None) -> None:
    """Drop the cached ``/api/ps`` (of one host, or all): after a release, or in tests."""
    with _lock:
        if url is None:
            _cache.clear()
            _tags.clear()
            _seen_sizes.clear()
        else:
            _cache.pop(url, None)


def note_memory_seen(host: OllamaHost, loaded: dict[str, int]) -> int:
    """Raise the host's learned budget to what it holds now; returns the learned budget."""
    total = sum(loaded.values())
    if total > host.vram_seen:
        OllamaHost.objects.filter(pk=host.pk, vram_seen__lt=total).update(vram_seen=total)
        host.vram_seen = total
    return host.vram_seen


TAGS_CACHE = 60.0  # sizes on disk change only when a model is pulled
_tags: dict[str, tuple[float, dict[str, int]]] = {}


def _sizes_on_disk(url: str) -> dict[str, int]:
    """``/api/tags`` sizes of one host, for models the sync has not put in the table yet (cached a minute)."""
    with _lock:
        cached = _tags.get(url)
    if cached is not None and time.monotonic() - cached[0] < TAGS_CACHE:
        return cached[1]
    sizes: dict[str, int] = {}
    try:
        listed = shared_sync_client(url, read_timeout=settings.SCHEDULER_PS_TIMEOUT).list()
        sizes = {canonical_model_name(m.model or ""): int(m.size or 0) for m in listed.models}
    except Exception as exc:  # no sizes is a worse guess, not a failure
        logger.info("Could not read /api/tags of %s: %s", url, exc)
    with _lock:
        _tags[url] = (time.monotonic(), sizes)
    return sizes


def model_sizes(names: set[str], *, urls: Sequence[str] = ()) -> dict[str, int]:
    """Bytes each model is expected to take: what it held when last seen loaded, else its size on disk.

    Sizes on disk come from the synced model table, else from ``urls``' ``/api/tags``.
    """
    on_disk = dict(
        OllamaModel.objects.filter(name__in=names)
        .values("name")
        .annotate(biggest=Max("size"))
        .values_list("name", "biggest")
    )
    sizes = {name: int(size or 0) for name, size in on_disk.items() if size}
    missing = names - set(sizes)
    for url in urls if missing else ():
        for name, size in _sizes_on_disk(url).items():
            if name in missing and size:
                sizes[name] = max(sizes.get(name, 0), size)
    with _lock:
        sizes.update({name: size for name, size in _seen_sizes.items() if name in names})
    return sizes


def hosts_having(names: set[str]) -> dict[str, tuple[int, ...]]:
    """For each model some enabled host lists, those hosts (a model pinned to one host runs only there)."""
    found: dict[str, list[int]] = {}
    rows = OllamaModel.objects.filter(name__in=names, available=True, host__enabled=True).values_list("name", "host_id")
    for name, host_id in rows:
        found.setdefault(name, []).append(host_id)
    return {name: tuple(ids) for name, ids in found.items()}


def release(url: str, model: str) -> bool:
    """Ask ``url`` to unload ``model`` now (Ollama's ``keep_alive: 0``); False when it could not be asked."""
    try:
        shared_sync_client(url, read_timeout=settings.SCHEDULER_PS_TIMEOUT * 10).generate(model=model, keep_alive=0)
    except Exception as exc:  # best effort: Ollama evicts on its own when it must
        logger.info("Could not release %s on %s: %s", model, url, exc)
        return False
    forget(url)
    logger.info("Released %s on %s to make room", model, url)
    return True
