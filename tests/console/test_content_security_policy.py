"""A Content-Security-Policy on the console and the admin that needs no inline script or style."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests import personas

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "/console/login/",
    "/console/",
    "/console/health/",
    "/console/usage/",
    "/console/conversations/",
    "/console/artifacts/",
    "/admin/",
    "/admin/login/",
    "/admin/routing/route/",
    "/admin/routing/route/add/",
]
INLINE = [
    # A script without src is inline code, unless it is a JSON data block (json_script), which never runs.
    re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE),
    re.compile(r"<style\b", re.IGNORECASE),
    re.compile(r"\sstyle\s*=", re.IGNORECASE),
    re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),  # onclick=, onsubmit=, ...
    re.compile(r"javascript:", re.IGNORECASE),
]


def policy(response) -> dict[str, list[str]]:
    directives = [part.strip().split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {name: values for name, *values in directives}


@pytest.mark.django_db
class ContentSecurityPolicyTests:
    @pytest.mark.parametrize("path", PAGES)
    def test_every_page_carries_a_policy_without_unsafe_inline(self, path):
        client = Client()
        if "login" not in path:
            client.force_login(personas.staff_admin())

        response = client.get(path)

        assert response.status_code == 200, path
        rules = policy(response)
        assert rules["default-src"] == ["'self'"]
        assert rules["script-src"] == ["'self'"] and rules["style-src"] == ["'self'"]
        assert rules["object-src"] == ["'none'"] and rules["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        assert "'unsafe-eval'" not in response["Content-Security-Policy"]

    @pytest.mark.parametrize("path", PAGES)
    def test_no_page_has_an_inline_script_or_style(self, path):
        client = Client()
        if "login" not in path:
            client.force_login(personas.staff_admin())

        html = client.get(path).content.decode()

        for pattern in INLINE:
            assert not pattern.search(html), f"{path}: {pattern.pattern} matches {pattern.search(html).group(0)!r}"


class TemplateSourceTests:
    def test_our_templates_and_scripts_keep_no_inline_code(self):
        offenders = []
        for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("*/templates/**/*.html")]:
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for p in INLINE for m in p.finditer(text)]
        for path in ROOT.glob("console/static/console/*.js"):
            text = path.read_text()
            for pattern in (
                r"\beval\(",
                r"new Function\(",
                r"setAttribute\(\s*['\"]style",
                r"\.innerHTML\s*=.*<script",
            ):
                offenders += [f"{path.relative_to(ROOT)}: {m.group(0)!r}" for m in re.finditer(pattern, text)]

        assert offenders == []
