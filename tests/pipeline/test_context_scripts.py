"""Dense scripts in the context: what is sent never passes the route's window, counted by real tokenizers."""

from __future__ import annotations

import pytest

from conversations.calibration import MIN_RATIO
from conversations.models import TokenCalibration
from pipeline.context import build_chat_messages
from routing.models import Route
from tests.conversations.helpers import History
from tests.conversations.scripts import SAMPLES, real_tokens

WINDOW = 8192
# Chat-template markup per message, generously (gpt-oss's harmony format uses about 5).
TEMPLATE = 8


def window_route() -> Route:
    return Route.objects.create(slug="w", name="Window", model="gpt-oss:20b", context_size=WINDOW)


def sent_tokens(messages: list[dict], encoding: str) -> int:
    return sum(real_tokens(m["content"], encoding) + TEMPLATE for m in messages)


def repeat(text: str, chars: int) -> str:
    return (text * (chars // len(text) + 1))[:chars]


@pytest.mark.django_db
class ContextWindowTests:
    @pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
    def test_19500_cjk_characters_are_cut_to_fit_an_8192_token_window(self, encoding):
        request = History().ask("请总结\uff1a" + repeat(SAMPLES["chinese"], 19_500))

        messages = build_chat_messages(request=request, route=window_route(), system_prompt="Be helpful.")

        assert sent_tokens(messages, encoding) <= WINDOW
        assert "characters of this message were left out" in messages[-1]["content"]
        request.refresh_from_db()
        assert request.notices[0]["code"] == "message_cut"
        assert request.notices[0]["omitted_chars"] > 10_000

    @pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
    @pytest.mark.parametrize("sample", ["emoji", "python", "korean-translations", "hindi-translations"])
    def test_a_long_dense_message_never_passes_the_window(self, sample, encoding):
        request = History().ask(repeat(SAMPLES[sample], 40_000))

        messages = build_chat_messages(request=request, route=window_route(), system_prompt="Be helpful.")

        assert sent_tokens(messages, encoding) <= WINDOW

    @pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
    def test_a_thread_of_dense_turns_keeps_only_what_fits(self, encoding):
        history = History()
        for n in range(60):
            history.say(repeat(SAMPLES["chinese"][n * 50 :], 400))
            history.answer(
                repeat(SAMPLES["emoji"][n * 40 :], 300) + "\n```python\n" + SAMPLES["python"][:300] + "\n```"
            )
        request = history.ask(SAMPLES["chinese"][:200])

        messages = build_chat_messages(request=request, route=window_route(), system_prompt="Be helpful.")

        assert sent_tokens(messages, encoding) <= WINDOW
        request.refresh_from_db()
        assert request.dropped_turns > 0
        assert {"code": "turns_dropped", "count": request.dropped_turns} in request.notices

    @pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
    def test_even_at_the_lowest_calibration_a_cjk_message_fits(self, encoding):
        TokenCalibration.objects.create(model="gpt-oss:20b", ratio=MIN_RATIO, samples=50)
        request = History().ask(repeat(SAMPLES["chinese"], 30_000))
        request.model = "gpt-oss:20b"

        messages = build_chat_messages(request=request, route=window_route(), system_prompt="Be helpful.")

        assert sent_tokens(messages, encoding) <= WINDOW
