"""A real HTTP server that speaks Ollama's API, plus the controller tests script it with.

``FakeOllama`` runs an aiohttp application on its own event loop in a
background thread, so synchronous tests, async tests and subprocesses can all
talk to it over TCP exactly as they would to Ollama.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import web

from tests.background import BackgroundServer

from .gpu import GpuConfig, GpuSimulation
from .specs import (
    DEFAULT_MODELS,
    Hangup,
    ModelSpec,
    RecordedRequest,
    Reply,
    Rule,
    canonical_name,
    iter_texts,
)
from .text import Embedder, chunk_text, default_embedder, estimate_tokens

# Hang-ups are noticed by polling the transport; 10 ms keeps detection well
# under the 20 ms budget without burning CPU.
POLL_INTERVAL = 0.01
DEFAULT_KEEP_ALIVE = 300.0
# Ollama 0.12 loads models with a 4096-token window unless num_ctx says otherwise.
DEFAULT_NUM_CTX = 4096
NDJSON = "application/x-ndjson"

RECORD_KEY = web.RequestKey("fake_ollama_record", RecordedRequest)
BODY_KEY = web.RequestKey("fake_ollama_body", object)


class ApiError(Exception):
    """Turned into ``{"error": message}`` with ``status`` by the middleware."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _dumps(obj: Any) -> str:
    # Raw UTF-8 like Ollama (Go's encoder doesn't escape non-ASCII).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status, dumps=_dumps)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _local_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat()


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_keep_alive(value: Any) -> float | None:
    """Seconds to keep a model loaded; ``None`` means forever (negative values).

    Accepts what Ollama accepts: numbers (seconds) and Go durations ("5m", "1h30m").
    """
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool):
        raise ApiError(400, f"invalid keep_alive: {value!r}")
    seconds = float(value) if isinstance(value, int | float) else _parse_duration(str(value).strip())
    return None if seconds < 0 else seconds


def _parse_duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ApiError(400, f'time: invalid duration "{text}"')
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _think_requested(think: Any) -> bool:
    if isinstance(think, str):
        return think.strip().lower() not in ("", "false", "none")
    return bool(think)


def _registry_name(name: str) -> str:
    """Ollama reports some capability errors with the fully qualified name."""
    if name.count("/") >= 2:
        return name
    if "/" in name:
        return f"registry.ollama.ai/{name}"
    return f"registry.ollama.ai/library/{name}"


@dataclass
class _Loaded:
    context_length: int
    keep_alive: float | None
    expires_at: float | None  # time.time(); None while in use or kept forever
    in_use: int = 0


class FakeOllama(BackgroundServer):
    """Controller for one fake Ollama server; see the package docstring for usage."""

    name = "fake Ollama"

    def __init__(
        self,
        port: int = 0,
        models: Iterable[ModelSpec | str] | None = None,
        version: str = "0.12.0",
        embedder: Embedder | None = None,
        *,
        host: str = "127.0.0.1",
        default: Rule | None = None,
        gpu: GpuConfig | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.version = version
        self.embedder: Embedder = embedder or default_embedder
        # What happens when no scripted rule matches (the CLI sets pacing here).
        self.default_rule = default or Rule()
        self._initial_models = tuple(
            m if isinstance(m, ModelSpec) else ModelSpec(m) for m in (DEFAULT_MODELS if models is None else models)
        )
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._models: dict[str, ModelSpec] = {m.name: m for m in self._initial_models}
        self._rules: list[Rule] = []
        self._requests: list[RecordedRequest] = []
        self._hangups: list[Hangup] = []
        self._hangup_cursor = 0
        self._loaded: dict[str, _Loaded] = {}
        self._gpu = GpuSimulation(gpu, lambda: self._loop) if gpu is not None else None
        self.stopping = False

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        return build_app(self)

    def start(self) -> Self:
        self.stopping = False
        return super().start()

    def stop(self) -> None:
        """Stop serving; open streams and hangs end without being recorded as hang-ups."""
        self.stopping = True
        super().stop()

    # ------------------------------------------------------------------ GPU simulation

    @property
    def gpu(self) -> GpuSimulation | None:
        """The GPU simulation (``tests.fake_ollama.gpu``), or None while it is off (the default)."""
        return self._gpu

    def simulate_gpu(self, config: GpuConfig | None = None, **settings: Any) -> GpuSimulation:
        """Turn the GPU simulation on (or replace it): ``config``, or ``GpuConfig(**settings)``.

        Call it while nothing is running; models loaded before are forgotten.
        """
        if config is None:
            config = GpuConfig.from_json(settings)
        elif settings:
            config = GpuConfig.from_json(config.to_json() | settings)
        with self._lock:
            self._loaded.clear()
        self._gpu = GpuSimulation(config, lambda: self._loop)
        return self._gpu

    def stop_simulating_gpu(self) -> None:
        """Back to the plain fake: models load after their rule's ``load_delay`` and never run out of room."""
        self._gpu = None

    # ------------------------------------------------------------------ models

    def add_model(
        self,
        name: str | ModelSpec,
        capabilities: Iterable[str] = ("completion",),
        context_length: int = 8192,
        size: int = 4_920_000_000,
        family: str = "llama",
        **extra: Any,
    ) -> ModelSpec:
        """Register (or replace) a model; ``extra`` takes other ``ModelSpec`` fields."""
        spec = (
            name
            if isinstance(name, ModelSpec)
            else ModelSpec(
                name,
                tuple(capabilities),
                context_length=context_length,
                size=size,
                family=family,
                **extra,
            )
        )
        with self._lock:
            self._models[spec.name] = spec
        return spec

    def remove_model(self, name: str) -> None:
        with self._lock:
            self._models.pop(canonical_name(name), None)
            self._loaded.pop(canonical_name(name), None)

    @property
    def models(self) -> list[ModelSpec]:
        with self._lock:
            return list(self._models.values())

    def find_model(self, name: str) -> ModelSpec | None:
        with self._lock:
            return self._models.get(canonical_name(name))

    @property
    def loaded_models(self) -> list[str]:
        if self._gpu is not None:
            return self._gpu.loaded_names()
        with self._lock:
            self._prune_loaded()
            return list(self._loaded)

    def unload(self, name: str | None = None) -> None:
        """Forget loaded models (all of them by default) so load delays apply again.

        With the GPU simulation, each one unloads as soon as it is idle (as with ``keep_alive: 0``).
        """
        if self._gpu is not None:
            self._gpu.unload(name)
            return
        with self._lock:
            if name is None:
                self._loaded.clear()
            else:
                self._loaded.pop(canonical_name(name), None)

    # ------------------------------------------------------------------ scripting

    def script(
        self,
        reply: Reply | None = None,
        *,
        model: str | None = None,
        match: str | re.Pattern[str] | None = None,
        times: int | None = None,
        thinking: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        tokens_per_second: float | None = None,
        latency: float = 0.0,
        load_delay: float = 0.0,
        error: tuple[int, str] | None = None,
        break_after: int | None = None,
        hang: bool = False,
        error_in_stream: str | None = None,
        endpoints: Iterable[str] = ("chat", "generate"),
    ) -> Rule:
        """Add a rule; rules are tried newest first and the first that applies wins.

        Which requests it applies to:
          ``model`` (exact name, ``:latest`` implied), ``match`` (regex searched in
          the last user message / prompt / last embed input), ``times`` (uses
          before it falls through), ``endpoints`` (``chat``/``generate``/``embed``).
        What the answer looks like:
          ``reply`` (text, or a callable given the request body; ``None`` keeps
          the echo reply), ``thinking`` (only sent when the request asks to
          think), ``tool_calls`` (``[{"name", "arguments"}]``, chat only),
          ``prompt_tokens``/``completion_tokens`` (override the final counts).
        How it is delivered:
          ``tokens_per_second`` (``None`` = instant), ``latency`` (before the
          response starts), ``load_delay`` (once, while the model isn't loaded),
          ``error=(status, message)``, ``break_after`` (abort the connection after
          that many content chunks), ``hang`` (send headers, then nothing),
          ``error_in_stream`` (an ``{"error"}`` line after the content).
        With the GPU simulation on, loading is the simulation's (``load_delay``
        does not apply) and the answer takes its simulated time, paced over its
        pieces: ``completion_tokens`` at ``tokens_per_second`` (simulated) when
        given, else at the model's rate in ``GpuConfig.tokens_per_second``.
        """
        rule = Rule(
            reply=reply,
            model=model,
            match=match,
            times=times,
            thinking=thinking,
            tool_calls=tool_calls,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            tokens_per_second=tokens_per_second,
            latency=latency,
            load_delay=load_delay,
            error=error,
            break_after=break_after,
            hang=hang,
            error_in_stream=error_in_stream,
            endpoints=tuple(endpoints),
        )
        return self.add_rule(rule)

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def match_rule(self, endpoint: str, model: str, text: str, *, consume: bool = True) -> Rule:
        with self._lock:
            for rule in reversed(self._rules):
                if rule.applies_to(endpoint, model, text):
                    if consume:
                        rule.used += 1
                    return rule
        if endpoint in self.default_rule.endpoints:
            return self.default_rule
        return Rule(endpoints=(endpoint,))

    def reset(self) -> None:
        """Drop rules, records and loaded state; models go back to the initial set."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()
            self._hangups.clear()
            self._hangup_cursor = 0
            self._loaded.clear()
            self._models = {m.name: m for m in self._initial_models}
        if self._gpu is not None:
            self._gpu.reset()

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the recorded ``/api/*`` requests (the records stay live)."""
        with self._lock:
            return list(self._requests)

    @property
    def chats(self) -> list[RecordedRequest]:
        """The recorded ``/api/chat`` requests only.

        A running system also asks ``/api/ps`` and ``/api/tags`` on its own
        schedule, so "the last request" is not "the last chat" there.
        """
        with self._lock:
            return [r for r in self._requests if r.path == "/api/chat"]

    @property
    def hangups(self) -> list[Hangup]:
        with self._lock:
            return list(self._hangups)

    def wait_for_requests(self, n: int, timeout: float = 2.0) -> list[RecordedRequest]:
        """Block until ``n`` requests were received; raises ``TimeoutError`` otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"expected {n} requests within {timeout} s, got {len(self._requests)}")
            return list(self._requests)

    def wait_for_hangup(self, timeout: float = 2.0) -> Hangup | None:
        """Return the oldest hang-up not returned yet, waiting up to ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._hangups) > self._hangup_cursor, timeout):
                return None
            hangup = self._hangups[self._hangup_cursor]
            self._hangup_cursor += 1
            return hangup

    def record_request(self, record: RecordedRequest) -> RecordedRequest:
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def record_hangup(self, hangup: Hangup) -> None:
        with self._changed:
            self._hangups.append(hangup)
            self._changed.notify_all()

    def update_record(self, record: RecordedRequest, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(record, key, value)

    # ------------------------------------------------------------------ loaded models

    def is_loaded(self, name: str) -> bool:
        if self._gpu is not None:
            return self._gpu.is_loaded(name)
        with self._lock:
            self._prune_loaded()
            return canonical_name(name) in self._loaded

    def begin_use(self, name: str, keep_alive: float | None, context_length: int) -> None:
        with self._lock:
            entry = self._loaded.setdefault(name, _Loaded(context_length, keep_alive, expires_at=None))
            entry.in_use += 1
            entry.keep_alive = keep_alive
            entry.expires_at = None

    def end_use(self, name: str) -> None:
        # Ollama starts the keep_alive countdown when the last request finishes.
        with self._lock:
            entry = self._loaded.get(name)
            if entry is None:
                return
            entry.in_use = max(0, entry.in_use - 1)
            if entry.in_use == 0 and entry.keep_alive is not None:
                entry.expires_at = time.time() + entry.keep_alive

    def running_models(self) -> list[tuple[ModelSpec, _Loaded]]:
        with self._lock:
            self._prune_loaded()
            return [(self._models[name], entry) for name, entry in self._loaded.items() if name in self._models]

    def _prune_loaded(self) -> None:
        now = time.time()
        for name in [
            n for n, e in self._loaded.items() if e.in_use == 0 and e.expires_at is not None and e.expires_at <= now
        ]:
            del self._loaded[name]


# ====================================================================== per-request


class _Exchange:
    """One in-flight request: waits that notice hang-ups, NDJSON writes, aborts."""

    def __init__(self, fake: FakeOllama, request: web.Request, model: str | None) -> None:
        self.fake = fake
        self.request = request
        self.record = request[RECORD_KEY]
        self.model = model
        self.response: web.StreamResponse | None = None
        self.alive = True

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def _lost(self, phase: str) -> bool:
        if self.alive:
            self.alive = False
            if not self.fake.stopping:
                self.fake.record_hangup(
                    Hangup(
                        path=self.request.path,
                        model=self.model,
                        at=time.time(),
                        monotonic=time.monotonic(),
                        chunks_sent=self.record.chunks_sent,
                        phase=phase,
                    )
                )
        return False

    def check(self, phase: str) -> bool:
        if self.fake.stopping:
            self.alive = False
            return False
        if self._client_gone():
            return self._lost(phase)
        return self.alive

    async def wait_until(self, deadline: float, phase: str) -> bool:
        """Sleep until ``deadline`` (monotonic); False as soon as the client is gone."""
        while self.check(phase):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
        return False

    async def wait(self, seconds: float, phase: str) -> bool:
        if seconds <= 0:
            return self.check(phase)
        return await self.wait_until(time.monotonic() + seconds, phase)

    async def pace(self, start: float, index: int, tokens_per_second: float | None) -> bool:
        # Scheduling against ``start`` keeps rounding drift from accumulating.
        if tokens_per_second is None:
            await asyncio.sleep(0)  # let other streams interleave
            return self.check("stream")
        return await self.wait_until(start + index / tokens_per_second, "stream")

    async def open_stream(self) -> bool:
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        response.enable_chunked_encoding()
        self.response = response
        try:
            await response.prepare(self.request)
        except ConnectionResetError:
            return self._lost("stream")
        return True

    async def send_line(self, obj: Mapping[str, Any]) -> bool:
        assert self.response is not None
        if not self.check("stream"):
            return False
        try:
            await self.response.write((_dumps(obj) + "\n").encode())
        except ConnectionResetError:
            return self._lost("stream")
        now = time.time()
        self.fake.update_record(
            self.record,
            chunks_sent=self.record.chunks_sent + 1,
            first_chunk_at=self.record.first_chunk_at or now,
            last_chunk_at=now,
        )
        return True

    async def finish(self) -> web.StreamResponse:
        assert self.response is not None
        try:
            await self.response.write_eof()
        except ConnectionResetError:
            self._lost("stream")
        return self.response

    def abort(self) -> web.StreamResponse:
        """Kill the TCP connection so the client sees a broken stream, not an end."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.alive = False
        # Whatever is returned, aiohttp swallows the write error on the dead socket.
        return self.response or web.Response(status=500)

    def bail(self) -> web.StreamResponse:
        """Give up on this request: the client left, or the server is stopping.

        Aborting matters for the latter: returning normally would let aiohttp end
        the chunked body cleanly and a half-sent stream would look complete.
        """
        return self.abort()


@dataclass
class _Plan:
    """Everything one chat/generate answer will contain, decided up front."""

    endpoint: str
    model: str
    thinking: list[str]
    content: list[str]
    tool_calls: list[dict[str, Any]] | None
    prompt_tokens: int
    completion_tokens: int
    done_reason: str
    rule: Rule
    received: float  # monotonic
    load_ns: int
    prompt_ns: int
    sim: _SimTimes | None = None  # set when the GPU simulation decides the durations

    def pace(self) -> float | None:
        """Pieces per real second (None: as fast as possible)."""
        if self.sim is None:
            return self.rule.tokens_per_second
        real = self.sim.gpu.real_seconds(self.sim.eval)
        return len(self.pieces()) / real if real > 0 else None

    def pieces(self) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = [("thinking", t) for t in self.thinking]
        items += [("content", c) for c in self.content]
        if self.tool_calls and self.endpoint == "chat":
            items.append(("tool_calls", self.tool_calls))
        return items

    def chunk(self, kind: str, payload: Any) -> dict[str, Any]:
        head = {"model": self.model, "created_at": _utc_now()}
        if self.endpoint == "generate":
            if kind == "thinking":
                return head | {"response": "", "thinking": payload, "done": False}
            return head | {"response": payload, "done": False}
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if kind == "thinking":
            message["thinking"] = payload
        elif kind == "tool_calls":
            message["tool_calls"] = payload
        else:
            message["content"] = payload
        return head | {"message": message, "done": False}

    def final(self, eval_ns: int, *, full: bool) -> dict[str, Any]:
        """The ``done`` object; ``full`` also carries the whole answer (stream=false)."""
        content = "".join(self.content) if full else ""
        thinking = "".join(self.thinking) if full else ""
        head: dict[str, Any] = {"model": self.model, "created_at": _utc_now()}
        if self.endpoint == "generate":
            head["response"] = content
            if thinking:
                head["thinking"] = thinking
        else:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if full and self.tool_calls:
                message["tool_calls"] = self.tool_calls
            head["message"] = message
        head |= {"done": True, "done_reason": self.done_reason}
        if self.endpoint == "generate":
            head["context"] = list(range(1, min(self.prompt_tokens + self.completion_tokens, 32) + 1))
        return head | self.stats(eval_ns)

    def stats(self, eval_ns: int) -> dict[str, int]:
        if self.sim is not None:
            # Simulated seconds, like every figure of the simulation.
            sim = self.sim
            return {
                "total_duration": _ns(sim.gpu.now() - sim.received),
                "load_duration": _ns(sim.load),
                "prompt_eval_count": self.prompt_tokens,
                "prompt_eval_duration": _ns(sim.prompt),
                "eval_count": self.completion_tokens,
                "eval_duration": _ns(sim.eval),
            }
        total = int((time.monotonic() - self.received) * 1e9)
        return {
            "total_duration": max(total, self.load_ns + self.prompt_ns + eval_ns),
            "load_duration": self.load_ns,
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": self.prompt_ns,
            "eval_count": self.completion_tokens,
            "eval_duration": eval_ns,
        }


@dataclass
class _SimTimes:
    """One answer's simulated durations (seconds) and the clock they are on."""

    gpu: GpuSimulation
    received: float
    load: float
    prompt: float
    eval: float


def _context_length(body: dict[str, Any], spec: ModelSpec) -> int:
    options = body.get("options") or {}
    num_ctx = options.get("num_ctx") if isinstance(options, dict) else None
    return int(num_ctx) if num_ctx else min(DEFAULT_NUM_CTX, spec.context_length)


def _ns(seconds: float) -> int:
    return max(1, int(seconds * 1e9))


# ====================================================================== the app

FAKE_KEY = web.AppKey("fake_ollama", FakeOllama)


@web.middleware
async def _record_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Record every ``/api/*`` request and turn ``ApiError`` into Ollama's error shape."""
    if not request.path.startswith("/api/"):
        return await _errors_as_json(request, handler)
    fake: FakeOllama = request.app[FAKE_KEY]
    received_at, received_mono = time.time(), time.monotonic()
    body, problem = await _read_body(request)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    record = fake.record_request(
        RecordedRequest(
            request.method, request.path, body, received_at, received_mono, client_port=peer[1] if peer else None
        )
    )
    request[RECORD_KEY] = record
    request[BODY_KEY] = body
    try:
        if problem is not None:
            response: web.StreamResponse = _json({"error": problem}, status=400)
        else:
            response = await _errors_as_json(request, handler)
    except web.HTTPException as exc:
        fake.update_record(record, status=exc.status)
        raise
    fake.update_record(record, status=response.status)
    return response


async def _errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _json({"error": exc.message}, status=exc.status)


async def _read_body(request: web.Request) -> tuple[Any, str | None]:
    if request.method not in ("POST", "PUT", "DELETE"):
        return None, None
    raw = await request.read()
    if not raw.strip():
        return None, "missing request body" if request.method == "POST" else None
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"invalid character in request body: {exc}"


def _body(request: web.Request) -> dict[str, Any]:
    body = request.get(BODY_KEY)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, f"json: cannot unmarshal {type(body).__name__} into request object")
    return body


class _Api:
    """Ollama's endpoints, backed by one ``FakeOllama``."""

    def __init__(self, fake: FakeOllama) -> None:
        self.fake = fake

    # ---------------------------------------------------------------- simple ones

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version(self, request: web.Request) -> web.Response:
        return _json({"version": self.fake.version})

    async def tags(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": spec.name,
                "model": spec.name,
                "modified_at": spec.modified_at,
                "size": spec.size,
                "digest": spec.digest,
                "details": spec.details(),
            }
            for spec in self.fake.models
        ]
        return _json({"models": models})

    async def show(self, request: web.Request) -> web.Response:
        body = _body(request)
        spec = self._require_model(body.get("model") or body.get("name"))
        return _json(
            {
                "license": "",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {spec.name}\n'
                'TEMPLATE """{{ .Prompt }}"""\n',
                "parameters": "temperature 1",
                "template": "{{ .Prompt }}",
                "details": spec.details(),
                "model_info": spec.model_info(),
                "capabilities": list(spec.capabilities),
                "modified_at": spec.modified_at,
            }
        )

    async def ps(self, request: web.Request) -> web.Response:
        if self.fake.gpu is not None:
            return _json({"models": self._ps_on_gpu(self.fake.gpu)})
        now = time.time()
        models = []
        for spec, entry in self.fake.running_models():
            if entry.keep_alive is None:
                expires = now + 100 * 365 * 86400  # "forever", as a far-future date
            else:
                expires = entry.expires_at or now + entry.keep_alive
            models.append(
                {
                    "name": spec.name,
                    "model": spec.name,
                    "size": spec.size,
                    "digest": spec.digest,
                    "details": spec.details(),
                    "expires_at": _local_time(expires),
                    "size_vram": spec.size,
                    "context_length": entry.context_length,
                }
            )
        return _json({"models": models})

    def _ps_on_gpu(self, gpu: GpuSimulation) -> list[dict[str, Any]]:
        models = []
        for row in gpu.loaded():
            spec = self.fake.find_model(row["model"])
            if spec is None:
                continue
            expires = row["expires_at"]
            # Clients compare expires_at with their own clock: the real moment it will happen.
            wall = time.time() + 100 * 365 * 86400 if expires is None else gpu.wall_time(expires)
            models.append(
                {
                    "name": spec.name,
                    "model": spec.name,
                    "size": spec.size,
                    "digest": spec.digest,
                    "details": spec.details(),
                    "expires_at": _local_time(wall),
                    "size_vram": spec.size,
                    "context_length": row["context_length"],
                }
            )
        # Ollama lists the model that stays longest first.
        models.sort(key=lambda m: m["expires_at"], reverse=True)
        return models

    # ---------------------------------------------------------------- chat / generate

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "chat")

    async def generate(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "generate")

    async def _complete(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        body = _body(request)
        model = body.get("model")
        spec = self._require_model(model)
        assert isinstance(model, str)
        messages = _messages(body) if endpoint == "chat" else []
        _check_capabilities(endpoint, spec, model, body, messages)
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        text = _last_user_text(messages) if endpoint == "chat" else str(body.get("prompt") or "")
        ex = _Exchange(self.fake, request, model)

        if (endpoint == "chat" and not messages) or (endpoint == "generate" and not text and not body.get("images")):
            rule = self.fake.match_rule(endpoint, model, text, consume=False)
            return await self._load_only(ex, endpoint, spec, body, rule, keep_alive)

        rule = self.fake.match_rule(endpoint, model, text)
        latency_start = time.monotonic()
        if not await ex.wait(rule.latency, "latency"):
            return ex.bail()
        prompt_ns = _ns(time.monotonic() - latency_start)
        if rule.error is not None:
            raise ApiError(*rule.error)
        streaming = body.get("stream") is not False
        if rule.hang:
            return await self._hang(ex, streaming)

        if self.fake.gpu is not None:
            return await self._complete_on_gpu(
                self.fake.gpu, ex, endpoint, spec, model, body, messages, text, rule, keep_alive, streaming
            )
        load_ns = await self._load(ex, spec, body, rule, keep_alive)
        if load_ns is None:
            return ex.bail()
        try:
            plan = _plan(
                endpoint,
                spec,
                model,
                body,
                messages,
                text,
                rule,
                ex,
                load_ns,
                prompt_ns,
            )
            if streaming:
                return await self._stream(ex, plan)
            return await self._respond_once(ex, plan)
        finally:
            self.fake.end_use(spec.name)

    async def _complete_on_gpu(
        self,
        gpu: GpuSimulation,
        ex: _Exchange,
        endpoint: str,
        spec: ModelSpec,
        model: str,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        text: str,
        rule: Rule,
        keep_alive: float | None,
        streaming: bool,
    ) -> web.StreamResponse:
        """A chat/generate answer through the simulated GPU: queue, load, a slot, then simulated generation."""
        lease = await gpu.acquire(
            spec, keep_alive=keep_alive, context_length=_context_length(body, spec), alive=ex.check
        )
        if lease is None:
            return ex.bail()
        completed = False
        try:
            plan = _plan(endpoint, spec, model, body, messages, text, rule, ex, 0, 0)
            tokens = plan.completion_tokens
            options = body.get("options")
            num_predict = options.get("num_predict") if isinstance(options, dict) else None
            if isinstance(num_predict, int) and 0 < num_predict < tokens:
                # The model stops at num_predict whatever the rule says it would have written.
                tokens = plan.completion_tokens = num_predict
                plan.done_reason = "length"
            prompt_seconds = plan.prompt_tokens / gpu.config.prompt_tokens_per_second
            rate = rule.tokens_per_second or gpu.config.rate(spec.name)
            plan.sim = _SimTimes(
                gpu=gpu,
                received=gpu.sim_time(ex.record.received_at),
                load=lease.load_seconds,
                prompt=prompt_seconds,
                eval=tokens / rate,
            )
            # The answer's pieces spread evenly over the simulated generation, in real time.
            if not await ex.wait(gpu.real_seconds(prompt_seconds), "stream"):
                return ex.bail()
            response = await (self._stream(ex, plan) if streaming else self._respond_once(ex, plan))
            completed = ex.record.completed
            return response
        finally:
            gpu.release(lease, completed=completed)

    async def _load(
        self,
        ex: _Exchange,
        spec: ModelSpec,
        body: dict[str, Any],
        rule: Rule,
        keep_alive: float | None,
    ) -> int | None:
        """Pay the load delay if the model isn't loaded; returns load_duration in ns."""
        started = time.monotonic()
        if not self.fake.is_loaded(spec.name) and not await ex.wait(rule.load_delay, "load"):
            return None
        self.fake.begin_use(spec.name, keep_alive, _context_length(body, spec))
        return _ns(time.monotonic() - started)

    async def _load_only(
        self,
        ex: _Exchange,
        endpoint: str,
        spec: ModelSpec,
        body: dict[str, Any],
        rule: Rule,
        keep_alive: float | None,
    ) -> web.StreamResponse:
        # Ollama's way to preload (or, with keep_alive 0, unload) a model:
        # an empty prompt/messages list answers at once with done_reason load/unload.
        gpu = self.fake.gpu
        if gpu is not None and keep_alive == 0:
            gpu.load_only_unload(spec.name)
            reason = "unload"
        elif gpu is not None:
            lease = await gpu.acquire(
                spec, keep_alive=keep_alive, context_length=_context_length(body, spec), alive=ex.check, slot=False
            )
            if lease is None:
                return ex.bail()
            gpu.release(lease)
            reason = "load"
        elif keep_alive == 0:
            self.fake.unload(spec.name)
            reason = "unload"
        else:
            if await self._load(ex, spec, body, rule, keep_alive) is None:
                return ex.bail()
            self.fake.end_use(spec.name)
            reason = "load"
        answer: dict[str, Any] = {"model": body["model"], "created_at": _utc_now()}
        if endpoint == "chat":
            answer["message"] = {"role": "assistant", "content": ""}
        else:
            answer["response"] = ""
        answer |= {"done": True, "done_reason": reason}
        return _json(answer)

    async def _hang(self, ex: _Exchange, streaming: bool) -> web.StreamResponse:
        if streaming and not await ex.open_stream():
            return ex.bail()
        await ex.wait_until(float("inf"), "hang")
        return ex.bail()

    async def _stream(self, ex: _Exchange, plan: _Plan) -> web.StreamResponse:
        if not await ex.open_stream():
            return ex.bail()
        rule, tps = plan.rule, plan.pace()
        start = time.monotonic()
        pieces = plan.pieces()
        content_sent = 0
        for index, (kind, payload) in enumerate(pieces):
            if not await ex.pace(start, index, tps):
                return ex.bail()
            if kind == "content" and _should_break(rule, content_sent):
                return ex.abort()
            if not await ex.send_line(plan.chunk(kind, payload)):
                return ex.bail()
            content_sent += kind == "content"
        if not await ex.pace(start, len(pieces), tps):
            return ex.bail()
        if rule.break_after is not None:
            # The reply had fewer chunks than break_after: still break before done.
            return ex.abort()
        if rule.error_in_stream is not None:
            await ex.send_line({"error": rule.error_in_stream})
            return await ex.finish()
        final = plan.final(_ns(time.monotonic() - start), full=False)
        self.fake.update_record(ex.record, completed=True)
        if not await ex.send_line(final):
            self.fake.update_record(ex.record, completed=False)
            return ex.bail()
        return await ex.finish()

    async def _respond_once(self, ex: _Exchange, plan: _Plan) -> web.StreamResponse:
        rule, tps = plan.rule, plan.pace()
        start = time.monotonic()
        generation = plan.sim.gpu.real_seconds(plan.sim.eval) if plan.sim else len(plan.pieces()) / tps if tps else 0.0
        if not await ex.wait(generation, "stream"):
            return ex.bail()
        if rule.break_after is not None:
            return ex.abort()
        if rule.error_in_stream is not None:
            raise ApiError(500, rule.error_in_stream)
        answer = plan.final(_ns(time.monotonic() - start), full=True)
        now = time.time()
        self.fake.update_record(
            ex.record,
            completed=True,
            chunks_sent=1,
            first_chunk_at=now,
            last_chunk_at=now,
        )
        return _json(answer)

    # ---------------------------------------------------------------- embeddings

    async def embed(self, request: web.Request) -> web.StreamResponse:
        body = _body(request)
        texts = _embed_inputs(body.get("input"))
        return await self._embed(request, body, texts, legacy=False)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = _body(request)
        return await self._embed(request, body, [str(body.get("prompt") or "")], legacy=True)

    async def _embed(
        self,
        request: web.Request,
        body: dict[str, Any],
        texts: list[str],
        *,
        legacy: bool,
    ) -> web.StreamResponse:
        model = body.get("model")
        spec = self._require_model(model)
        assert isinstance(model, str)
        if not spec.has("embedding"):
            raise ApiError(400, f'"{model}" does not support embeddings')
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        ex = _Exchange(self.fake, request, model)
        rule = self.fake.match_rule("embed", model, texts[-1] if texts else "")
        if not await ex.wait(rule.latency, "latency"):
            return ex.bail()
        if rule.error is not None:
            raise ApiError(*rule.error)
        if rule.hang:
            return await self._hang(ex, streaming=False)
        gpu = self.fake.gpu
        if gpu is not None:
            lease = await gpu.acquire(
                spec, keep_alive=keep_alive, context_length=_context_length(body, spec), alive=ex.check
            )
            if lease is None:
                return ex.bail()
            load_ns = _ns(lease.load_seconds)
            try:
                tokens = estimate_tokens(texts) if texts else 0
                if not await ex.wait(gpu.real_seconds(tokens / gpu.config.prompt_tokens_per_second), "stream"):
                    return ex.bail()
                vectors = await self._run_embedder(texts) if texts else []
            finally:
                gpu.release(lease)
        else:
            loaded_ns = await self._load(ex, spec, body, rule, keep_alive)
            if loaded_ns is None:
                return ex.bail()
            load_ns = loaded_ns
            try:
                vectors = await self._run_embedder(texts) if texts else []
            finally:
                self.fake.end_use(spec.name)
        now = time.time()
        self.fake.update_record(
            ex.record,
            completed=True,
            chunks_sent=1,
            first_chunk_at=now,
            last_chunk_at=now,
        )
        if legacy:
            return _json({"embedding": vectors[0] if vectors else []})
        total_ns = _ns(time.monotonic() - ex.record.received_monotonic)
        return _json(
            {
                "model": model,
                "embeddings": vectors,
                "total_duration": max(total_ns, load_ns),
                "load_duration": load_ns,
                "prompt_eval_count": estimate_tokens(texts) if texts else 0,
            }
        )

    async def _run_embedder(self, texts: list[str]) -> list[list[float]]:
        # A real sentence-transformer takes a while; keep the loop free for streams.
        loop = asyncio.get_running_loop()
        try:
            vectors = await loop.run_in_executor(None, self.fake.embedder, texts)
        except Exception as exc:
            raise ApiError(500, f"embedder failed: {exc}") from exc
        return [[float(x) for x in vector] for vector in vectors]

    # ---------------------------------------------------------------- control API

    async def control_script(self, request: web.Request) -> web.Response:
        try:
            rule = Rule.from_json(await _control_json(request))
        except (TypeError, ValueError, KeyError) as exc:
            raise ApiError(400, f"bad rule: {exc}") from exc
        self.fake.add_rule(rule)
        return _json({"ok": True, "rules": len(self.fake.rules)})

    async def control_reset(self, request: web.Request) -> web.Response:
        self.fake.reset()
        return _json({"ok": True})

    async def control_requests(self, request: web.Request) -> web.Response:
        return _json([r.to_json() for r in self.fake.requests])

    async def control_hangups(self, request: web.Request) -> web.Response:
        return _json([h.to_json() for h in self.fake.hangups])

    async def control_add_model(self, request: web.Request) -> web.Response:
        try:
            spec = ModelSpec.from_json(await _control_json(request))
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"bad model: {exc}") from exc
        self.fake.add_model(spec)
        return _json({"ok": True, "name": spec.name})

    async def control_remove_model(self, request: web.Request) -> web.Response:
        data = await _control_json(request)
        self.fake.remove_model(str(data.get("name") or data.get("model")))
        return _json({"ok": True})

    async def control_gpu(self, request: web.Request) -> web.Response:
        gpu = self.fake.gpu
        return _json({"enabled": False} if gpu is None else {"enabled": True} | gpu.snapshot())

    async def control_simulate_gpu(self, request: web.Request) -> web.Response:
        data = await _control_json(request)
        if data.pop("enabled", True) is False:
            self.fake.stop_simulating_gpu()
            return _json({"ok": True, "enabled": False})
        try:
            gpu = self.fake.simulate_gpu(GpuConfig.from_json(data))
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"bad GPU settings: {exc}") from exc
        return _json({"ok": True, "enabled": True, "config": gpu.config.to_json()})

    async def control_gpu_reset(self, request: web.Request) -> web.Response:
        gpu = self.fake.gpu
        if gpu is None:
            raise ApiError(409, "the GPU simulation is off; turn it on with POST /_fake/gpu")
        gpu.reset()
        return _json({"ok": True})

    # ---------------------------------------------------------------- helpers

    def _require_model(self, model: Any) -> ModelSpec:
        if not isinstance(model, str) or not model:
            raise ApiError(400, "model is required")
        spec = self.fake.find_model(model)
        if spec is None:
            raise ApiError(404, f"model '{model}' not found")
        return spec


async def _control_json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object")
    return data


def _should_break(rule: Rule, content_sent: int) -> bool:
    return rule.break_after is not None and content_sent >= rule.break_after


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "messages must be a list of objects")
    for message in messages:
        if not isinstance(message.get("role"), str):
            raise ApiError(400, "every message needs a role")
    return messages


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _images(body: dict[str, Any], messages: list[dict[str, Any]]) -> list[Any]:
    found: list[Any] = list(body.get("images") or [])
    for message in messages:
        found.extend(message.get("images") or [])
    return found


def _check_capabilities(
    endpoint: str,
    spec: ModelSpec,
    model: str,
    body: dict[str, Any],
    messages: list[dict[str, Any]],
) -> None:
    if not spec.has("completion"):
        raise ApiError(400, f'"{model}" does not support {endpoint}')
    if _think_requested(body.get("think")) and not spec.has("thinking"):
        raise ApiError(400, f'"{model}" does not support thinking')
    if endpoint == "chat" and body.get("tools") and not spec.has("tools"):
        raise ApiError(400, f"{_registry_name(spec.name)} does not support tools")
    images = _images(body, messages)
    if images and not spec.has("vision"):
        raise ApiError(400, f'"{model}" does not support vision (image input)')
    for image in images:
        _check_base64(image)


def _check_base64(image: Any) -> None:
    if not isinstance(image, str):
        raise ApiError(400, "images must be base64 strings")
    try:
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"illegal base64 data in image: {exc}") from exc


def _embed_inputs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ApiError(400, "invalid input type: expected a string or a list of strings")


def _reply_text(rule: Rule, model: str, text: str, body: dict[str, Any]) -> str:
    if rule.reply is None:
        return f"Hello from {model}. You said: {text}"
    if callable(rule.reply):
        return str(rule.reply(body))
    return rule.reply


def _plan(
    endpoint: str,
    spec: ModelSpec,
    model: str,
    body: dict[str, Any],
    messages: list[dict[str, Any]],
    text: str,
    rule: Rule,
    ex: _Exchange,
    load_ns: int,
    prompt_ns: int,
) -> _Plan:
    content = chunk_text(_reply_text(rule, model, text, body))
    done_reason = "stop"
    options = body.get("options")
    if not isinstance(options, dict):
        options = {}
    num_predict = options.get("num_predict")
    if isinstance(num_predict, int) and 0 < num_predict < len(content):
        content, done_reason = content[:num_predict], "length"
    wants_thinking = _think_requested(body.get("think")) and spec.has("thinking")
    thinking = chunk_text(rule.thinking) if wants_thinking and rule.thinking else []
    prompt_texts = iter_texts(messages) if endpoint == "chat" else [str(body.get("system") or ""), text]
    return _Plan(
        endpoint=endpoint,
        model=model,
        thinking=thinking,
        content=content,
        tool_calls=rule.tool_calls if endpoint == "chat" else None,
        prompt_tokens=rule.prompt_tokens if rule.prompt_tokens is not None else estimate_tokens(prompt_texts),
        completion_tokens=rule.completion_tokens if rule.completion_tokens is not None else len(content),
        done_reason=done_reason,
        rule=rule,
        received=ex.record.received_monotonic,
        load_ns=load_ns,
        prompt_ns=prompt_ns,
    )


def build_app(fake: FakeOllama) -> web.Application:
    """The aiohttp application; usable on its own with aiohttp's test utilities."""
    api = _Api(fake)
    app = web.Application(middlewares=[_record_middleware], client_max_size=64 * 1024**2)
    app[FAKE_KEY] = fake
    app.router.add_get("/", api.root)
    app.router.add_get("/api/version", api.version)
    app.router.add_get("/api/tags", api.tags)
    app.router.add_get("/api/ps", api.ps)
    app.router.add_post("/api/show", api.show)
    app.router.add_post("/api/chat", api.chat)
    app.router.add_post("/api/generate", api.generate)
    app.router.add_post("/api/embed", api.embed)
    app.router.add_post("/api/embeddings", api.embeddings)
    app.router.add_post("/_fake/script", api.control_script)
    app.router.add_post("/_fake/reset", api.control_reset)
    app.router.add_get("/_fake/requests", api.control_requests)
    app.router.add_get("/_fake/hangups", api.control_hangups)
    app.router.add_post("/_fake/models", api.control_add_model)
    app.router.add_delete("/_fake/models", api.control_remove_model)
    app.router.add_get("/_fake/gpu", api.control_gpu)
    app.router.add_post("/_fake/gpu", api.control_simulate_gpu)
    app.router.add_post("/_fake/gpu/reset", api.control_gpu_reset)
    return app
