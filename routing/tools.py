"""``web_search`` and ``web_fetch`` for the research and reasoning routes.

Backends (``WEB_SEARCH_BACKEND``): Ollama's hosted web API (``OLLAMA_API_KEY``)
or a SearxNG instance (``SEARXNG_URL``), or ``off``. The ollama client has
``web_search``/``web_fetch`` too, but its URL is fixed to ollama.com and its key
comes from the process environment, so we call the same endpoints with httpx,
which lets the base URL and key come from the settings.

Everything here is async and ORM-free: it runs inside the answer stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Protocol

import httpx
from django.conf import settings

from trollama.tls import tls_context

TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "web_search": {
        "type": "function",
        "function": {
            "name": "web_search",
            "description": "Search the web. Returns titles, URLs and snippets of the top results.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to search for."}},
                "required": ["query"],
            },
        },
    },
    "web_fetch": {
        "type": "function",
        "function": {
            "name": "web_fetch",
            "description": "Read one web page. Returns its title and text.",
            "parameters": {
                "type": "object",
                "properties": {"url": {"type": "string", "description": "The page's full http(s) URL."}},
                "required": ["url"],
            },
        },
    },
}

SEARCH_RESULTS = 5


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass
class Found:
    text: str
    sources: list[Source] = field(default_factory=list)


class Backend(Protocol):
    async def search(self, http: httpx.AsyncClient, query: str) -> Found: ...

    async def fetch(self, http: httpx.AsyncClient, url: str) -> Found: ...


def _results_text(results: list[Mapping[str, Any]]) -> Found:
    lines, sources = [], []
    for index, result in enumerate(results[:SEARCH_RESULTS], start=1):
        title, url = str(result.get("title") or result.get("url") or ""), str(result.get("url") or "")
        lines.append(f"[{index}] {title}\n{url}\n{str(result.get('content') or '').strip()}")
        if url:
            sources.append(Source(title, url))
    return Found("\n\n".join(lines) or "No results.", sources)


class OllamaWebBackend:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def search(self, http: httpx.AsyncClient, query: str) -> Found:
        response = await http.post(
            f"{self.base_url}/api/web_search",
            json={"query": query, "max_results": SEARCH_RESULTS},
            headers=self.headers,
        )
        response.raise_for_status()
        return _results_text(response.json().get("results") or [])

    async def fetch(self, http: httpx.AsyncClient, url: str) -> Found:
        response = await http.post(f"{self.base_url}/api/web_fetch", json={"url": url}, headers=self.headers)
        response.raise_for_status()
        data = response.json()
        title = str(data.get("title") or url)
        return Found(f"{title}\n\n{data.get('content') or ''}", [Source(title, url)])


class _TextOfHtml(HTMLParser):
    """Visible text and title of a page; stdlib is enough for this and adds no dependency."""

    SKIP = {"script", "style", "noscript", "template", "svg"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._stack:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if any(tag in self.SKIP for tag in self._stack):
            return
        if self._stack and self._stack[-1] == "title":
            self.title += data.strip()
        elif data.strip():
            self.parts.append(data.strip())


def page_text(html: str) -> tuple[str, str]:
    parser = _TextOfHtml()
    parser.feed(html)
    return parser.title, "\n".join(parser.parts)


class SearxngBackend:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    async def search(self, http: httpx.AsyncClient, query: str) -> Found:
        response = await http.get(f"{self.base_url}/search", params={"q": query, "format": "json"})
        response.raise_for_status()
        return _results_text(response.json().get("results") or [])

    async def fetch(self, http: httpx.AsyncClient, url: str) -> Found:
        response = await http.get(url, follow_redirects=True)
        response.raise_for_status()
        body = response.text
        if "html" in response.headers.get("content-type", "html"):
            title, text = page_text(body)
        else:
            title, text = "", body
        title = title or url
        return Found(f"{title}\n\n{text}", [Source(title, url)])


def configured_backend() -> Backend | None:
    backend = settings.WEB_SEARCH_BACKEND
    if backend == "ollama" and settings.OLLAMA_API_KEY:
        return OllamaWebBackend(settings.OLLAMA_WEB_API_URL, settings.OLLAMA_API_KEY)
    if backend == "searxng" and settings.SEARXNG_URL:
        return SearxngBackend(settings.SEARXNG_URL)
    return None


def tools_available() -> bool:
    return configured_backend() is not None


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + "\n[…cut: the page was longer]"


class ToolRunner:
    """Runs one answer's tool calls within the limits: number of calls, bytes per result, total time."""

    def __init__(self, names: tuple[str, ...], backend: Backend) -> None:
        self.names = names
        self.backend = backend
        self.calls = 0
        self.deadline = time.monotonic() + settings.TOOL_TIME_LIMIT
        self.searched: list[Source] = []
        self.fetched: list[Source] = []

    @property
    def sources(self) -> list[Source]:
        """Pages the model read; when it read none, what its searches found."""
        return self.fetched or self.searched

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [TOOL_SCHEMAS[name] for name in self.names]

    @property
    def exhausted(self) -> bool:
        return self.calls >= settings.TOOL_MAX_CALLS or time.monotonic() >= self.deadline

    @staticmethod
    def describe(name: str, arguments: Mapping[str, Any]) -> tuple[str, str]:
        """The status phase and its detail for a call, e.g. ("searching", "django 5.2 release")."""
        if name == "web_fetch":
            return "reading", str(arguments.get("url") or "")[:200]
        return "searching", str(arguments.get("query") or "")[:200]

    async def run(self, name: str, arguments: Mapping[str, Any]) -> str:
        """The text handed back to the model for one call. Never raises for a tool problem."""
        if name not in self.names:
            return f"There is no tool named {name!r}. Available: {', '.join(self.names)}."
        if self.exhausted:
            return "Tool limit reached for this answer: answer now with what you have."
        self.calls += 1
        remaining = max(0.1, self.deadline - time.monotonic())
        timeout = httpx.Timeout(remaining, connect=min(remaining, settings.OLLAMA_CONNECT_TIMEOUT))
        try:
            async with httpx.AsyncClient(timeout=timeout, verify=tls_context()) as http:
                if name == "web_search":
                    found = await self.backend.search(http, str(arguments.get("query") or ""))
                else:
                    found = await self.backend.fetch(http, str(arguments.get("url") or ""))
        except (httpx.HTTPError, ValueError, json.JSONDecodeError) as exc:
            return f"{name} failed: {type(exc).__name__}: {exc}"
        known = self.fetched if name == "web_fetch" else self.searched
        known.extend(source for source in found.sources if source.url not in {k.url for k in known})
        return _clip_bytes(found.text, settings.TOOL_MAX_PAGE_BYTES)


def sources_footer(sources: list[Source]) -> str:
    """The list appended after the model's answer (its own text is left as it is)."""
    if not sources:
        return ""
    lines = [f"{index}. [{source.title}](<{source.url}>)" for index, source in enumerate(sources, start=1)]
    return "\n\n**Sources**\n" + "\n".join(lines)
