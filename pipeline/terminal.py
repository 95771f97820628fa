"""Showing one request's events in a terminal, for ``manage.py chat``.

The answer goes to stdout exactly as the model wrote it; progress goes to
stderr. Deltas carry their offset in the answer, so a duplicate is trimmed and
a gap is filled from the full text that ``request.done`` carries. The
websocket is only a hint: on every (re)connect, and while web is away, the
request is resynced from the database, so a web restart costs seconds and
the whole answer is still printed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from conversations.phases import describe_hold, describe_phase, describe_queued
from pipeline.footnotes import notice_lines


class Output(Protocol):
    """Where text goes: a file, or a management command's OutputWrapper with ``ending=""``."""

    def write(self, text: str) -> Any: ...

    def flush(self) -> Any: ...


@dataclass
class Finished:
    status: str  # done, failed or cancelled
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    route: str | None = None
    model: str = ""
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # artifacts.selectors.artifact_summary
    artifact_notes: list[str] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)  # Request.notices (pipeline.footnotes)


BROKE_OFF = "[The answer broke off; starting it again.]"
WHOLE_AGAIN = "[The answer shown above is not the final one; here is the whole answer.]"


class TerminalRenderer:
    def __init__(self, request_id: int, *, out: Output, err: Output, queued: bool = True) -> None:
        """``queued`` False: the request runs in this process (``--inline``), so no queue position is shown."""
        self.request_id = request_id
        self.queued = queued
        self.out = out
        self.err = err
        self.written = ""  # the part of the current attempt's answer already on stdout (or, replaying, matched)
        self.attempt: int | None = None  # the attempt whose text is on stdout
        # After a retry, the abandoned attempt's text stays on screen while the new attempt repeats it word for
        # word: a model that answers the same again is shown once, without a note. Only where the new text parts
        # from the screen does the note come and the new answer print whole.
        self.replaying: str | None = None
        # Deltas that came after a missed one, kept until a resync fills the gap before them.
        self.pending: list[tuple[int, str]] = []
        self.gap = False
        self.last_status = ""

    def handle(self, event: dict[str, Any]) -> Finished | None:
        """Render one event; returns how the request ended once it has."""
        if event.get("request_id") != self.request_id:
            return None
        kind = event.get("type")
        if kind == "request.queued":
            if self.queued or event.get("status") == "held":
                self._status(describe_queued(event))
        elif kind == "request.status":
            self._on_status(event)
        elif kind == "request.delta":
            if self._follow_attempt(event.get("attempt")):
                self._on_delta(event["offset"], event["text"])
        elif kind == "request.done":
            content = event["content"]
            if not content.startswith(self.written):
                self._start_over(WHOLE_AGAIN)
            self._write(content[len(self.written) :])
            if self.replaying is not None and self.replaying != content:  # the screen shows more than the answer
                self._part_from_screen(WHOLE_AGAIN)
            summary = event.get("request", {})
            return Finished(
                "done",
                prompt_tokens=summary.get("prompt_tokens"),
                completion_tokens=summary.get("completion_tokens"),
                route=summary.get("route"),
                model=summary.get("model", ""),
                artifacts=event.get("artifacts") or [],
                artifact_notes=event.get("artifact_notes") or [],
                notices=summary.get("notices") or [],
            )
        elif kind in ("request.failed", "request.cancelled"):
            return Finished(kind.removeprefix("request."), error=event.get("error", ""))
        return None

    def resync(self, snapshot: dict[str, Any] | None) -> Finished | None:
        """Catch up from the request as stored (``pipeline.snapshots.request_snapshot``).

        Returns how it ended once it has; otherwise prints what the websocket
        missed: a retry, or text the stored partial answer has beyond ours.
        """
        if snapshot is None:
            return Finished("failed", error="The request no longer exists (it was deleted).")
        status = snapshot["status"]
        if status == "done":
            return self.handle(
                {
                    "type": "request.done",
                    "request_id": self.request_id,
                    "content": snapshot["content"],
                    "request": snapshot,
                    "artifacts": snapshot.get("artifacts") or [],
                }
            )
        if status in ("failed", "cancelled"):
            return Finished(status, error=snapshot.get("error", ""))
        self._follow_attempt(snapshot.get("attempts"))
        partial = snapshot.get("content") or ""
        if status in ("queued", "held"):
            if self.written:  # it went back to the queue after text was shown
                self._start_over(BROKE_OFF)
            return None
        if partial.startswith(self.written):
            self._write(partial[len(self.written) :])
        elif not self.written.startswith(partial):
            self._start_over(BROKE_OFF)
            self._write(partial)
        self._apply_pending()
        return None

    def _follow_attempt(self, attempt: int | None) -> bool:
        """A newer attempt than the one on screen means a retry whose reset we missed.

        False for an older attempt's event (read before a resync that showed a later one).
        """
        if attempt is None:
            return True
        if self.attempt is not None and attempt < self.attempt:
            return False
        if self.attempt is not None and attempt > self.attempt and self.written:
            self._start_over(BROKE_OFF)
        self.attempt = attempt
        return True

    def _start_over(self, note: str) -> None:
        """The current attempt's text is void: what is on screen stays and the next text is matched against it."""
        if note == WHOLE_AGAIN:  # the final text follows: nothing is matched against the screen
            self.replaying, self.written = self.on_screen or None, ""
            self._part_from_screen(note)  # prints only the note: nothing of the final text is written yet
        elif self.replaying is None and self.written:
            self.replaying = self.written
        self.written = ""
        self.pending.clear()
        self.gap = False

    @property
    def on_screen(self) -> str:
        return self.written if self.replaying is None else self.replaying

    def _part_from_screen(self, note: str) -> None:
        """Say that the text above is not the answer, and print the current attempt's text so far whole."""
        if self.on_screen:
            self._end_line()
            self.err.write(note + "\n")
            self.err.flush()
        self.replaying = None
        if self.written:
            self.out.write(self.written)
            self.out.flush()

    def _on_status(self, event: dict[str, Any]) -> None:
        attempt = event.get("attempt")
        if event.get("reset"):
            if attempt is not None and self.attempt is not None and attempt < self.attempt:
                return  # read before a resync that already showed a later attempt
            self._start_over(BROKE_OFF)
            if attempt is not None:
                self.attempt = attempt
        else:
            self._follow_attempt(attempt)
        label = describe_phase(event.get("phase") or "", model=event.get("model") or "", reason=event.get("reason", ""))
        if label and not self.on_screen and event.get("phase") != "generating":
            self._status(label)

    def _on_delta(self, offset: int, text: str) -> None:
        self.pending.append((offset, text))
        self._apply_pending()

    def _apply_pending(self) -> None:
        """Print the deltas that continue what is on screen; stop at a gap (a resync or the final text fills it)."""
        while self.pending:
            offset, text = self.pending[0]
            if offset > len(self.written):
                self.gap = True
                return
            self.pending.pop(0)
            self._write(text[len(self.written) - offset :])
        self.gap = False

    def _write(self, text: str) -> None:
        if not text:
            return
        self.written += text
        if self.replaying is not None:
            if self.replaying.startswith(self.written):
                return  # the new attempt repeats what is on screen
            if not self.written.startswith(self.replaying):
                self._part_from_screen(BROKE_OFF)
                return
            text = self.written[len(self.replaying) :]  # it carries on from the end of the screen
            self.replaying = None
        self.out.write(text)
        self.out.flush()

    def _status(self, line: str) -> None:
        if line != self.last_status:
            self.err.write(line + "\n")
            self.err.flush()
            self.last_status = line

    def _end_line(self) -> None:
        if self.on_screen and not self.on_screen.endswith("\n"):
            self.out.write("\n")

    def finish(self, result: Finished) -> None:
        """Print the closing line: token counts, or why it ended."""
        self._end_line()
        if result.status == "done":
            tokens = f"{result.prompt_tokens or 0} prompt + {result.completion_tokens or 0} completion tokens"
            self.out.write(f"\n[{tokens} · route {result.route or '-'} · model {result.model or '-'}]\n")
            self._list_files(result)
        for line in notice_lines(result.notices):  # what was cut, budget warnings: stderr, like progress
            self.err.write(f"{line}\n")
        self.out.flush()
        self.err.flush()

    def _list_files(self, result: Finished) -> None:
        """One line per file on stdout, with its link; notes about files left out on stderr."""
        for artifact in result.artifacts:
            self.out.write(f"[file {artifact['filename']} · {artifact['size']} bytes · {artifact['url']}]\n")
        for note in result.artifact_notes:
            self.err.write(f"{note}\n")


# -- Running a chat turn from the terminal -----------------------------------

NO_WORKER_HINT_AFTER = 10.0
CANCEL_GRACE = 10.0
# Reconnecting to web after it went away: the first wait, doubled up to the last.
RECONNECT_FIRST, RECONNECT_MAX = 0.25, 2.0
# How long `chat` waits for web before giving up, when web is not there as it starts (say, restarting).
WEB_WAIT = 15.0
# While deltas are missing (some were lost while web was away), how often to read the stored partial answer.
GAP_RESYNC_INTERVAL = 1.0
LOST_WEB = "Lost the connection to web; reconnecting… (nothing is lost: the answer will be shown here)"

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_HELD = 3
EXIT_INTERRUPTED = 130


def describe_held_inline(request_id: int, message: str) -> str:
    """What --inline says for a request held by soft maintenance, in the operator's words when there are some."""
    return (
        f"{describe_hold(message)} This command stops here: the workers answer request {request_id} "
        "when maintenance ends (see it in the admin)."
    )


@dataclass
class ChatTurn:
    username: str
    content: str
    thread_name: str | None
    route: str | None
    inline: bool
    save_artifacts: Path | None = None
    files: list[Any] = field(default_factory=list)  # pipeline.attachments.Upload


def _check(turn: ChatTurn) -> None:
    """Refuse bad input before connecting anywhere or storing anything."""
    from pipeline import services

    read = services.read_attachments(turn.files)
    services.validate_message(turn.content, has_attachments=bool(read.files), refused=read.refused)
    if turn.save_artifacts is not None and turn.save_artifacts.exists() and not turn.save_artifacts.is_dir():
        raise services.Refusal(
            f"--save-artifacts {turn.save_artifacts} is a file, not a directory.", code="bad_directory"
        )
    if turn.thread_name:
        services.find_local_thread(name=turn.thread_name)


def _submit(turn: ChatTurn) -> Any:
    from django.db import transaction

    from conversations.models import Platform
    from pipeline import services

    with transaction.atomic():
        user = services.get_or_create_chat_user(
            platform=Platform.LOCAL, external_id=turn.username, username=turn.username
        )
        if turn.thread_name:
            thread = services.find_local_thread(name=turn.thread_name)
        else:
            thread = services.start_local_thread(owner=user, first_message=turn.content)
        return services.submit_request(
            user=user,
            thread=thread,
            content=turn.content,
            route_slug=turn.route,
            enqueue=not turn.inline,
            attachments=turn.files,
        )


def _process_inline(request_id: int) -> Any:
    """Run the request in a thread of its own, closing that thread's database connection after."""
    from django.db import connections

    from pipeline.processing import process_request

    try:
        return process_request(request_id=request_id)
    finally:
        connections.close_all()


def _final_state(request_id: int) -> Finished | None:
    """How the request ended, from the database; None while it is still going."""
    from conversations.models import Request
    from pipeline.snapshots import request_snapshot

    snapshot = request_snapshot(request_id)
    if snapshot is None or snapshot["status"] not in Request.FINISHED:
        return None
    return Finished(
        snapshot["status"],
        error=snapshot["error"],
        prompt_tokens=snapshot["prompt_tokens"],
        completion_tokens=snapshot["completion_tokens"],
        route=snapshot["route"],
        model=snapshot["model"],
        artifacts=snapshot["artifacts"],
        notices=snapshot["notices"],
    )


def save_artifacts(artifacts: list[dict[str, Any]], directory: Path, *, err: Output) -> bool:
    """Write each artifact into ``directory`` (made if missing), never over an existing file.

    Returns False if any could not be saved; each failure is explained with the
    link to download it instead.
    """
    from artifacts.filenames import unique_names
    from artifacts.services import read_artifact

    ok = True
    for artifact in artifacts:
        try:
            data = read_artifact(artifact_id=artifact["id"])
            directory.mkdir(parents=True, exist_ok=True)
            taken = {path.name for path in directory.iterdir()}
            # The name is already safe (artifacts.filenames); only a clash with a file there is left.
            name = unique_names([*taken, artifact["filename"]])[-1]
            path = directory / name
            with path.open("xb") as handle:
                handle.write(data)
        except Exception as exc:
            err.write(f"Could not save {artifact['filename']} ({exc}); download it from {artifact['url']}\n")
            ok = False
        else:
            err.write(f"Saved {artifact['filename']} to {path}\n")
    return ok


async def _settle_after_worker(worker: Any, following: Any, request_id: int) -> Finished:
    """The inline worker returned before its final event arrived: trust the database."""
    import asyncio

    from asgiref.sync import sync_to_async

    try:
        return await asyncio.wait_for(asyncio.shield(following), timeout=2)
    except TimeoutError:
        following.cancel()
    final = await sync_to_async(_final_state)(request_id)
    if final is not None:
        return final
    error = worker.exception()
    reason = f"{type(error).__name__}: {error}" if error else "the worker stopped without finishing"
    return Finished("failed", error=f"Answering failed inside this process ({reason}).")


async def _resync(renderer: TerminalRenderer) -> Finished | None:
    from asgiref.sync import sync_to_async

    from pipeline.snapshots import request_snapshot

    return renderer.resync(await sync_to_async(request_snapshot)(renderer.request_id))


async def follow_request(renderer: TerminalRenderer, listener: Any, *, inline: bool, err: Output) -> Finished:
    """Follow one request until it ends, over ``listener`` and the database.

    ``listener`` is connected before the request is submitted, so no event can
    slip past. Each time it (re)connects the request is resynced from the
    database; while web is away it is resynced on every try to reconnect, so
    an answer that finishes meanwhile is shown without waiting for web. The
    listener is closed on the way out.
    """
    import asyncio
    import time

    import websockets

    from pipeline.listeners import WebsocketListener, WebUnreachable

    wait = RECONNECT_FIRST
    try:
        while True:
            if listener is not None:
                try:
                    finished = await _resync(renderer)  # after connecting: nothing falls in between
                    if finished is not None:
                        return finished
                    resynced = time.monotonic()
                    async for event in listener:
                        if event.get("type") == "sync":
                            continue
                        finished = renderer.handle(event)
                        if finished is None and renderer.gap and time.monotonic() - resynced > GAP_RESYNC_INTERVAL:
                            # The partial answer is saved every few seconds: it soon covers what was missed.
                            resynced = time.monotonic()
                            finished = await _resync(renderer)
                        if finished is not None:
                            return finished
                except (websockets.ConnectionClosed, OSError):
                    pass
                if inline:
                    raise RuntimeError("this process's own event stream ended")
                await listener.close()
                listener = None
                err.write(LOST_WEB + "\n")
                err.flush()
            finished = await _resync(renderer)
            if finished is not None:
                return finished
            await asyncio.sleep(wait)
            wait = min(wait * 2, RECONNECT_MAX)
            try:
                listener = await WebsocketListener.connect()
            except WebUnreachable:
                continue
            wait = RECONNECT_FIRST
            err.write("Reconnected to web.\n")
            err.flush()
    finally:
        if listener is not None:
            await listener.close()


async def connect_to_web(*, err: Output) -> Any:
    """Web's event stream, waiting up to WEB_WAIT seconds for web to come up (a restart takes a few).

    Raises ``WebUnreachable`` when it does not: nothing has been sent yet.
    """
    import asyncio
    import time

    from pipeline.listeners import WebsocketListener, WebUnreachable

    deadline = time.monotonic() + WEB_WAIT
    wait = RECONNECT_FIRST
    while True:
        try:
            return await WebsocketListener.connect()
        except WebUnreachable as exc:
            if time.monotonic() + wait > deadline:
                raise
            if wait == RECONNECT_FIRST:
                err.write(f"{exc} Waiting up to {WEB_WAIT:g} s for it…\n")
                err.flush()
        await asyncio.sleep(wait)
        wait = min(wait * 2, RECONNECT_MAX)


async def run_chat(turn: ChatTurn, *, out: Output, err: Output) -> int:
    """Submit one message and follow it to the end. Returns the exit code.

    Without ``inline``, web must be up (we follow its websocket) and a worker
    runs the request. With ``inline``, this process runs it and is its own hub.
    Ctrl-C cancels the request; a second Ctrl-C quits at once.
    """
    import asyncio
    import signal

    from asgiref.sync import sync_to_async

    from conversations.models import Request
    from pipeline import cluster, services
    from pipeline.listeners import LayerListener, WebsocketListener
    from trollama import events

    try:
        await sync_to_async(_check)(turn)
    except services.Refusal as refusal:
        err.write(f"{refusal.message}\n")
        return EXIT_REFUSED

    # Listen before submitting, so no event can slip past.
    if turn.inline:
        events.mark_as_hub()
        listener: LayerListener | WebsocketListener = await LayerListener.connect()
    else:
        listener = await connect_to_web(err=err)

    try:
        submission = await sync_to_async(_submit)(turn)
    except services.Refusal as refusal:
        err.write(f"{refusal.message}\n")
        await listener.close()
        return EXIT_REFUSED
    request = submission.request
    if not turn.thread_name:
        err.write(
            f"New thread {request.thread.external_id!r}; continue it with --thread {request.thread.external_id}\n"
        )

    if turn.inline and request.status == Request.Status.HELD:
        # Nothing here may run it: the workers will, once maintenance ends.
        await listener.close()
        err.write(f"{describe_held_inline(request.pk, submission.hold_message)}\n")
        return EXIT_HELD

    renderer = TerminalRenderer(request.pk, out=out, err=err, queued=not turn.inline)
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    background: set[asyncio.Future[Any]] = set()

    def on_interrupt() -> None:
        if interrupted.is_set():
            raise SystemExit(EXIT_INTERRUPTED)
        interrupted.set()
        err.write("\nCancelling… (press Ctrl-C again to quit now)\n")
        background.add(asyncio.ensure_future(sync_to_async(services.cancel_request)(request=request)))

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    worker = (
        asyncio.ensure_future(sync_to_async(_process_inline, thread_sensitive=False)(request.pk))
        if turn.inline
        else None
    )

    following = asyncio.ensure_future(follow_request(renderer, listener, inline=turn.inline, err=err))
    try:
        done, _ = await asyncio.wait({following}, timeout=NO_WORKER_HINT_AFTER)
        if not done and worker is None:
            status = await sync_to_async(lambda: Request.objects.get(pk=request.pk).status)()
            if status == Request.Status.QUEUED and not await sync_to_async(cluster.workers_running)():
                err.write("No worker has picked this up yet. Is `python manage.py qcluster` running?\n")
        if worker is not None:
            await asyncio.wait({following, worker}, return_when=asyncio.FIRST_COMPLETED)
        if worker is not None and worker.done() and not following.done():
            result = await _settle_after_worker(worker, following, request.pk)
        else:
            result = await following
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if worker is not None:
            await asyncio.wait({worker}, timeout=CANCEL_GRACE)
        if not following.done():
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    renderer.finish(result)
    if result.status == "done":
        if turn.save_artifacts is not None and result.artifacts:
            saved = await sync_to_async(save_artifacts)(result.artifacts, turn.save_artifacts, err=err)
            return EXIT_DONE if saved else EXIT_FAILED
        return EXIT_DONE
    if result.status == "cancelled":
        err.write("Cancelled.\n")
        return EXIT_INTERRUPTED if interrupted.is_set() else EXIT_FAILED
    err.write(f"Failed: {result.error}\n")
    return EXIT_FAILED
