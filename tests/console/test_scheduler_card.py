"""The Health page's Scheduler card: each host's models, slots and memory, and what waits for which model."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pipeline.services import submit_request
from routing import gpu
from routing.hosts import default_host
from routing.models import OllamaHost
from tests import personas


@pytest.fixture(autouse=True)
def fresh_ps():
    gpu.forget()
    yield
    gpu.forget()


def cells(html: str, row: str) -> list[str]:
    """The texts of the cells of the table row marked ``row``."""
    found = html.split(row, 1)[1].split("</tr>", 1)[0]
    return [cell.rsplit(">", 1)[-1] for cell in found.split("</td>")[:-1]]


@pytest.mark.django_db
class SchedulerCardTests:
    def test_it_shows_loaded_models_with_free_slots_memory_and_the_waiting_per_model(self, staff_client, fake_ollama):
        host = default_host()
        OllamaHost.objects.filter(pk=host.pk).update(vram_budget_gb=24, num_parallel=2)
        fake_ollama.begin_use("rnj-1:8b", keep_alive=300, context_length=8192)
        fake_ollama.end_use("rnj-1:8b")
        user = personas.discord_user()
        for n, route in enumerate(["math", "math", "general"]):
            thread = personas.thread_of(user, f"t{n}")
            submit_request(user=user, thread=thread, content="hi", route_slug=route, enqueue=False)

        html = staff_client.get(reverse("console:health-panel")).content.decode()

        assert 'data-scheduler="gpu"' in html
        assert "Memory in use: 4.7\xa0GB of 24.0\xa0GB (budget) · 2 slots per model" in html
        # model, memory, running, free slots, waiting
        assert cells(html, 'data-loaded-model="rnj-1:8b"') == ["rnj-1:8b", "4.7\xa0GB", "0", "2", "2"]
        # model, requests, first in line at, why there
        assert cells(html, 'data-waiting-model="rnj-1:8b"') == ["rnj-1:8b", "2", "1", "model loaded, slot free"]
        assert cells(html, 'data-waiting-model="gpt-oss:20b"') == ["gpt-oss:20b", "1", "3", "model fits in free memory"]

    def test_a_host_whose_ps_does_not_answer_is_said_to_be_scheduled_first_in_first_out(self, staff_client, settings):
        settings.OLLAMA_HOST = "http://127.0.0.1:9"
        html = staff_client.get(reverse("console:health-panel")).content.decode()
        assert "/api/ps did not answer in time" in html and "Nothing is waiting." in html
