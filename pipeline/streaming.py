"""Streaming one answer from Ollama, with events, cancellation and a lease.

This is the async edge of the worker: it talks to Ollama through
``ollama.AsyncClient`` and publishes events, and calls back into synchronous
code (``pipeline.processing``) for every database access.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx
import ollama
from django.conf import settings

from routing.tools import ToolRunner, configured_backend, sources_footer
from trollama.events import AsyncPublisher, Event
from trollama.tls import tls_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to stream one attempt, without touching the ORM."""

    request_id: int
    attempt: int  # the fencing token: writes only succeed while it is current
    host: str
    model: str
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    keep_alive: str | None = None
    # Ollama's ``think``: None leaves it out (the model cannot think), else a bool or a level.
    think: bool | str | None = None
    tools: tuple[str, ...] = ()  # web tools offered to the model (routing.tools)
    host_id: int | None = None  # the OllamaHost row, for its circuit breaker
    fallbacks: tuple[str, ...] = ()  # models still to try after this one, in order
    model_attempts: int = 1  # attempts on this model (``attempt`` counts all of them)


class Outcome(Enum):
    DONE = "done"
    CANCELLED = "cancelled"
    LOST = "lost"  # another worker owns the request now
    FAILED = "failed"
    STOPPED = "stopped"  # this worker is stopping: the request goes back to the queue


@dataclass
class AttemptResult:
    outcome: Outcome
    content: str = ""
    thinking: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str = ""
    transient: bool = False
    missing_model: bool = False  # Ollama said 404: the host doesn't have the model
    host_failure: bool = False  # the host itself misbehaved (counts towards its circuit breaker)


class Tick(Enum):
    """What the database says while an attempt streams."""

    CONTINUE = "continue"
    CANCEL = "cancel"
    LOST = "lost"


@dataclass
class Callbacks:
    """Synchronous database work the stream needs, injected by the caller."""

    # (partial content or None) -> what to do next; renews the lease when saving.
    tick: Callable[[str | None], Awaitable[Tick]]
    # phase name -> None; records the phase (and first token) on the request.
    phase: Callable[[str], Awaitable[None]]
    # () -> whether this worker process was asked to stop (SIGTERM/SIGINT).
    stopping: Callable[[], bool] = lambda: False


class EventPump:
    """Sends one attempt's events in order from a single task.

    Status events go out at once; text deltas are merged so that at most one
    is sent per ``interval``. Each delta carries its character offset in the
    answer, so a listener can tell when it missed one and resync.
    """

    def __init__(
        self, send: Callable[[Event], Awaitable[Any]], *, request_id: int, attempt: int, interval: float
    ) -> None:
        self._send = send
        self._request_id = request_id
        self._attempt = attempt
        self._interval = interval
        self._items: list[Event | list[str]] = []
        self._offset = 0
        self._last_delta = -math.inf
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def emit(self, event: Event) -> None:
        self._items.append(event)
        self._wake.set()

    def text(self, delta: str) -> None:
        if self._items and isinstance(self._items[-1], list):
            self._items[-1].append(delta)
        else:
            self._items.append([delta])
        self._wake.set()

    async def close(self) -> None:
        """Send everything still pending, without waiting for the interval."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._items[0]
            if isinstance(head, list) and not self._closing:
                wait = self._last_delta + self._interval - time.monotonic()
                if wait > 0:
                    # More text may join this delta while we wait.
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=wait)
                    continue
            self._items.pop(0)
            if isinstance(head, list):
                text = "".join(head)
                event = {
                    "type": "request.delta",
                    "request_id": self._request_id,
                    "attempt": self._attempt,
                    "offset": self._offset,
                    "text": text,
                }
                self._offset += len(text)
                self._last_delta = time.monotonic()
            else:
                event = head
            try:
                await self._send(event)
            except Exception:  # a listener problem must never break the answer
                logger.exception("Could not publish %s for request %s", event.get("type"), self._request_id)


def describe_failure(exc: BaseException, *, job: Job) -> tuple[str, bool]:
    """A message the user can act on, and whether trying again may help."""
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return (
                f"The model {job.model} isn't installed on the model server. An operator can install it with "
                f"`ollama pull {job.model}` or point this route at another model in the admin.",
                False,
            )
        if exc.status_code >= 500 or exc.status_code == -1:
            return f"The model server ran into an error ({exc.error}).", True
        return f"The model server refused the request: {exc.error}.", False
    if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
        return (
            f"I couldn't reach the model server (Ollama at {job.host}). It may be down or restarting; "
            "please try again in a few minutes.",
            True,
        )
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"The model server stopped responding (no output for {settings.OLLAMA_READ_TIMEOUT:g} seconds).",
            True,
        )
    if isinstance(exc, httpx.TransportError):
        return "The connection to the model server broke off in the middle of the answer.", True
    logger.error("Unexpected error streaming request %s", job.request_id, exc_info=exc)
    return (
        f"Something went wrong on our side while answering (request {job.request_id}). "
        "The operators can find the details in the worker log.",
        False,
    )


@dataclass
class _Progress:
    content: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    phase: str = ""


class AnswerStream:
    """One attempt at streaming an answer.

    A supervising loop wakes every CANCEL_CHECK_INTERVAL to ask the database
    whether the request was cancelled or taken over, and to save the partial
    answer (renewing the lease) every PARTIAL_SAVE_INTERVAL. Cancelling the
    consuming task closes the HTTP stream, which is what stops Ollama.
    """

    def __init__(self, job: Job, *, publisher: AsyncPublisher, callbacks: Callbacks) -> None:
        self.job = job
        self.callbacks = callbacks
        self.progress = _Progress()
        self.pump = EventPump(
            lambda event: publisher.publish(event, request_id=job.request_id),
            request_id=job.request_id,
            attempt=job.attempt,
            interval=settings.STREAM_DELTA_INTERVAL,
        )

    async def run(self) -> AttemptResult:
        client = ollama.AsyncClient(
            host=self.job.host,
            timeout=httpx.Timeout(settings.OLLAMA_READ_TIMEOUT, connect=settings.OLLAMA_CONNECT_TIMEOUT),
            verify=tls_context(),
        )
        self.pump.start()
        consumer = asyncio.create_task(self._consume(client))
        try:
            return await self._supervise(consumer)
        finally:
            if not consumer.done():
                consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await self.pump.close()
            await client.close()

    async def _supervise(self, consumer: asyncio.Task[None]) -> AttemptResult:
        started = last_save = time.monotonic()
        while True:
            done, _ = await asyncio.wait({consumer}, timeout=settings.CANCEL_CHECK_INTERVAL)
            if done:
                return self._result_of(consumer)
            if self.callbacks.stopping():
                return await self._stop(consumer, Outcome.STOPPED)
            if time.monotonic() - started > settings.REQUEST_TIMEOUT:
                result = await self._stop(consumer, Outcome.FAILED)
                result.error = (
                    f"The answer took longer than {settings.REQUEST_TIMEOUT:,} seconds, the most one answer may take "
                    "here, so I stopped it. Try a shorter or simpler request; an operator can raise REQUEST_TIMEOUT."
                )
                return result
            partial = None
            if time.monotonic() - last_save >= settings.PARTIAL_SAVE_INTERVAL:
                partial = "".join(self.progress.content)
                last_save = time.monotonic()
            tick = await self.callbacks.tick(partial)
            if tick is not Tick.CONTINUE:
                return await self._stop(consumer, Outcome.CANCELLED if tick is Tick.CANCEL else Outcome.LOST)

    async def _stop(self, consumer: asyncio.Task[None], outcome: Outcome) -> AttemptResult:
        """End the attempt early: cancelling the consumer closes the HTTP stream, which stops Ollama."""
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        return AttemptResult(outcome, content="".join(self.progress.content))

    def _result_of(self, consumer: asyncio.Task[None]) -> AttemptResult:
        progress = self.progress
        content = "".join(progress.content)
        exc = consumer.exception()
        if exc is not None:
            error, transient = describe_failure(exc, job=self.job)
            missing = isinstance(exc, ollama.ResponseError) and exc.status_code == 404
            return AttemptResult(
                Outcome.FAILED,
                content=content,
                error=error,
                transient=transient,
                missing_model=missing,
                host_failure=transient,
            )
        if not content.strip():
            return AttemptResult(Outcome.FAILED, error="The model returned an empty answer.", transient=True)
        return AttemptResult(
            Outcome.DONE,
            content=content,
            thinking="".join(progress.thinking),
            prompt_tokens=progress.prompt_tokens,
            completion_tokens=progress.completion_tokens,
        )

    async def _enter_phase(self, phase: str, *, reason: str = "") -> None:
        if phase == self.progress.phase and not reason:
            return
        self.progress.phase = phase
        event: Event = {
            "type": "request.status",
            "request_id": self.job.request_id,
            "status": "generating",
            "phase": phase,
            "model": self.job.model,
            "attempt": self.job.attempt,
        }
        if reason:
            event["reason"] = reason
        self.pump.emit(event)
        await self.callbacks.phase(phase)

    async def _model_is_loaded(self, client: ollama.AsyncClient) -> bool:
        try:
            loaded = await client.ps()
        except Exception:  # the chat call below reports an unreachable host properly
            return True
        return any(model.model == self.job.model or model.name == self.job.model for model in loaded.models)

    async def _consume(self, client: ollama.AsyncClient) -> None:
        job = self.job
        await self._enter_phase("starting" if await self._model_is_loaded(client) else "loading_model")
        backend = configured_backend() if job.tools else None
        runner = ToolRunner(job.tools, backend) if backend is not None else None
        messages = list(job.messages)
        while True:
            offer = runner is not None and not runner.exhausted
            calls = await self._stream_chat(client, messages, tools=runner.schemas if runner and offer else None)
            if runner is None or not offer or not calls:
                break
            await self._run_tools(runner, calls, messages)
        footer = sources_footer(runner.sources) if runner is not None else ""
        if footer and self.progress.content:
            # Appended after the model's text, which itself stays exactly as it was streamed.
            self.progress.content.append(footer)
            self.pump.text(footer)

    async def _stream_chat(
        self, client: ollama.AsyncClient, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None
    ) -> list[Any]:
        """Stream one chat round; returns the tool calls the model made (empty when it answered)."""
        job = self.job
        stream = await client.chat(
            model=job.model,
            messages=messages,
            stream=True,
            options=job.options,
            keep_alive=job.keep_alive or None,
            think=job.think,
            tools=tools,
        )
        progress = self.progress
        calls: list[Any] = []
        said: list[str] = []
        async for chunk in stream:
            message = chunk.message
            if message.thinking:
                progress.thinking.append(message.thinking)
                await self._enter_phase("thinking")
            if message.content:
                # Text first, so the first token leaves before the database write.
                progress.content.append(message.content)
                said.append(message.content)
                self.pump.text(message.content)
                await self._enter_phase("generating")
            if message.tool_calls:
                calls.extend(message.tool_calls)
            if chunk.done:
                progress.prompt_tokens = (progress.prompt_tokens or 0) + (chunk.prompt_eval_count or 0)
                progress.completion_tokens = (progress.completion_tokens or 0) + (chunk.eval_count or 0)
        if calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": "".join(said),
                    "tool_calls": [
                        {"function": {"name": c.function.name, "arguments": dict(c.function.arguments)}} for c in calls
                    ],
                }
            )
        return calls

    async def _run_tools(self, runner: ToolRunner, calls: list[Any], messages: list[dict[str, Any]]) -> None:
        for call in calls:
            name, arguments = call.function.name, dict(call.function.arguments or {})
            phase, detail = runner.describe(name, arguments)
            if not runner.exhausted:
                await self._enter_phase(phase, reason=detail)
            result = await runner.run(name, arguments)
            messages.append({"role": "tool", "content": result, "tool_name": name})
