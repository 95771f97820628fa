"""Websocket origins are compared as exact (scheme, host, port) triples."""

from __future__ import annotations

import pytest

from trollama.origins import Origin, allowed_origins, is_allowed, parse_origin


def local(**overrides) -> set[Origin]:
    config = {
        "web_url": "http://127.0.0.1:8000",
        "public_url": "http://127.0.0.1:8000",
        "allowed_hosts": ["localhost", "127.0.0.1", "[::1]"],
        "trusted_origins": [],
        "behind_tls_proxy": False,
    }
    return allowed_origins(**{**config, **overrides})


class ParseOriginTests:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("http://localhost", Origin("http", "localhost", 80)),
            ("HTTPS://Chat.Example.org", Origin("https", "chat.example.org", 443)),
            ("http://[::1]:8888", Origin("http", "::1", 8888)),
            ("https://127.0.0.1:443", Origin("https", "127.0.0.1", 443)),
        ],
    )
    def test_it_fills_in_the_default_port_and_lowercases(self, value, expected):
        assert parse_origin(value) == expected

    @pytest.mark.parametrize(
        "value", ["null", "", "file://", "ws://localhost:8000", "http://a@localhost:8000", "http://x:99999", "http://"]
    )
    def test_it_refuses_anything_but_a_plain_http_origin(self, value):
        assert parse_origin(value) is None


class AllowedOriginTests:
    def test_allowed_hosts_are_allowed_on_webs_scheme_and_port_only(self):
        allowed = local()

        assert is_allowed("http://localhost:8000", allowed)
        assert is_allowed("http://[::1]:8000", allowed)
        assert is_allowed("http://127.0.0.1:8000", allowed)
        for foreign in ("http://127.0.0.1:9999", "http://localhost:3000", "https://127.0.0.1", "http://[::1]:8888"):
            assert not is_allowed(foreign, allowed), foreign

    def test_the_public_url_is_allowed_exactly(self):
        allowed = local(public_url="https://chat.example.org", allowed_hosts=["chat.example.org"])

        assert is_allowed("https://chat.example.org", allowed)
        assert is_allowed("https://chat.example.org:443", allowed)
        assert not is_allowed("https://chat.example.org:8443", allowed)

    def test_behind_a_tls_proxy_allowed_hosts_are_allowed_on_https(self):
        allowed = local(allowed_hosts=["trollama.example.org"], behind_tls_proxy=True)

        assert is_allowed("https://trollama.example.org", allowed)
        assert not is_allowed("http://trollama.example.org", allowed)

    def test_trusted_origins_with_a_wildcard_match_subdomains_on_their_scheme_and_port(self):
        allowed = local(trusted_origins=["https://*.example.org"])

        assert is_allowed("https://a.example.org", allowed)
        assert not is_allowed("http://a.example.org", allowed)
        assert not is_allowed("https://example.org.evil.test", allowed)

    def test_a_leading_dot_in_allowed_hosts_matches_subdomains(self):
        allowed = local(allowed_hosts=[".example.org"])

        assert is_allowed("http://a.example.org:8000", allowed)
        assert not is_allowed("http://a.example.org", allowed)
        assert not is_allowed("http://evilexample.org:8000", allowed)

    @pytest.mark.parametrize("header", [None, "", "null", "http://*:8000", "http://.example.org:8000"])
    def test_a_missing_or_pattern_like_origin_is_refused(self, header):
        assert not is_allowed(header, local(allowed_hosts=[".example.org", "localhost"]))
