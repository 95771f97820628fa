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


_shared: dict[tuple[int, str, float | None], ollama.Client] = {}
_shared_lock = threading.Lock()


def shared_sync_client(host: str, *, read_timeout: float | None = None) -> ollama.Client:
    """A client kept for the life of the process, for the small calls on the routing path.

    Building a client and opening a connection costs about as much as the
    embedding call itself on a fast host; a kept client reuses its pooled
    keep-alive connection. httpx clients are safe to share between threads.
    Keyed by process id too: a client must not cross a fork (django-q2 forks
    its workers), since the child would share the parent's sockets.
    """
    key = (os.getpid(), host, read_timeout)
    client = _shared.get(key)
    if client is None:
        with _shared_lock:
            client = _shared.get(key)
            if client is None:
                client = _shared[key] = sync_client(host, read_timeout=read_timeout)
    return client
