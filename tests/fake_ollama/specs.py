"""Plain data for the fake Ollama: models, scripted rules and what got recorded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

CAPABILITIES = frozenset({"completion", "tools", "thinking", "vision", "embedding"})
ENDPOINTS = frozenset({"chat", "generate", "embed"})

Reply = str | Callable[[dict[str, Any]], str]


def canonical_name(name: str) -> str:
    """``"all-minilm"`` -> ``"all-minilm:latest"``, the way Ollama names models.

    Only the last path segment can carry a tag, so registry hosts with a port
    (``localhost:5000/model``) still get ``:latest``.
    """
    if ":" in name.rsplit("/", 1)[-1]:
        return name
    return f"{name}:latest"


@dataclass(frozen=True)
class ModelSpec:
    """A model the fake pretends to have pulled."""

    name: str
    capabilities: tuple[str, ...] = ("completion",)
    context_length: int = 8192
    size: int = 4_920_000_000
    family: str = "llama"
    parameter_size: str = "8.0B"
    quantization_level: str = "Q4_K_M"
    embedding_length: int = 4096
    modified_at: str = "2025-10-01T12:00:00.000000Z"

    def __post_init__(self) -> None:
        caps = tuple(dict.fromkeys(self.capabilities))
        unknown = set(caps) - CAPABILITIES
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}; use {sorted(CAPABILITIES)}")
        # Frozen dataclass: normalise in place once, callers may pass lists.
        object.__setattr__(self, "capabilities", caps)
        object.__setattr__(self, "name", canonical_name(self.name))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def model_info(self) -> dict[str, Any]:
        arch = self.family
        return {
            "general.architecture": arch,
            "general.basename": self.name.split(":", 1)[0],
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(self.parameter_size),
            "general.quantization_version": 2,
            f"{arch}.context_length": self.context_length,
            f"{arch}.embedding_length": self.embedding_length,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model fields: {sorted(unknown)}")
        values = dict(data)
        if "capabilities" in values:
            values["capabilities"] = tuple(values["capabilities"])
        return cls(**values)


def _parameter_count(parameter_size: str) -> int:
    match = re.fullmatch(r"([\d.]+)\s*([KMBT]?)", parameter_size.strip().upper())
    if not match:
        return 0
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2)]
    return int(float(match.group(1)) * scale)


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "gpt-oss:20b",
        ("completion", "tools", "thinking"),
        context_length=131072,
        size=13_780_173_839,
        family="gptoss",
        parameter_size="20.9B",
        quantization_level="MXFP4",
        embedding_length=2880,
    ),
    ModelSpec(
        "rnj-1:8b",
        ("completion", "tools"),
        context_length=32768,
        size=5_100_000_000,
        family="gemma3",
        parameter_size="8.3B",
        embedding_length=4096,
    ),
    ModelSpec(
        "deepcoder:14b",
        ("completion",),
        context_length=65536,
        size=9_019_360_000,
        family="qwen2",
        parameter_size="14.8B",
        embedding_length=5120,
    ),
    ModelSpec(
        "magistral:24b",
        ("completion", "tools", "thinking"),
        context_length=40960,
        size=14_333_000_000,
        family="llama",
        parameter_size="23.6B",
        embedding_length=5120,
    ),
    ModelSpec(
        "qwen3-vl:8b",
        ("completion", "vision", "tools", "thinking"),
        context_length=262144,
        size=6_140_000_000,
        family="qwen3vl",
        parameter_size="8.8B",
        embedding_length=4096,
    ),
    ModelSpec(
        "all-minilm",
        ("embedding",),
        context_length=512,
        size=45_960_996,
        family="bert",
        parameter_size="23M",
        quantization_level="F16",
        embedding_length=384,
    ),
)


@dataclass
class Rule:
    """One scripted behaviour; see ``FakeOllama.script`` for the fields."""

    reply: Reply | None = None
    model: str | None = None
    match: str | re.Pattern[str] | None = None
    times: int | None = None
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    latency: float = 0.0
    load_delay: float = 0.0
    error: tuple[int, str] | None = None
    break_after: int | None = None
    hang: bool = False
    error_in_stream: str | None = None
    endpoints: tuple[str, ...] = ("chat", "generate")
    used: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.tokens_per_second is not None and self.tokens_per_second <= 0:
            raise ValueError("tokens_per_second must be positive (or None for instant)")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.error is not None:
            status, message = self.error
            self.error = (int(status), str(message))
        self.endpoints = tuple(self.endpoints)
        if not set(self.endpoints) <= ENDPOINTS:
            raise ValueError(f"endpoints must be among {sorted(ENDPOINTS)}")
        if isinstance(self.match, str):
            self.match = re.compile(self.match, re.DOTALL)
        if self.tool_calls is not None:
            self.tool_calls = [_wire_tool_call(call) for call in self.tool_calls]

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.used >= self.times

    def applies_to(self, endpoint: str, model: str, text: str) -> bool:
        if self.exhausted or endpoint not in self.endpoints:
            return False
        if self.model is not None and canonical_name(self.model) != canonical_name(model):
            return False
        if self.match is None:
            return True
        pattern = re.compile(self.match, re.DOTALL) if isinstance(self.match, str) else self.match
        return pattern.search(text) is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rule:
        """Build a rule from the JSON body of ``POST /_fake/script``."""
        known = {f.name for f in fields(cls)} - {"used"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown rule fields: {sorted(unknown)}")
        values = dict(data)
        if values.get("error") is not None:
            values["error"] = tuple(values["error"])
        if values.get("endpoints") is not None:
            values["endpoints"] = tuple(values["endpoints"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.match, re.Pattern):
            data["match"] = self.match.pattern
        if callable(self.reply):
            data["reply"] = repr(self.reply)
        return data


def _wire_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``{"name", "arguments"}`` or Ollama's ``{"function": {...}}``."""
    if "function" in call:
        return {"function": dict(call["function"])}
    return {
        "function": {
            "name": call["name"],
            "arguments": dict(call.get("arguments") or {}),
        }
    }


@dataclass
class RecordedRequest:
    """One request to ``/api/*`` as the fake saw it.

    Stream fields are updated live by the server thread while the response is
    being written; ``chunks_sent`` counts every NDJSON line, the final
    ``done`` line included (a non-streamed answer counts as one chunk).
    """

    method: str
    path: str
    body: Any
    received_at: float
    received_monotonic: float
    status: int | None = None
    first_chunk_at: float | None = None
    last_chunk_at: float | None = None
    chunks_sent: int = 0
    completed: bool = False
    client_port: int | None = None  # the caller's side of the connection: equal ports, one kept-alive connection

    @property
    def model(self) -> str | None:
        if isinstance(self.body, dict):
            return self.body.get("model") or self.body.get("name")
        return None

    @property
    def messages(self) -> list[dict[str, Any]]:
        if isinstance(self.body, dict):
            return list(self.body.get("messages") or [])
        return []

    @property
    def images(self) -> list[str]:
        """Every base64 image in the request (message images and top-level ones)."""
        found: list[str] = []
        for message in self.messages:
            found.extend(message.get("images") or [])
        if isinstance(self.body, dict):
            found.extend(self.body.get("images") or [])
        return found

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"model": self.model}


@dataclass(frozen=True)
class Hangup:
    """The client went away before the fake finished answering.

    ``phase`` says what the fake was doing: ``latency``, ``load``, ``hang`` or
    ``stream``, and with the GPU simulation also ``queue`` (waiting for the
    scheduler or for a free slot).
    """

    path: str
    model: str | None
    at: float
    monotonic: float
    chunks_sent: int
    phase: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def iter_texts(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(m.get("content") or "") for m in messages]
