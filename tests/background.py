"""An aiohttp application served on its own event loop in a background thread.

The fake servers (``tests.fake_ollama``, ``tests.fake_discord``) use it, so
synchronous tests, async tests and subprocesses all reach them over TCP.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Self

from aiohttp import web


class BackgroundServer:
    """Subclasses give ``name`` and ``build_app()``; ``start()`` binds (port 0 picks one) and serves."""

    name = "server"

    def __init__(self, *, host: str, port: int) -> None:
        self.host = host
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_error: BaseException | None = None

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._thread is None and self._port == 0:
            raise RuntimeError(f"{self.name} is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in a background thread; restarting reuses the same port."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._start_error = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError(f"{self.name} did not start within 10 s")
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self._port)
            loop.run_until_complete(site.start())
            self._port = runner.addresses[0][1]
        except Exception as exc:
            self._start_error = exc
            loop.run_until_complete(runner.cleanup())
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            _cancel_leftovers(loop)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def serve_until_stopped(server: BackgroundServer, name: str, *, stopped: threading.Event | None = None) -> int:
    """Run a started fake until Ctrl-C or SIGTERM (a benchmark harness stops it that way), then stop it."""
    import signal

    stopped = stopped or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(f"{name} stopped", flush=True)
    return 0
