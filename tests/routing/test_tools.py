"""The web tools on their own: both backends, the limits, and the sources footer."""

from __future__ import annotations

import asyncio

from routing.tools import OllamaWebBackend, SearxngBackend, Source, ToolRunner, page_text, sources_footer


def run(runner: ToolRunner, name: str, arguments: dict) -> str:
    return asyncio.run(runner.run(name, arguments))


class ToolRunnerTests:
    def test_the_ollama_backend_sends_the_key_and_collects_sources(self, web):
        runner = ToolRunner(("web_search", "web_fetch"), OllamaWebBackend(web.url, "secret-key"))

        found = run(runner, "web_search", {"query": "trollama"})
        page = run(runner, "web_fetch", {"url": "https://example.org/b"})

        assert "[1] Hosted result\nhttps://example.org/a\nhosted snippet" in found
        assert page == "Fetched\n\npage text"
        assert web.bodies[0] == ("/api/web_search", {"query": "trollama", "max_results": 5}, "Bearer secret-key")
        assert runner.sources == [Source("Fetched", "https://example.org/b")]

    def test_the_time_limit_stops_further_calls(self, web, settings):
        settings.TOOL_TIME_LIMIT = 1
        web.delay = 1.2
        runner = ToolRunner(("web_search",), SearxngBackend(web.url))

        first = run(runner, "web_search", {"query": "slow"})
        second = run(runner, "web_search", {"query": "again"})

        assert first.startswith("web_search failed: ReadTimeout")
        assert second.startswith("Tool limit reached")
        assert runner.exhausted and runner.calls == 1

    def test_an_unknown_tool_is_answered_not_raised(self, web):
        runner = ToolRunner(("web_search",), SearxngBackend(web.url))

        assert run(runner, "rm_rf", {}).startswith("There is no tool named 'rm_rf'")
        assert runner.calls == 0


class PageTextTests:
    def test_it_keeps_visible_text_and_the_title(self):
        title, text = page_text(
            "<html><head><title>T</title><style>p{}</style></head><body><p>One</p><script>x()</script>Two</body></html>"
        )

        assert (title, text) == ("T", "One\nTwo")


class SourcesFooterTests:
    def test_it_numbers_sources_without_embeds(self):
        footer = sources_footer([Source("A", "https://a.example"), Source("B", "https://b.example")])

        assert footer == "\n\n**Sources**\n1. [A](<https://a.example>)\n2. [B](<https://b.example>)"
        assert sources_footer([]) == ""
