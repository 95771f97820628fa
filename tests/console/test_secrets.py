"""No page of the console shows a secret from the settings."""

from __future__ import annotations

import pytest
from django.urls import reverse

from budgets.usage import record_usage
from conversations.models import Request

PAGES = [
    ("console:requests", []),
    ("console:request", ["request"]),
    ("console:request-facts", ["request"]),
    ("console:health", []),
    ("console:health-panel", []),
    ("console:usage", []),
    ("console:conversations", []),
    ("console:conversation", ["thread"]),
    ("console:login", []),
]


@pytest.mark.django_db
class SecretsTests:
    @pytest.mark.parametrize(("name", "args"), PAGES)
    def test_no_secret_appears_on_the_page(self, name, args, staff_client, queued_request, settings, fake_ollama):
        settings.DISCORD_TOKEN = "discord-token-that-must-stay-secret"
        Request.objects.filter(pk=queued_request.pk).update(system_prompt="You are helpful.")
        record_usage(user=queued_request.user, kind="answer", model="m", prompt_tokens=1, completion_tokens=1)
        ids = {"request": queued_request.pk, "thread": queued_request.thread_id}

        html = staff_client.get(reverse(name, args=[ids[arg] for arg in args])).content.decode()

        assert len(settings.SECRET_KEY) > 20 and len(settings.INTERNAL_TOKEN) > 20
        for secret in (settings.SECRET_KEY, settings.INTERNAL_TOKEN, settings.DISCORD_TOKEN):
            assert secret not in html
