"""Tests for the fake Ollama server, driven through the official ``ollama`` client.

The point of the fake is that real client code can't tell it from Ollama, so
almost everything here goes over HTTP with ``ollama.Client``/``AsyncClient``.
Timing assertions only use lower bounds (or generous upper bounds on things
the fake itself controls) so a loaded CI machine can't make them flaky.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import ollama
import pytest

from tests.fake_ollama import FakeOllama, ModelSpec, chunk_text, hashed_embedding

REPO_ROOT = Path(__file__).resolve().parents[2]

TRICKY_REPLY = (
    "   Leading spaces,\ttabs\tand [brackets] {braces} (parens).\n"
    "```python\ndef f(x: list[int]) -> dict[str, int]:\n\treturn {'a': x[0]}\n```\n"
    "Unicode: naïve café — 日本語 🎉👩‍💻 done!\n"
)
USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=fake.url) as c:
        yield c


def contents(parts: list[ollama.ChatResponse]) -> str:
    return "".join(p.message.content or "" for p in parts)


# ---------------------------------------------------------------- chunking


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\n", "word", TRICKY_REPLY, "supercalifragilistic  x", "a\r\nb\u00a0c"],
)
def test_chunk_text_round_trips(text: str) -> None:
    assert "".join(chunk_text(text)) == text


def test_chunk_text_is_token_sized() -> None:
    chunks = chunk_text("The quick brown fox jumps over internationalization")
    assert chunks[:3] == ["The ", "quick ", "brown "]
    assert all(len(c.strip()) <= 6 for c in chunks)


# ---------------------------------------------------------------- chat


def test_streamed_chat_is_byte_exact(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(TRICKY_REPLY)
    parts = list(client.chat(model="rnj-1:8b", messages=USER, stream=True))

    assert contents(parts) == TRICKY_REPLY
    assert len(parts) > 10
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].done_reason == "stop"
    assert parts[-1].message.content == ""
    record = fake.requests[-1]
    assert record.completed and record.chunks_sent == len(parts)
    assert record.first_chunk_at is not None and record.last_chunk_at is not None


def test_default_reply_echoes_last_user_message(client: ollama.Client) -> None:
    messages = [*USER, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "ping"}]
    answer = client.chat(model="deepcoder:14b", messages=messages)
    assert answer.message.content == "Hello from deepcoder:14b. You said: ping"


def test_non_streamed_chat_carries_everything(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(TRICKY_REPLY, thinking="Let me think.")
    answer = client.chat(model="gpt-oss:20b", messages=USER, think=True)
    assert answer.done and answer.done_reason == "stop"
    assert answer.message.content == TRICKY_REPLY
    assert answer.message.thinking == "Let me think."
    assert answer.eval_count == len(chunk_text(TRICKY_REPLY))
    assert answer.total_duration and answer.eval_duration and answer.load_duration
    assert fake.requests[-1].body["stream"] is False


def test_thinking_chunks_come_first_and_only_when_asked(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script("The answer is 4.", thinking="Two plus two is four.")
    parts = list(client.chat(model="gpt-oss:20b", messages=USER, stream=True, think="high"))
    kinds = ["thinking" if p.message.thinking else "content" for p in parts if not p.done]
    assert kinds == sorted(kinds, key=lambda k: k != "thinking")  # thinking block first
    assert "".join(p.message.thinking or "" for p in parts) == "Two plus two is four."
    assert contents(parts) == "The answer is 4."

    plain = list(client.chat(model="gpt-oss:20b", messages=USER, stream=True))
    assert not any(p.message.thinking for p in plain)


def test_think_on_model_without_thinking_is_rejected(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="deepcoder:14b", messages=USER, think=True)
    assert exc.value.status_code == 400
    assert exc.value.error == '"deepcoder:14b" does not support thinking'


def test_tool_calls_are_parsed_by_the_client(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    parts = list(client.chat(model="rnj-1:8b", messages=USER, tools=tools, stream=True))
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert parts[-1].done and parts[-1].done_reason == "stop"

    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="deepcoder:14b", messages=USER, tools=tools)
    assert exc.value.status_code == 400 and "does not support tools" in exc.value.error


def test_final_counts_default_and_overrides(fake: FakeOllama, client: ollama.Client) -> None:
    messages = [{"role": "system", "content": "x" * 30}, {"role": "user", "content": "y" * 14}]
    fake.script("one two three")
    final = list(client.chat(model="rnj-1:8b", messages=messages, stream=True))[-1]
    assert final.prompt_eval_count == 44 // 4
    assert final.eval_count == 3

    fake.script("one two three", prompt_tokens=1234, completion_tokens=56)
    final = list(client.chat(model="rnj-1:8b", messages=messages, stream=True))[-1]
    assert (final.prompt_eval_count, final.eval_count) == (1234, 56)


def test_num_predict_truncates_with_done_reason_length(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script("a b c d e f")
    answer = client.chat(model="rnj-1:8b", messages=USER, options={"num_predict": 2})
    assert answer.message.content == "a b " and answer.done_reason == "length"


# ---------------------------------------------------------------- generate


def test_generate_streamed_and_not(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(TRICKY_REPLY, thinking="Hmm.")
    parts = list(client.generate(model="magistral:24b", prompt="hi", stream=True, think=True))
    assert "".join(p.response or "" for p in parts) == TRICKY_REPLY
    assert "".join(p.thinking or "" for p in parts) == "Hmm."
    assert parts[-1].done and parts[-1].eval_count == len(chunk_text(TRICKY_REPLY))

    answer = client.generate(model="magistral:24b", prompt="hi", think=True)
    assert answer.response == TRICKY_REPLY and answer.thinking == "Hmm."
    assert answer.prompt_eval_count == 1


def test_empty_prompt_loads_and_keep_alive_zero_unloads(fake: FakeOllama, client: ollama.Client) -> None:
    assert client.generate(model="rnj-1:8b").done_reason == "load"
    assert [m.model for m in client.ps().models] == ["rnj-1:8b"]
    assert client.generate(model="rnj-1:8b", keep_alive=0).done_reason == "unload"
    assert client.ps().models == []


# ---------------------------------------------------------------- model listing


def test_tags_show_ps_and_version(fake: FakeOllama, client: ollama.Client) -> None:
    names = {m.model for m in client.list().models}
    assert {"gpt-oss:20b", "rnj-1:8b", "qwen3-vl:8b", "all-minilm:latest"} <= names
    details = client.list().models[0].details
    assert details is not None and details.format == "gguf"

    shown = client.show("qwen3-vl:8b")
    assert set(shown.capabilities or []) == {"completion", "vision", "tools", "thinking"}
    info = shown.modelinfo or {}
    assert info[f"{info['general.architecture']}.context_length"] == 262144
    assert client.show("all-minilm").capabilities == ["embedding"]

    assert client.ps().models == []
    client.chat(model="gpt-oss:20b", messages=USER)
    running = client.ps().models
    assert [m.name for m in running] == ["gpt-oss:20b"]
    assert running[0].context_length and running[0].expires_at and running[0].size_vram

    version = httpx.get(f"{fake.url}/api/version").json()
    assert version == {"version": "0.12.0"}


def test_show_accepts_legacy_name_field(fake: FakeOllama) -> None:
    response = httpx.post(f"{fake.url}/api/show", json={"name": "rnj-1:8b"})
    assert response.status_code == 200
    assert response.json()["capabilities"] == ["completion", "tools"]


def test_root_says_ollama_is_running(fake: FakeOllama) -> None:
    assert httpx.get(fake.url).text == "Ollama is running"
    assert httpx.head(fake.url).status_code == 200


def test_add_remove_and_reset_models(fake: FakeOllama, client: ollama.Client) -> None:
    fake.add_model("tiny:1b", capabilities=["completion"], context_length=2048, family="tiny")
    assert (client.show("tiny:1b").modelinfo or {})["tiny.context_length"] == 2048
    fake.remove_model("rnj-1:8b")
    with pytest.raises(ollama.ResponseError):
        client.show("rnj-1:8b")
    fake.reset()
    names = {m.model for m in client.list().models}
    assert "rnj-1:8b" in names and "tiny:1b" not in names


# ---------------------------------------------------------------- embeddings


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embed_default_vectors_are_normalised_and_similar(client: ollama.Client) -> None:
    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly tax filing deadline"]
    result = client.embed(model="all-minilm", input=texts)
    cat, cat2, tax = result.embeddings
    assert len(cat) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in cat)), 1.0, rel_tol=1e-9)
    assert cosine(cat, cat2) > cosine(cat, tax) + 0.3
    assert result.prompt_eval_count and result.total_duration
    assert client.embed(model="all-minilm", input="the cat sat on the mat").embeddings == [
        pytest.approx(hashed_embedding("the cat sat on the mat"))
    ]


def test_embedder_is_pluggable() -> None:
    def embedder(texts: list[str]) -> list[list[float]]:
        return [[float(len(t)), 1.0] for t in texts]

    with FakeOllama(embedder=embedder) as fake, ollama.Client(host=fake.url) as client:
        assert client.embed(model="all-minilm", input=["ab", "abcd"]).embeddings == [
            [2.0, 1.0],
            [4.0, 1.0],
        ]


def test_embed_needs_embedding_capability(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as exc:
        client.embed(model="rnj-1:8b", input="x")
    assert exc.value.status_code == 400 and "does not support embeddings" in exc.value.error


# ---------------------------------------------------------------- errors


def test_unknown_model_is_404_everywhere(client: ollama.Client) -> None:
    calls = [
        lambda: client.chat(model="nope:1b", messages=USER),
        lambda: list(client.chat(model="nope:1b", messages=USER, stream=True)),
        lambda: client.generate(model="nope:1b", prompt="x"),
        lambda: client.show("nope:1b"),
        lambda: client.embed(model="nope:1b", input="x"),
    ]
    for call in calls:
        with pytest.raises(ollama.ResponseError) as exc:
            call()
        assert exc.value.status_code == 404
        assert exc.value.error == "model 'nope:1b' not found"


def test_malformed_json_is_400(fake: FakeOllama) -> None:
    response = httpx.post(f"{fake.url}/api/chat", content=b"{nope")
    assert response.status_code == 400 and "error" in response.json()
    assert fake.requests[-1].status == 400


def test_scripted_error_then_fall_through(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(error=(503, "server busy"), times=1)
    with pytest.raises(ollama.ResponseError) as exc:
        list(client.chat(model="rnj-1:8b", messages=USER, stream=True))
    assert (exc.value.status_code, exc.value.error) == (503, "server busy")
    assert (client.chat(model="rnj-1:8b", messages=USER).message.content or "").startswith("Hello")


def test_error_in_stream_raises_after_content(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script("partial answer", error_in_stream="out of memory")
    received: list[str] = []
    with pytest.raises(ollama.ResponseError, match="out of memory"):
        for part in client.chat(model="rnj-1:8b", messages=USER, stream=True):
            received.append(part.message.content or "")
    assert "".join(received) == "partial answer"


def test_images_are_recorded_and_need_vision(fake: FakeOllama, client: ollama.Client) -> None:
    image = base64.b64encode(b"\x89PNG fake image bytes").decode()
    message = {"role": "user", "content": "what is this?", "images": [image]}
    client.chat(model="qwen3-vl:8b", messages=[message])
    assert fake.requests[-1].images == [image]

    with pytest.raises(ollama.ResponseError) as exc:
        client.chat(model="rnj-1:8b", messages=[message])
    assert exc.value.status_code == 400 and "does not support vision" in exc.value.error


# ---------------------------------------------------------------- rules


def test_rules_match_newest_first_by_model_regex_and_times(fake: FakeOllama, client: ollama.Client) -> None:
    def ask(model: str, text: str) -> str:
        messages = [{"role": "user", "content": text}]
        return client.chat(model=model, messages=messages).message.content or ""

    fake.script("generic")
    fake.script("weather!", match=r"\bweather\b")
    fake.script("coder only", model="deepcoder:14b")
    fake.script("once", match="^once", times=1)

    assert ask("rnj-1:8b", "hello") == "generic"
    assert ask("rnj-1:8b", "the weather today") == "weather!"
    assert ask("deepcoder:14b", "the weather today") == "coder only"
    assert ask("rnj-1:8b", "once more") == "once"
    assert ask("rnj-1:8b", "once more") == "generic"


def test_callable_reply(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(lambda body: body["messages"][-1]["content"].upper())
    assert client.chat(model="rnj-1:8b", messages=USER).message.content == "HELLO THERE"


# ---------------------------------------------------------------- broken streams


def test_break_after_breaks_the_client_stream(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script("one two three four five six", break_after=3)
    received: list[str] = []
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        for part in client.chat(model="rnj-1:8b", messages=USER, stream=True):
            received.append(part.message.content or "")
    assert received == ["one ", "two ", "three "]
    assert not fake.requests[-1].completed
    assert fake.hangups == []  # the server broke it; the client didn't hang up


def test_hang_until_client_times_out_is_a_hangup(fake: FakeOllama) -> None:
    fake.script(hang=True)
    with ollama.Client(host=fake.url, timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        list(impatient.chat(model="rnj-1:8b", messages=USER, stream=True))
    hangup = fake.wait_for_hangup(timeout=2.0)
    assert hangup is not None
    assert (hangup.path, hangup.model, hangup.phase) == ("/api/chat", "rnj-1:8b", "hang")
    assert hangup.chunks_sent == 0


def test_hangup_during_latency(fake: FakeOllama) -> None:
    fake.script(latency=5.0)
    with ollama.Client(host=fake.url, timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.chat(model="rnj-1:8b", messages=USER)
    hangup = fake.wait_for_hangup(timeout=2.0)
    assert hangup is not None and hangup.phase == "latency"


def test_async_client_closing_a_slow_stream_is_noticed_fast(fake: FakeOllama) -> None:
    fake.script("word " * 200, tokens_per_second=30)

    async def read_a_few_then_close() -> float:
        async with ollama.AsyncClient(host=fake.url) as client:
            stream = await client.chat(model="gpt-oss:20b", messages=USER, stream=True)
            seen = 0
            async for _ in stream:
                seen += 1
                if seen == 5:
                    break
            await stream.aclose()
            return time.monotonic()

    closed_at = asyncio.run(read_a_few_then_close())
    hangup = fake.wait_for_hangup(timeout=2.0)
    assert hangup is not None and hangup.phase == "stream"
    assert hangup.monotonic - closed_at < 0.5
    assert 5 <= hangup.chunks_sent < 200
    assert not fake.requests[-1].completed


# ---------------------------------------------------------------- timing


def test_pacing_is_roughly_honoured(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script("a b c d e f g h i j", tokens_per_second=20)
    started = time.monotonic()
    parts = list(client.chat(model="rnj-1:8b", messages=USER, stream=True))
    elapsed = time.monotonic() - started
    assert contents(parts) == "a b c d e f g h i j"
    assert elapsed >= 0.4
    assert (parts[-1].eval_duration or 0) >= 0.45e9  # reported rate is ~20 tok/s, not instant
    record = fake.requests[-1]
    assert record.first_chunk_at is not None and record.last_chunk_at is not None
    assert record.last_chunk_at - record.first_chunk_at >= 0.4


def test_async_streams_interleave(fake: FakeOllama) -> None:
    fake.script("x " * 10, tokens_per_second=50)

    async def three_at_once() -> list[str]:
        async with ollama.AsyncClient(host=fake.url) as client:

            async def one() -> str:
                stream = await client.chat(model="rnj-1:8b", messages=USER, stream=True)
                return "".join([p.message.content or "" async for p in stream])

            return list(await asyncio.gather(one(), one(), one()))

    assert asyncio.run(three_at_once()) == ["x " * 10] * 3
    # Served concurrently, not one after another: every stream started before any ended.
    records = fake.requests
    assert max(r.first_chunk_at or 0 for r in records) < min(r.last_chunk_at or 0 for r in records)


def test_load_delay_is_paid_once(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(load_delay=0.3)
    first = client.chat(model="magistral:24b", messages=USER)
    second = client.chat(model="magistral:24b", messages=USER)
    assert (first.load_duration or 0) >= 0.3e9
    assert (second.load_duration or 0) < 0.1e9
    assert "magistral:24b" in fake.loaded_models


# ---------------------------------------------------------------- waiting helpers


def test_wait_for_requests(fake: FakeOllama, client: ollama.Client) -> None:
    client.list()
    assert [r.path for r in fake.wait_for_requests(1, timeout=1.0)] == ["/api/tags"]
    with pytest.raises(TimeoutError):
        fake.wait_for_requests(5, timeout=0.05)
    assert fake.wait_for_hangup(timeout=0.05) is None


# ---------------------------------------------------------------- HTTP control


def test_http_control_endpoints(fake: FakeOllama, client: ollama.Client) -> None:
    with httpx.Client(base_url=fake.url) as http:
        rule = {"reply": "scripted over HTTP", "model": "rnj-1:8b", "times": 1}
        assert http.post("/_fake/script", json=rule).json()["ok"] is True
        assert http.post("/_fake/script", json={"error": [418, "teapot"], "match": "tea"}).is_success
        assert http.post("/_fake/script", json={"bogus": 1}).status_code == 400

        assert client.chat(model="rnj-1:8b", messages=USER).message.content == "scripted over HTTP"
        with pytest.raises(ollama.ResponseError) as exc:
            client.chat(model="rnj-1:8b", messages=[{"role": "user", "content": "tea?"}])
        assert (exc.value.status_code, exc.value.error) == (418, "teapot")

        model = {"name": "remote:3b", "capabilities": ["completion", "tools"], "context_length": 999}
        assert http.post("/_fake/models", json=model).json()["name"] == "remote:3b"
        assert client.show("remote:3b").capabilities == ["completion", "tools"]

        recorded = http.get("/_fake/requests").json()
        assert [r["path"] for r in recorded][-3:] == ["/api/chat", "/api/chat", "/api/show"]
        assert recorded[0]["body"]["messages"] == USER
        assert http.get("/_fake/hangups").json() == []

        assert http.post("/_fake/reset").json() == {"ok": True}
        assert http.get("/_fake/requests").json() == []
        assert fake.rules == [] and fake.find_model("remote:3b") is None


# ---------------------------------------------------------------- standalone


def test_standalone_entry_point() -> None:
    command = [sys.executable, "-m", "tests.fake_ollama", "--port", "0", "--reply", "Canned."]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:\d+", banner)
            assert match, f"no URL in {banner!r}"
            url = match.group(0)
            assert httpx.get(f"{url}/api/version").json() == {"version": "0.12.0"}
            with ollama.Client(host=url) as client:
                assert client.chat(model="rnj-1:8b", messages=USER).message.content == "Canned."
        finally:
            process.terminate()
            process.wait(timeout=5)
    assert process.returncode == 0


def test_model_spec_normalises_names() -> None:
    assert ModelSpec("all-minilm").name == "all-minilm:latest"
    assert ModelSpec("localhost:5000/foo").name == "localhost:5000/foo:latest"
    with pytest.raises(ValueError):
        ModelSpec("x:1b", capabilities=("telepathy",))
