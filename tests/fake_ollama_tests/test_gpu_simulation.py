"""The fake Ollama's GPU simulation, driven through the official ``ollama`` client.

Every figure checked is on the simulation's own clock and comes from its
records; nothing here asserts how long the test took. Orders of events
(this unload before that start) are what the scheduler promises, so they
hold however slow the machine is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import httpx
import ollama
import pytest

from tests.fake_ollama import GB, FakeOllama, GpuConfig, ModelSpec
from tests.fake_ollama.__main__ import gpu_config, parse_args

SCALE = 0.02  # 50 simulated seconds a real second
KEPT = "1h"
A, B, C, SMALL = "alpha:10g", "bravo:10g", "charlie:10g", "small:1g"
MODELS = [
    ModelSpec(A, size=10 * GB),
    ModelSpec(B, size=10 * GB),
    ModelSpec(C, size=10 * GB),
    ModelSpec(SMALL, size=1 * GB),
    ModelSpec("embed:1g", ("embedding",), size=1 * GB),
]
RATES = {A: 50.0, B: 50.0, C: 50.0, SMALL: 100.0}
USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    config = GpuConfig(vram=24 * GB, time_scale=SCALE, tokens_per_second=RATES)
    with FakeOllama(models=MODELS, gpu=config) as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=fake.url, timeout=60) as c:
        yield c


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def ask(client: ollama.Client, model: str, **options: object) -> ollama.ChatResponse:
    return client.chat(model=model, messages=USER, stream=False, **options)  # type: ignore[call-overload]


def in_background(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def generating(fake: FakeOllama, model: str) -> int:
    assert fake.gpu is not None
    return sum(row["generating"] for row in fake.gpu.loaded() if row["model"] == model)


class LoadingTests:
    def test_the_first_request_loads_the_model_at_its_size_times_the_load_rate(
        self, fake: FakeOllama, client: ollama.Client
    ) -> None:
        fake.script("Hi.", completion_tokens=100)
        answer = ask(client, A)
        assert fake.gpu is not None
        [load] = fake.gpu.loads
        assert load.model == A
        assert load.seconds >= 10 * 0.5 * 0.99  # 10 GB at 0.5 s/GB, simulated
        assert answer.load_duration is not None and answer.load_duration >= 4.95e9
        # 100 tokens at 50 tokens/s, reported in simulated nanoseconds.
        assert answer.eval_count == 100
        assert answer.eval_duration == pytest.approx(2e9, rel=0.01)
        assert answer.message.content == "Hi."

    def test_a_loaded_model_is_not_loaded_again(self, fake: FakeOllama, client: ollama.Client) -> None:
        ask(client, A)
        second = ask(client, A)
        assert fake.gpu is not None
        assert [load.model for load in fake.gpu.loads] == [A]
        assert second.load_duration is not None and second.load_duration < 1e9

    def test_a_different_context_size_reloads_the_model(self, fake: FakeOllama, client: ollama.Client) -> None:
        ask(client, A, options={"num_ctx": 8192})
        ask(client, A, options={"num_ctx": 16384})
        assert fake.gpu is not None
        assert [load.model for load in fake.gpu.loads] == [A, A]
        assert [(u.model, u.reason) for u in fake.gpu.unloads] == [(A, "reload")]
        assert [m.context_length for m in client.ps().models] == [16384]

    def test_ps_reports_what_is_in_memory_like_ollama(self, fake: FakeOllama, client: ollama.Client) -> None:
        assert client.ps().models == []
        ask(client, A, options={"num_ctx": 8192}, keep_alive="10m")
        [model] = client.ps().models
        assert model.model == A
        assert model.size == model.size_vram == 10 * GB
        assert model.context_length == 8192
        # expires_at is a real moment: about 10 simulated minutes from now, i.e. 12 real seconds.
        assert model.expires_at is not None
        remaining = model.expires_at.timestamp() - time.time()
        assert 0 < remaining <= 600 * SCALE + 1
        show = client.show(A)
        assert show.details is not None and show.details.family == "llama"


class SlotTests:
    def test_two_requests_share_a_model_and_a_third_waits_for_a_slot(
        self, fake: FakeOllama, client: ollama.Client
    ) -> None:
        fake.script("Long.", completion_tokens=500)  # 10 simulated seconds each
        ask(client, A)  # loaded and idle
        threads = [in_background(lambda: ask(client, A)) for _ in range(3)]
        for thread in threads:
            thread.join(timeout=60)
        assert fake.gpu is not None
        busy = sorted(fake.gpu.busy[1:], key=lambda b: b.started)
        assert len(busy) == 3 and all(b.completed for b in busy)
        first, second, third = busy
        assert second.started < first.finished  # two slots: the first two overlap
        assert third.started >= min(first.finished, second.finished)  # the third waited for one
        assert [load.model for load in fake.gpu.loads] == [A]


class EvictionTests:
    def test_at_most_max_loaded_models_and_the_least_recently_used_idle_one_goes(
        self, fake: FakeOllama, client: ollama.Client
    ) -> None:
        assert fake.gpu is not None
        fake.simulate_gpu(fake.gpu.config, max_loaded_models=2)
        ask(client, SMALL)
        ask(client, A)
        ask(client, SMALL)  # SMALL is now the more recently used
        ask(client, B)
        assert fake.gpu is not None
        assert [u.model for u in fake.gpu.unloads] == [A]
        assert fake.gpu.unloads[0].reason == "evicted"
        assert sorted(str(m.model) for m in client.ps().models) == sorted([SMALL, B])

    def test_a_model_that_does_not_fit_waits_and_so_does_everything_behind_it(
        self, fake: FakeOllama, client: ollama.Client
    ) -> None:
        fake.script("Short.", completion_tokens=50)  # the warm-ups, C and the one behind it
        ask(client, A, keep_alive=KEPT)
        ask(client, B, keep_alive=KEPT)  # 20 GB of 24 in use
        assert fake.gpu is not None
        # 200 and 300 simulated seconds (4 and 6 real ones), so that on a loaded machine both answers are
        # still being written when C arrives and A's surely ends first; kept an hour (72 real seconds), so
        # that no model outlives its keep_alive (the default 5 minutes is 6 real seconds here) and the only
        # unload is the eviction.
        fake.script("Long.", completion_tokens=10_000, model=A, times=1)
        fake.script("Long.", completion_tokens=15_000, model=B, times=1)
        # One after the other: with both busy, the victim is the one granted least recently, so B taken before A
        # (two threads racing) would make B the victim, and B's reload for the request behind C a second unload.
        busy_a = in_background(lambda: ask(client, A, keep_alive=KEPT))
        wait_until(lambda: generating(fake, A) == 1)
        busy_b = in_background(lambda: ask(client, B, keep_alive=KEPT))
        wait_until(lambda: generating(fake, B) == 1)
        needs_room = in_background(lambda: ask(client, C, keep_alive=KEPT))
        wait_until(lambda: fake.gpu is not None and fake.gpu.snapshot()["waiting"] == 1)
        behind = in_background(lambda: ask(client, B, keep_alive=KEPT))  # B is loaded and has a free slot, yet it waits
        for thread in (busy_a, busy_b, needs_room, behind):
            thread.join(timeout=60)

        [unload] = fake.gpu.unloads
        assert (unload.model, unload.reason) == (A, "evicted")  # the least recently used, once it was done
        first_a = next(b for b in fake.gpu.busy if b.model == A and b.finished > 1)
        assert unload.at >= first_a.finished
        c_load = next(load for load in fake.gpu.loads if load.model == C)
        assert c_load.started >= unload.at
        b_answers = sorted((b for b in fake.gpu.busy if b.model == B), key=lambda b: b.started)
        assert b_answers[-1].started >= unload.at  # head-of-line: behind C although B was ready


class KeepAliveTests:
    def test_keep_alive_zero_unloads_as_soon_as_the_answer_is_done(
        self, fake: FakeOllama, client: ollama.Client
    ) -> None:
        ask(client, A, keep_alive=0)
        assert fake.gpu is not None
        assert [(u.model, u.reason) for u in fake.gpu.unloads] == [(A, "keep_alive 0")]
        assert client.ps().models == []

    def test_an_idle_model_unloads_when_its_keep_alive_runs_out(self, fake: FakeOllama, client: ollama.Client) -> None:
        ask(client, A, keep_alive="5s")  # simulated: a tenth of a real second
        assert fake.gpu is not None
        wait_until(lambda: fake.gpu is not None and bool(fake.gpu.unloads))
        [unload] = fake.gpu.unloads
        assert (unload.model, unload.reason) == (A, "expired")
        assert unload.at - fake.gpu.busy[-1].finished >= 5 * 0.99
        assert client.ps().models == []

    def test_a_negative_keep_alive_keeps_the_model_for_ever(self, fake: FakeOllama, client: ollama.Client) -> None:
        ask(client, A, keep_alive=-1)
        [model] = client.ps().models
        assert model.expires_at is not None and model.expires_at.year >= datetime.now().year + 50

    def test_an_empty_request_loads_and_one_with_keep_alive_zero_unloads(
        self, fake: FakeOllama, client: ollama.Client
    ) -> None:
        loaded = client.generate(model=A, prompt="", keep_alive="30m")
        assert loaded.done_reason == "load"
        assert [m.model for m in client.ps().models] == [A]
        unloaded = client.generate(model=A, prompt="", keep_alive=0)
        assert unloaded.done_reason == "unload"
        assert client.ps().models == []
        assert fake.gpu is not None and [u.reason for u in fake.gpu.unloads] == ["keep_alive 0"]


class ClientTests:
    def test_a_client_that_leaves_while_queued_never_gets_a_model(self, fake: FakeOllama) -> None:
        fake.script("Long.", completion_tokens=2000, model=A)  # 40 simulated seconds
        first, second = (ollama.Client(host=fake.url, timeout=60) for _ in range(2))
        ask(first, A)
        # Two slots: fill both, then one more has to wait for a slot.
        busy = [in_background(lambda: ask(first, A)), in_background(lambda: ask(second, A))]
        wait_until(lambda: generating(fake, A) == 2)
        with pytest.raises(httpx.ReadTimeout), ollama.Client(host=fake.url, timeout=0.2) as impatient:
            ask(impatient, A)
        hangup = fake.wait_for_hangup(timeout=5)
        assert hangup is not None and hangup.phase == "queue"
        for thread in busy:
            thread.join(timeout=60)
        first.close()
        second.close()
        assert fake.gpu is not None
        assert len([b for b in fake.gpu.busy if b.model == A]) == 3  # the one that left never took a slot

    def test_embeddings_go_through_the_same_gpu(self, fake: FakeOllama, client: ollama.Client) -> None:
        client.embed(model="embed:1g", input=["a", "b"])
        assert fake.gpu is not None
        assert [load.model for load in fake.gpu.loads] == ["embed:1g"]


class ControlTests:
    def test_it_is_off_by_default(self) -> None:
        with FakeOllama() as plain:
            assert plain.gpu is None
            assert httpx.get(f"{plain.url}/_fake/gpu").json() == {"enabled": False}

    def test_the_control_api_turns_it_on_and_reports_its_records(self) -> None:
        with FakeOllama() as plain, ollama.Client(host=plain.url, timeout=60) as client:
            bad = httpx.post(f"{plain.url}/_fake/gpu", json={"vram": 0})
            assert bad.status_code == 400 and "vram" in bad.json()["error"]
            on = httpx.post(f"{plain.url}/_fake/gpu", json={"time_scale": SCALE, "num_parallel": 1})
            assert on.json()["config"]["num_parallel"] == 1
            client.chat(model="rnj-1:8b", messages=USER)
            state = httpx.get(f"{plain.url}/_fake/gpu").json()
            assert state["enabled"] is True
            assert [load["model"] for load in state["loads"]] == ["rnj-1:8b"]
            assert state["loads"][0]["seconds"] >= 5.1 * 0.5 * 0.99  # its real size: 5.1 GB
            assert len(state["busy"]) == 1 and state["loaded"][0]["model"] == "rnj-1:8b"
            assert httpx.post(f"{plain.url}/_fake/gpu/reset").json() == {"ok": True}
            assert httpx.get(f"{plain.url}/_fake/gpu").json()["loads"] == []
            assert client.ps().models == []
            httpx.post(f"{plain.url}/_fake/gpu", json={"enabled": False})
            assert plain.gpu is None

    def test_the_command_line_builds_the_same_settings(self) -> None:
        args = parse_args(["--gpu", "--vram-gb", "16", "--time-scale", "0.05", "--model-rate", "rnj-1:8b=120"])
        config = gpu_config(args)
        assert config is not None
        assert config.vram == 16 * GB and config.time_scale == 0.05
        assert config.rate("rnj-1:8b") == 120.0 and config.rate("magistral:24b") == 40.0
        assert config.num_parallel == 2 and config.max_loaded_models == 3 and config.load_seconds_per_gb == 0.5
        assert gpu_config(parse_args([])) is None

    def test_busy_share_counts_time_when_any_model_works(self, fake: FakeOllama, client: ollama.Client) -> None:
        fake.script("x", completion_tokens=100)  # 2 simulated seconds on A
        ask(client, A)
        assert fake.gpu is not None
        [busy] = fake.gpu.busy
        end = busy.finished + (busy.finished - busy.started)
        assert fake.gpu.busy_share(busy.started, end) == pytest.approx(0.5)
        assert fake.gpu.busy_share(0.0, busy.started) == 0.0
