"""Ollama clients with the timeouts and TLS context every caller needs (the client has no default timeout)."""

from __future__ import annotations

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
