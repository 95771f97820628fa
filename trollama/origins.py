"""Which browser origins may open the console's websockets.

An origin is compared as the exact triple (scheme, host, port), so a page on
``http://127.0.0.1:9999`` or ``https://127.0.0.1`` is not web at
``http://127.0.0.1:8000``. Django's ``validate_host`` only looks at the host
name, and channels' ``AllowedHostsOriginValidator`` does the same, which is why
this module exists. Allowed are:

* the origins of ``WEB_URL`` and ``PUBLIC_URL``;
* every ``CSRF_TRUSTED_ORIGINS`` entry (``https://*.example.org`` matches
  subdomains, as it does for Django's CSRF check);
* every ``ALLOWED_HOSTS`` entry on the scheme and port web is served on: those
  of ``WEB_URL``, and ``https`` on its default port when web sits behind a TLS
  proxy (``BEHIND_TLS_PROXY``). A leading-dot entry (``.example.org``) matches
  subdomains; ``*`` matches any host on those schemes and ports.

Pure functions of their arguments: no settings are read here except in
``origin_is_allowed``, so overriding settings in a test takes effect at once.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    scheme: str
    host: str  # lowercase; an IPv6 address without brackets; may be a pattern (".example.org", "*")
    port: int


def parse_origin(value: str) -> Origin | None:
    """The origin of a URL or an ``Origin`` header, or None when it is not a plain http(s) origin.

    ``null``, other schemes, user info and anything that fails to parse are None.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    return Origin(scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme])


def _host_of_allowed_host(entry: str) -> str:
    entry = entry.strip().lower()
    if entry.startswith("[") and entry.endswith("]"):
        return entry[1:-1]
    return entry


def allowed_origins(
    *,
    web_url: str,
    public_url: str,
    allowed_hosts: list[str],
    trusted_origins: list[str],
    behind_tls_proxy: bool,
) -> set[Origin]:
    """The origins (some with host patterns) browsers may connect from, derived from the settings."""
    origins: set[Origin] = set()
    for url in (web_url, public_url, *trusted_origins):
        origin = parse_origin(url)
        if origin is not None:
            origins.add(origin)
    web = parse_origin(web_url)
    served_on = {(web.scheme, web.port)} if web is not None else set()
    if behind_tls_proxy:
        served_on.add(("https", DEFAULT_PORTS["https"]))
    for entry in allowed_hosts:
        host = _host_of_allowed_host(entry)
        if host:
            origins.update(Origin(scheme, host, port) for scheme, port in served_on)
    return origins


def _matches(origin: Origin, allowed: Origin) -> bool:
    if (origin.scheme, origin.port) != (allowed.scheme, allowed.port):
        return False
    if allowed.host == "*":
        return True
    if allowed.host.startswith("*."):  # the CSRF_TRUSTED_ORIGINS spelling of a subdomain wildcard
        return is_same_domain(origin.host, allowed.host[1:])
    if allowed.host.startswith("."):  # the ALLOWED_HOSTS spelling
        return is_same_domain(origin.host, allowed.host)
    return origin.host == allowed.host


def is_allowed(origin_header: str | None, allowed: set[Origin]) -> bool:
    """True when the ``Origin`` header names exactly one of ``allowed`` (scheme, host and port)."""
    if not origin_header:
        return False
    origin = parse_origin(origin_header)
    if origin is None or origin.host.startswith(("*", ".")):
        return False
    return any(_matches(origin, candidate) for candidate in allowed)


def origin_is_allowed(origin_header: str | None) -> bool:
    """Whether a browser's websocket ``Origin`` is one of web's own pages (see the module docstring)."""
    return is_allowed(
        origin_header,
        allowed_origins(
            web_url=settings.WEB_URL,
            public_url=settings.PUBLIC_URL,
            allowed_hosts=settings.ALLOWED_HOSTS,
            trusted_origins=settings.CSRF_TRUSTED_ORIGINS,
            behind_tls_proxy=settings.BEHIND_TLS_PROXY,
        ),
    )
