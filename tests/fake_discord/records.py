"""What the fake Discord records: REST calls, gateway connections, interactions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class UploadedFile:
    field: str  # the multipart field, e.g. "files[0]"
    filename: str
    content_type: str
    data: bytes


@dataclass
class RestCall:
    """One request to the REST API, as the fake received and answered it."""

    at: float  # time.time() when it arrived
    monotonic: float  # time.monotonic() when it arrived, for intervals
    method: str
    route: str  # "PATCH /channels/{channel_id}/messages/{message_id}"
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any = None  # the JSON body, or a multipart request's payload_json
    files: list[UploadedFile] = field(default_factory=list)
    status: int = 0
    response: Any = None
    rate_limited: bool = False

    @property
    def channel_id(self) -> int | None:
        value = self.params.get("channel_id")
        return int(value) if value and value.isdigit() else None

    @property
    def message_id(self) -> int | None:
        value = self.params.get("message_id")
        return int(value) if value and value.isdigit() else None

    @property
    def content(self) -> str | None:
        return self.body.get("content") if isinstance(self.body, dict) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "method": self.method,
            "route": self.route,
            "path": self.path,
            "params": self.params,
            "query": self.query,
            "body": self.body,
            "files": [{"field": f.field, "filename": f.filename, "size": len(f.data)} for f in self.files],
            "status": self.status,
            "rate_limited": self.rate_limited,
        }


@dataclass
class GatewayConnection:
    """One websocket connection to the gateway."""

    opened_at: float
    compress: str
    kind: str = ""  # "identify" or "resume", once the client said which
    session_id: str = ""
    resumed: bool = False  # a RESUME that was accepted
    heartbeats: int = 0
    closed_at: float | None = None
    close_code: int | None = None


@dataclass
class Interaction:
    """An interaction the fake sent, and how the bot answered it."""

    id: int
    token: str
    name: str
    created_monotonic: float
    channel_id: int
    user_id: int
    callback_type: int | None = None
    callback_at: float | None = None  # seconds after it was sent
    callback_flags: int = 0
    original_id: int | None = None  # the message the callback made, if any
    followup_ids: list[int] = field(default_factory=list)
    late: bool = False  # a callback came after Discord's 3 s

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None

    @property
    def deferred(self) -> bool:
        return self.callback_type == 5
