"""Route editing in the admin: capability checks against the synced model table, warnings, rules."""

from __future__ import annotations

import pytest

from routing.models import Route, RouterRule
from routing.sync import sync_models
from tests import personas


def route_form(route: Route, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "slug": route.slug,
        "name": route.name,
        "description": route.description,
        "examples": route.examples,
        "enabled": "on",
        "model": route.model,
        "fallback_models": route.fallback_models,
        "system_prompt": route.system_prompt,
        "temperature": "" if route.temperature is None else route.temperature,
        "context_size": route.context_size,
        "think": route.think,
        "keep_alive": route.keep_alive,
    }
    for flag in ("web_search", "web_fetch", "keep_warm"):
        if getattr(route, flag):
            data[flag] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def admin_client(client, fake_ollama):
    client.force_login(personas.staff_admin())
    sync_models()
    return client


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RouteAdminTests:
    def edit(self, client, slug: str, **changes: object):
        route = Route.objects.get(slug=slug)
        return client.post(f"/admin/routing/route/{route.pk}/change/", route_form(route, **changes), follow=True)

    def test_it_refuses_thinking_on_a_model_that_cannot_think(self, admin_client):
        response = self.edit(admin_client, "math", think="high")

        assert response.status_code == 200
        assert "rnj-1:8b does not support thinking" in response.content.decode()
        assert Route.objects.get(slug="math").think == "off"

    def test_it_refuses_tools_on_a_model_without_tools(self, admin_client):
        response = self.edit(admin_client, "complex_code", web_search="on")

        assert "deepcoder:14b does not support tools" in response.content.decode()
        assert Route.objects.get(slug="complex_code").web_search is False

    def test_it_refuses_a_vision_route_on_a_model_that_cannot_see(self, admin_client):
        response = self.edit(admin_client, "vision", model="gpt-oss:20b")

        assert "gpt-oss:20b cannot read images" in response.content.decode()
        assert Route.objects.get(slug="vision").model == "qwen3-vl:8b"

    def test_a_valid_edit_is_saved_and_a_model_no_host_has_gets_a_warning(self, admin_client):
        response = self.edit(admin_client, "general", model="llama9:70b", think="off", keep_warm=None)

        assert response.status_code == 200
        assert Route.objects.get(slug="general").model == "llama9:70b"
        warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
        assert warnings and "No enabled host has llama9:70b" in warnings[0]

    def test_a_valid_edit_of_a_known_model_has_no_warning(self, admin_client):
        response = self.edit(admin_client, "reasoning", think="high")

        assert Route.objects.get(slug="reasoning").think == "high"
        assert not [m for m in response.context["messages"] if m.level_tag == "warning"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RouterRuleAdminTests:
    def test_it_refuses_an_invalid_regular_expression(self, admin_client):
        route = Route.objects.get(slug="math")

        response = admin_client.post(
            "/admin/routing/routerrule/add/",
            {"route": route.pk, "kind": "regex", "pattern": "(unclosed", "priority": 1, "enabled": "on"},
        )

        assert "Not a valid regular expression" in response.content.decode()
        assert not RouterRule.objects.filter(pattern="(unclosed").exists()
