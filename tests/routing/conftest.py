"""Fixtures for routing tests: a second Ollama host and a tiny web server for the web tools."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fake_ollama import FakeOllama


@pytest.fixture(autouse=True)
def fast_path(settings) -> None:
    """Routing tests run the embedding fast path, which the rest of the suite leaves off."""
    settings.ROUTER_FAST_PATH = True


@pytest.fixture
def second_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=["rnj-1:8b"]) as fake:
        yield fake


class WebServer:
    """A loopback stand-in for SearxNG and the pages it finds, recording every path asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.bodies: list[tuple[str, dict, str]] = []  # (path, JSON body, Authorization) of POSTs
        self.page_size = 200
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                # Ollama's hosted web API: /api/web_search and /api/web_fetch.
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append((self.path, body, self.headers.get("Authorization", "")))
                if self.path == "/api/web_search":
                    result = {"title": "Hosted result", "url": "https://example.org/a", "content": "hosted snippet"}
                    self._send("application/json", json.dumps({"results": [result]}))
                else:
                    self._send(
                        "application/json", json.dumps({"title": "Fetched", "content": "page text", "links": []})
                    )

            def do_GET(self) -> None:
                time.sleep(outer.delay)
                outer.paths.append(self.path)
                url = urlsplit(self.path)
                if url.path == "/search":
                    query = parse_qs(url.query)["q"][0]
                    results = [
                        {"title": f"Result {n} for {query}", "url": f"{outer.url}/page/{n}", "content": f"snippet {n}"}
                        for n in (1, 2)
                    ]
                    self._send("application/json", json.dumps({"results": results}))
                else:
                    body = "<html><head><title>Page</title><script>x()</script></head><body><p>"
                    self._send("text/html", body + "word " * outer.page_size + "</p></body></html>")

            def _send(self, kind: str, body: str) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def web() -> Iterator[WebServer]:
    server = WebServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
