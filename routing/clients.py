"""Ollama clients with the timeouts and TLS context every caller needs (the client has no default timeout)."""

from __future__ import annotations

import os
import threading

import httpx
import ollama
from django.conf import settings

from trollama.tls import tls_context


def _timeout(read: float | None) -> httpx.Timeout:
    return httpx.Timeout(read or settings.OLLAMA_READ_TIMEOUT, connect=settings.OLLAMA_CONNECT_TIMEOUT)


def sync_client(host: str, *, read_timeout: float | None = None) -> ollama.Client:
    return ollama.Client(host=host, timeout=_timeout(read_timeout), verify=tls_context())


def async_client(host: str, *, read_timeout: float | None = None) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=host, timeout=_timeout(read_timeout), verify=tls_context())


# A deployment has a handful of hosts; the bound only matters where hosts come and
# go (tests start a fake server per test), so old clients get closed, not kept.
MAX_SHARED_CLIENTS = 8
_shared: dict[tuple[str, float | None], ollama.Client] = {}
_shared_lock = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child (django-q2 forks its workers) must not use, or close, the parent's connections."""
    global _shared_lock
    _shared.clear()
    _shared_lock = threading.Lock()  # it may have been held, by another thread, at the fork


os.register_at_fork(after_in_child=_forget_after_fork)


def shared_sync_client(host: str, *, read_timeout: float | None = None) -> ollama.Client:
    """A client kept for the life of the process, for the small calls on the routing path.

    Building a client and opening a connection costs a few milliseconds, a
    good part of a fast embedding call; a kept client reuses its pooled
    keep-alive connection (httpx checks an idle one is still open before
    reusing it, so a restarted host is fine). httpx clients are safe to share
    between threads.
    """
    key = (host, read_timeout)
    with _shared_lock:
        client = _shared.pop(key, None)
        if client is None:
            client = sync_client(host, read_timeout=read_timeout)
        _shared[key] = client  # most recently used last
        while len(_shared) > MAX_SHARED_CLIENTS:
            _shared.pop(next(iter(_shared))).close()
    return client
