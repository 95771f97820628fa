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
from dataclasses import dataclass, field

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
    expires: dict[str, float] = field(default_factory=dict)  # model -> when Ollama means to unload it (epoch)


@dataclass(frozen=True)
class Eviction:
    """Between two reads of a host, a model Ollama still meant to keep went and another came: room ran out.

    ``demanded``: what the models before plus the newcomers would have held;
    ``models``: how many they were.
    """

    url: str
    gone: tuple[str, ...]
    came: tuple[str, ...]
    demanded: int
    models: int


# The longest gap between two reads of a host in which a model that went for another counts as evicted (seconds;
# at least three ``SCHEDULER_PS_CACHE`` periods). A worker claiming reads its host every second or so, and a load it
# could have caused shows within one; a process that read the host minutes ago cannot tell an eviction from a restart.
EVICTION_READS_APART = 10.0

_cache: dict[str, Loaded] = {}
_previous: dict[str, Loaded] = {}  # the last answered read of each host, to see evictions between reads
_released: dict[str, set[str]] = {}  # models this process asked a host to unload (not evictions)
_lock = threading.Lock()
# What each model held the last time a host showed it loaded: a better guess of what loading it costs than its file.
_seen_sizes: dict[str, int] = {}
# The most models each host was seen holding at once (by this process): a count that fitted is no limit.
_most_models: dict[str, int] = {}


def _reset_after_fork() -> None:
    """A forked child (django-q2 forks its workers) starts with a free lock: another thread may have held it."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _read_ps(url: str) -> tuple[dict[str, int], dict[str, float]] | None:
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
    expires: dict[str, float] = {}
    for model in response.models:
        name = canonical_model_name(model.model or "")
        loaded[name] = int(model.size_vram or model.size or 0)
        if model.expires_at is not None:
            expires[name] = model.expires_at.timestamp()
    return loaded, expires


def find_eviction(url: str, before: Loaded, after: Loaded, *, released: set[str], now: float) -> Eviction | None:
    """An eviction between two reads of ``url``, if one shows (pure; see ``Eviction``).

    A model that went before its ``expires_at`` (by more than a second, for
    clocks) and that this process did not release was pushed out, when
    another model came in its place. Only between two reads close in time
    (``EVICTION_READS_APART``): across a longer gap the same change is as
    likely a restart or an ``ollama stop`` followed by new loads, and a lesson
    drawn from it (a memory found too small) would hold back loads that fit.
    """
    if before.models is None or after.models is None:
        return None
    if after.read_at - before.read_at > max(EVICTION_READS_APART, 3 * settings.SCHEDULER_PS_CACHE):
        return None
    gone = tuple(
        name
        for name in before.models
        if name not in after.models and name not in released and before.expires.get(name, now + 3600) > now + 1
    )
    came = tuple(name for name in after.models if name not in before.models)
    if not gone or not came:
        return None
    demanded = sum(before.models.values()) + sum(after.models[name] for name in came)
    return Eviction(url, gone, came, demanded, len(before.models) + len(came))


def loaded_models(url: str, *, max_age: float | None = None) -> dict[str, int] | None:
    """The models ``url`` holds (bytes each), at most ``max_age`` (default ``SCHEDULER_PS_CACHE``) seconds old."""
    max_age = settings.SCHEDULER_PS_CACHE if max_age is None else max_age
    now = time.monotonic()
    with _lock:
        cached = _cache.get(url)
    if cached is not None and now - cached.read_at < max_age:
        return cached.models
    read = _read_ps(url)
    models, expires = read if read is not None else (None, {})
    fresh = Loaded(models, time.monotonic(), expires)
    eviction = None
    with _lock:
        _cache[url] = fresh
        if models is not None:
            before = _previous.get(url)
            released = _released.get(url, set())
            if before is not None:
                eviction = find_eviction(url, before, fresh, released=released, now=time.time())
            released -= set(released) - set(models)  # gone as asked: nothing left to tell apart
            _previous[url] = fresh
        if models:
            _seen_sizes.update({name: size for name, size in models.items() if size})
            _most_models[url] = max(_most_models.get(url, 0), len(models))
        most = _most_models.get(url, 0)
    if eviction is not None:
        note_eviction(eviction, models_seen=most)
    return models


def cache_age(url: str) -> float | None:
    """Seconds since ``url``'s cached ``/api/ps`` was read; None when it never was."""
    with _lock:
        cached = _cache.get(url)
    return None if cached is None else time.monotonic() - cached.read_at


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
    if url is None:
        with _lock:
            _previous.clear()
            _released.clear()
            _most_models.clear()


def note_eviction(eviction: Eviction, *, models_seen: int = 0) -> None:
    """Learn from an eviction: that much memory does not fit on the host, or (when it fitted before) that many models.

    Stored on the host (the least seen), so every worker process knows it; the
    policy then holds back what is known not to fit (``HostState.fit``).
    ``models_seen``: the most models this process saw the host hold at once.
    When both that much memory and that many models were seen loaded together,
    neither ran out: the models went another way (Ollama restarted, someone
    unloaded them), and nothing is learned.
    """
    logger.info(
        "Ollama on %s evicted %s to load %s (%s models, %.1f GB asked for)",
        eviction.url,
        ", ".join(eviction.gone),
        ", ".join(eviction.came),
        eviction.models,
        eviction.demanded / GB,
    )
    for host in OllamaHost.objects.all():
        if host.base_url != eviction.url:
            continue
        if eviction.demanded <= host.vram_seen:
            # That much memory was seen in use at once: the number of models is what ran out, unless that many
            # were seen loaded together too.
            if eviction.models <= models_seen:
                continue
            if host.models_too_many is None or eviction.models < host.models_too_many:
                OllamaHost.objects.filter(pk=host.pk).update(models_too_many=eviction.models)
        elif host.vram_too_much is None or eviction.demanded < host.vram_too_much:
            OllamaHost.objects.filter(pk=host.pk).update(vram_too_much=eviction.demanded)


def note_parallel_seen(host: OllamaHost, generating: int) -> int:
    """Raise the host's learned parallel slots to ``generating`` answers seen at once for one model."""
    if generating > host.parallel_seen:
        OllamaHost.objects.filter(pk=host.pk, parallel_seen__lt=generating).update(parallel_seen=generating)
        host.parallel_seen = generating
    return host.parallel_seen


def note_memory_seen(host: OllamaHost, loaded: dict[str, int]) -> int:
    """Raise the host's learned budget to what it holds now; returns the learned budget.

    A host seen holding as much as (or as many models as) an eviction once
    said would not fit has more room now (another GPU, another setting): that
    lesson is dropped.
    """
    total = sum(loaded.values())
    if total > host.vram_seen:
        OllamaHost.objects.filter(pk=host.pk, vram_seen__lt=total).update(vram_seen=total)
        host.vram_seen = total
    if host.vram_too_much is not None and total >= host.vram_too_much:
        OllamaHost.objects.filter(pk=host.pk).update(vram_too_much=None)
        host.vram_too_much = None
    if host.models_too_many is not None and len(loaded) >= host.models_too_many:
        OllamaHost.objects.filter(pk=host.pk).update(models_too_many=None)
        host.models_too_many = None
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
    with _lock:
        _released.setdefault(url, set()).add(canonical_model_name(model))  # its going is no eviction
    try:
        shared_sync_client(url, read_timeout=settings.SCHEDULER_PS_TIMEOUT * 10).generate(model=model, keep_alive=0)
    except Exception as exc:  # best effort: Ollama evicts on its own when it must
        logger.info("Could not release %s on %s: %s", model, url, exc)
        return False
    forget(url)
    logger.info("Released %s on %s to make room", model, url)
    return True
