"""Host choice and the circuit breaker, shared through the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from routing import gpu, hosts
from routing.clients import sync_client
from routing.models import OllamaHost
from routing.sync import sync_models


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChooseHostTests:
    def test_without_a_sync_the_default_host_follows_ollama_host(self, fake_ollama):
        choice = hosts.choose_host("gpt-oss:20b")

        assert choice is not None and choice.url == fake_ollama.url

    def test_it_prefers_a_host_that_has_the_model(self, fake_ollama, second_ollama):
        fake_ollama.remove_model("rnj-1:8b")
        gpu2 = OllamaHost.objects.create(name="gpu2", url=second_ollama.url)
        sync_models()

        assert hosts.choose_host("rnj-1:8b") == hosts.HostChoice(gpu2.pk, second_ollama.url)
        assert hosts.choose_host("gpt-oss:20b").url == fake_ollama.url

    def test_of_hosts_that_have_the_model_it_prefers_the_one_holding_it_loaded(self, fake_ollama, second_ollama):
        gpu2 = OllamaHost.objects.create(name="gpu2", url=second_ollama.url)
        sync_models()  # both hosts have rnj-1
        sync_client(second_ollama.url).generate(model="rnj-1:8b", keep_alive="5m")
        gpu.forget()
        try:
            for host in OllamaHost.objects.all():
                gpu.loaded_models(host.base_url)  # what the scheduler reads before a claim

            assert hosts.choose_host("rnj-1:8b") == hosts.HostChoice(gpu2.pk, second_ollama.url)
            assert hosts.choose_host("gpt-oss:20b").url == fake_ollama.url
        finally:
            gpu.forget()

    def test_the_host_the_scheduler_chose_goes_before_one_holding_the_model_loaded(self, fake_ollama, second_ollama):
        gpu2 = OllamaHost.objects.create(name="gpu2", url=second_ollama.url)
        sync_models()  # both hosts have rnj-1
        sync_client(fake_ollama.url).generate(model="rnj-1:8b", keep_alive="5m")
        gpu.forget()
        try:
            for host in OllamaHost.objects.all():
                gpu.loaded_models(host.base_url)

            assert hosts.choose_host("rnj-1:8b").url == fake_ollama.url  # loaded there
            assert hosts.choose_host("rnj-1:8b", prefer=gpu2.pk) == hosts.HostChoice(gpu2.pk, second_ollama.url)
        finally:
            gpu.forget()

    def test_a_preferred_host_without_the_model_is_not_chosen(self, fake_ollama, second_ollama):
        second_ollama.remove_model("rnj-1:8b")
        gpu2 = OllamaHost.objects.create(name="gpu2", url=second_ollama.url)
        sync_models()

        assert hosts.choose_host("rnj-1:8b", prefer=gpu2.pk).url == fake_ollama.url

    def test_disabled_hosts_are_never_chosen(self, fake_ollama):
        OllamaHost.objects.update(enabled=False)

        assert hosts.choose_host("gpt-oss:20b") is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class CircuitBreakerTests:
    def host(self) -> OllamaHost:
        return OllamaHost.objects.get(name="default")

    def test_it_opens_after_consecutive_failures_and_skips_the_host(self, fake_ollama, settings):
        settings.OLLAMA_BREAKER_FAILURES = 2
        host = self.host()

        assert hosts.record_failure(host.pk, "boom") is False
        assert hosts.record_failure(host.pk, "boom") is True

        host.refresh_from_db()
        assert host.breaker_state() == "open" and host.last_error == "boom"
        assert hosts.choose_host("gpt-oss:20b") is None

    def test_one_requests_own_retries_count_once(self, fake_ollama, settings):
        settings.OLLAMA_BREAKER_FAILURES = 3
        host = self.host()

        opened = [hosts.record_failure(host.pk, "boom", request_id=7) for _ in range(5)]

        host.refresh_from_db()
        assert opened == [False] * 5
        assert (host.consecutive_failures, host.breaker_state()) == (1, "closed")
        assert hosts.choose_host("gpt-oss:20b") is not None

    def test_failures_of_different_requests_in_a_row_open_it(self, fake_ollama, settings):
        settings.OLLAMA_BREAKER_FAILURES = 3
        host = self.host()

        opened = [hosts.record_failure(host.pk, "boom", request_id=request_id) for request_id in (1, 1, 2, 3)]

        host.refresh_from_db()
        assert opened == [False, False, False, True]
        assert host.breaker_state() == "open"

    def test_a_success_closes_it_and_resets_the_count(self, fake_ollama):
        host = self.host()
        hosts.record_failure(host.pk, "boom")

        hosts.record_success(host.pk)

        host.refresh_from_db()
        assert (host.consecutive_failures, host.breaker_opened_at) == (0, None)

    def test_after_the_cool_down_exactly_one_probe_gets_through(self, fake_ollama, settings):
        settings.OLLAMA_BREAKER_COOLDOWN = 30
        host = self.host()
        OllamaHost.objects.filter(pk=host.pk).update(
            consecutive_failures=5, breaker_opened_at=timezone.now() - timedelta(seconds=31)
        )

        first = hosts.choose_host("gpt-oss:20b")
        second = hosts.choose_host("gpt-oss:20b")

        assert first is not None and first.host_id == host.pk
        assert second is None  # the probe re-armed the cool-down for everyone else

    def test_a_failed_probe_keeps_it_open(self, fake_ollama, settings):
        settings.OLLAMA_BREAKER_FAILURES = 1
        host = self.host()
        hosts.record_failure(host.pk, "first")
        OllamaHost.objects.filter(pk=host.pk).update(breaker_opened_at=timezone.now() - timedelta(hours=1))

        hosts.record_failure(host.pk, "probe failed")

        host.refresh_from_db()
        assert host.breaker_state() == "open"
