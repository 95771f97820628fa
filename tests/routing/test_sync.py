"""Model sync against fake Ollama hosts, the command and the admin action."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from routing.models import OllamaHost, OllamaModel, Route
from routing.sync import sync_models
from routing.tasks import sync_models as sync_models_task
from tests import personas


def default_host() -> OllamaHost:
    return OllamaHost.objects.get(name="default")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class SyncModelsTests:
    def test_it_stores_each_models_capabilities_and_context_length(self, fake_ollama):
        (report,) = sync_models()

        assert report.reachable and "gpt-oss:20b" in report.models
        gpt = OllamaModel.objects.get(host=default_host(), name="gpt-oss:20b")
        assert gpt.capabilities == ["completion", "tools", "thinking"]
        assert gpt.context_length == 131072 and gpt.size == 13_780_173_839 and gpt.available
        vision = OllamaModel.objects.get(name="qwen3-vl:8b")
        assert vision.vision and not OllamaModel.objects.get(name="deepcoder:14b").tools
        assert OllamaModel.objects.get(name="all-minilm:latest").capabilities == ["embedding"]

    def test_a_removed_model_is_marked_unavailable_not_deleted(self, fake_ollama):
        sync_models()
        fake_ollama.remove_model("deepcoder:14b")

        (report,) = sync_models()

        assert report.gone == ["deepcoder:14b"]
        assert OllamaModel.objects.get(name="deepcoder:14b").available is False

    def test_a_host_going_down_leaves_its_models_as_they_were_marked_host_unreachable(self, fake_ollama, second_ollama):
        OllamaHost.objects.create(name="gpu2", url=second_ollama.url)
        sync_models()
        before = list(OllamaModel.objects.filter(host__name="gpu2").values_list("name", "available", "synced_at"))
        second_ollama.stop()

        reports = {report.host: report for report in sync_models()}

        assert reports["default"].reachable and not reports["gpu2"].reachable
        gpu2 = OllamaHost.objects.get(name="gpu2")
        assert gpu2.reachable is False and gpu2.last_error
        after = list(OllamaModel.objects.filter(host=gpu2).values_list("name", "available", "synced_at"))
        assert after == before and all(available for _, available, _ in after)
        assert {model.sync_state for model in OllamaModel.objects.filter(host=gpu2)} == {"host unreachable"}
        assert OllamaModel.objects.filter(host=default_host(), available=True).count() == 6

    def test_a_mistyped_ollama_host_leaves_the_models_alone_and_a_fixed_one_clears_the_mark(
        self, fake_ollama, settings
    ):
        sync_models()
        settings.OLLAMA_HOST = "http://127.0.0.1:9"  # the default host follows OLLAMA_HOST

        (report,) = sync_models()

        assert not report.reachable
        assert OllamaModel.objects.filter(available=True).count() == 6
        assert OllamaModel.objects.filter(host=default_host()).first().sync_state == "host unreachable"
        settings.OLLAMA_HOST = fake_ollama.url

        (report,) = sync_models()

        assert report.reachable and default_host().last_error == ""
        assert {model.sync_state for model in OllamaModel.objects.all()} == {"available"}

    def test_the_command_reports_models_and_fails_when_a_host_is_unreachable(self, fake_ollama):
        out = StringIO()
        call_command("syncmodels", "--no-warm", stdout=out)
        assert "default: 6 models" in out.getvalue()

        OllamaHost.objects.create(name="gone", url="http://127.0.0.1:9")
        err = StringIO()
        with pytest.raises(CommandError, match="could not be reached"):
            call_command("syncmodels", "--no-warm", stdout=StringIO(), stderr=err)
        assert "gone: unreachable" in err.getvalue() and "marked 'host unreachable'" in err.getvalue()

    def test_the_command_warms_the_keep_warm_models(self, fake_ollama):
        out = StringIO()

        call_command("syncmodels", stdout=out)

        assert "warm gpt-oss:20b (keep_alive 30m): loaded" in out.getvalue()
        assert "gpt-oss:20b" in fake_ollama.loaded_models
        # With the context size its route will ask for: Ollama reloads a model asked for with another num_ctx.
        (warm,) = [
            r for r in fake_ollama.requests if r.path == "/api/generate" and r.body.get("model") == "gpt-oss:20b"
        ]
        general = Route.objects.get(slug="general")
        assert warm.body["options"]["num_ctx"] == general.context_size

    def test_an_unknown_host_name_is_an_error(self, fake_ollama):
        with pytest.raises(CommandError, match="Unknown host"):
            call_command("syncmodels", "--host", "nope")

    def test_the_admin_action_syncs_the_selected_hosts(self, client, fake_ollama):
        client.force_login(personas.staff_admin())

        response = client.post(
            "/admin/routing/ollamahost/",
            {"action": "sync_selected_hosts", "_selected_action": [default_host().pk]},
            follow=True,
        )

        assert response.status_code == 200
        assert [str(m) for m in response.context["messages"]] == ["default: 6 models, 0 gone."]
        assert OllamaModel.objects.filter(available=True).count() == 6


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class SyncScheduleTests:
    def test_a_schedule_is_seeded_and_its_task_syncs(self, fake_ollama):
        schedule = Schedule.objects.get(func="routing.tasks.sync_models")

        assert schedule.minutes == 5 and schedule.repeats == -1
        assert sync_models_task() == {"hosts": 1, "unreachable": 0, "retrained": 1}
        assert OllamaModel.objects.filter(available=True).count() == 6
