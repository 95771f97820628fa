"""One TLS context per process for every HTTP client we create.

httpx builds a new SSL context (loading the whole CA bundle, ~16-20 ms of
CPU) for each client unless it is given one, even for plain http:// hosts.
A worker makes two clients per request, so sharing the context takes that
cost off the path between claiming a request and calling Ollama.
"""

from __future__ import annotations

import functools
import ssl

import certifi


@functools.cache
def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())
