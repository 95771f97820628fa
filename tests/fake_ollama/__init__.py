"""A fake Ollama server for tests, demos and benchmarks.

It is a real aiohttp HTTP server speaking Ollama's API (``/api/chat``,
``/api/generate``, ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/embed``,
``/api/version``), so the official ``ollama`` client and anything built on
httpx/aiohttp talk to it unchanged::

    from tests.fake_ollama import FakeOllama

    with FakeOllama() as fake:
        fake.script("Hi there!", model="gpt-oss:20b", thinking="Greet back.")
        client = ollama.Client(host=fake.url)
        for part in client.chat(model="gpt-oss:20b", messages=[...], stream=True, think=True):
            ...
        assert fake.requests[-1].completed

Rules (``fake.script(...)``) are matched newest first and can be limited to a
model, a regex on the last user message and a number of uses. They control
the reply, thinking, tool calls, token counts, pacing (``tokens_per_second``),
latency, model load delay, HTTP errors, broken streams (``break_after``),
hangs (``hang``) and mid-stream errors (``error_in_stream``). Without a
matching rule the model answers ``"Hello from <model>. You said: <message>"``.

Everything the server sees is recorded: ``fake.requests`` (with stream
timings; ``fake.chats`` holds the chats alone) and ``fake.hangups`` (clients that went away early). When the fake
runs in another process the same controls exist over HTTP under ``/_fake/``.

**GPU simulation** (off by default): ``FakeOllama(gpu=GpuConfig(time_scale=0.05))``
or ``fake.simulate_gpu(vram=24 * GB)`` makes requests queue, load and evict
models, and share parallel slots the way Ollama does on one GPU, on a
simulated clock; ``fake.gpu`` has the records (loads, unloads, busy
intervals). Over HTTP: ``POST /_fake/gpu`` (settings), ``GET /_fake/gpu``,
``POST /_fake/gpu/reset``. See ``tests/fake_ollama/gpu.py``.

Standalone: ``python -m tests.fake_ollama --port 11435 --tokens-per-second 30``
(add ``--gpu --time-scale 0.05`` for the GPU simulation).
"""

from .gpu import GB, Busy, GpuConfig, GpuSimulation, Load, Unload
from .server import ApiError, FakeOllama, build_app, parse_keep_alive
from .specs import (
    DEFAULT_MODELS,
    Hangup,
    ModelSpec,
    RecordedRequest,
    Rule,
    canonical_name,
)
from .text import chunk_text, default_embedder, estimate_tokens, hashed_embedding

# ``Script`` reads naturally next to ``fake.script(...)``; both name the same rule type.
Script = Rule

__all__ = [
    "DEFAULT_MODELS",
    "GB",
    "ApiError",
    "Busy",
    "FakeOllama",
    "GpuConfig",
    "GpuSimulation",
    "Hangup",
    "Load",
    "ModelSpec",
    "RecordedRequest",
    "Rule",
    "Script",
    "Unload",
    "build_app",
    "canonical_name",
    "chunk_text",
    "default_embedder",
    "estimate_tokens",
    "hashed_embedding",
    "parse_keep_alive",
]
