"""The live renderer against a fake Discord channel, on virtual time."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import discord
import pytest

from bots.render import join_parts, split_message, split_with_spans
from bots.stream import EMPTY_ANSWER, ChannelBudget, LiveMessageRenderer
from tests.bots import FakeDiscordChannel, virtual_time
from tests.bots.test_render import random_text

INTERVAL = 1.1
ANSWER = (
    "Sure! Here is a script that does it.\n\n"
    "```python\n"
    + "".join(
        f"def step_{i}(x):\n\tif x > {i}:\n        return [x, {{'k': ({i}, x)}}]\n    return None\n\n"
        for i in range(60)
    )
    + "```\n\n"
    + "It keeps `state` between calls and ``escapes ` backticks``. 漢字 and 👨\u200d👩\u200d👧 survive too.\n"
)


@pytest.fixture
async def clock() -> AsyncIterator[Callable[[], float]]:
    with virtual_time() as now:
        yield now


def tokens(text: str, rng: random.Random | None = None) -> list[str]:
    """`text` cut into model-sized deltas of 1 to 8 characters."""
    rng = rng or random.Random(0)
    out, position = [], 0
    while position < len(text):
        size = rng.randint(1, 8)
        out.append(text[position : position + size])
        position += size
    return out


async def stream(renderer: LiveMessageRenderer, deltas: list[str], every: float = 0.02) -> None:
    for delta in deltas:
        await asyncio.sleep(every)
        renderer.feed(delta)


def assert_paced(channel: FakeDiscordChannel) -> None:
    """No message was written twice within the interval; Discord never said 429."""
    for message in channel.shown:
        times = [call.at for call in channel.writes(message)]
        assert all(later - earlier >= INTERVAL - 1e-9 for earlier, later in itertools.pairwise(times)), times
    assert channel.rejected() == []


class LiveMessageRendererTests:
    async def test_it_never_edits_a_message_more_than_once_per_interval(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)

        await stream(renderer, tokens(ANSWER))
        await renderer.finish()

        assert len(channel.shown) > 1
        assert_paced(channel)

    async def test_its_final_messages_are_the_split_of_the_full_text(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)

        await stream(renderer, tokens(ANSWER))
        handles = await renderer.finish()

        assert channel.contents() == split_message(ANSWER)
        assert handles == sorted(channel.shown)
        assert join_parts(split_with_spans(ANSWER)) == ANSWER
        assert renderer.text == ANSWER

    async def test_it_coalesces_deltas_and_keeps_an_edit_of_the_window_for_the_final_text(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        start = clock()
        deltas = ["word "] * 300  # 6 seconds at 50 deltas a second

        await stream(renderer, deltas)
        await renderer.finish()

        # Live edits every 1.1 s, but only 4 per 5 s: the 5th is kept for the final edit.
        assert [(c.op, round(c.at - start, 6)) for c in channel.calls] == [
            ("send", 0.02),
            ("edit", 1.12),
            ("edit", 2.22),
            ("edit", 3.32),
            ("edit", 4.42),
            ("edit", 6.0),
        ]
        assert channel.contents() == ["word " * 300]

    async def test_it_overflows_into_a_second_message(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        text = "".join(f"Line {i} of a long answer.\n" for i in range(120))

        await stream(renderer, tokens(text))
        await renderer.finish()

        expected = split_message(text)
        assert len(expected) == 2
        assert channel.contents() == expected
        first_writes = channel.writes(1)
        assert first_writes[-1].content == expected[0]
        assert first_writes[-1].at < channel.writes(2)[0].at + INTERVAL  # finished as soon as it overflowed
        assert_paced(channel)

    async def test_it_delivers_the_final_text_when_the_interval_since_the_last_edit_ends(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        start = clock()

        renderer.feed("Hello")
        await asyncio.sleep(0.3)
        renderer.feed(", world.")
        await renderer.finish()

        assert [(c.op, round(c.at - start, 6), c.content) for c in channel.calls] == [
            ("send", 0, "Hello"),
            ("edit", INTERVAL, "Hello, world."),
        ]

    async def test_it_delivers_the_final_text_at_once_when_the_last_edit_is_old(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)

        renderer.feed("Hello")
        await asyncio.sleep(5)
        renderer.feed(", world.")
        finished_at = clock()
        await renderer.finish()

        assert channel.calls[-1].at == finished_at
        assert channel.contents() == ["Hello, world."]

    async def test_it_backs_off_after_a_rate_limit_and_keeps_the_final_text(self, clock):
        channel = FakeDiscordChannel()
        channel.fail_next("edit", discord.RateLimited(3.0))
        renderer = LiveMessageRenderer(channel)

        await stream(renderer, tokens(ANSWER))
        await renderer.finish()

        [refused] = channel.rejected()
        after = [c for c in channel.calls if c.at > refused.at]
        assert after[0].at == pytest.approx(refused.at + 3.0)
        assert renderer.rate_limited == 1
        assert channel.contents() == split_message(ANSWER)

    async def test_it_waits_a_second_on_a_429_that_does_not_say_how_long(self, clock):
        channel = FakeDiscordChannel()
        response = SimpleNamespace(status=429, reason="Too Many Requests", headers={})
        channel.fail_next("send", discord.HTTPException(response, "You are being rate limited."))
        renderer = LiveMessageRenderer(channel)
        start = clock()

        renderer.feed("Hi.")
        await renderer.finish()

        assert [(c.op, c.rejected, round(c.at - start, 6)) for c in channel.calls] == [
            ("send", True, 0),
            ("send", False, 1.0),
        ]
        assert channel.contents() == ["Hi."]

    async def test_it_waits_as_long_as_the_retry_after_header_says(self, clock):
        channel = FakeDiscordChannel()
        response = SimpleNamespace(status=429, reason="Too Many Requests", headers={"Retry-After": "2.5"})
        channel.fail_next("send", discord.HTTPException(response, "You are being rate limited."))
        renderer = LiveMessageRenderer(channel)
        start = clock()

        renderer.feed("Hi.")
        await renderer.finish()

        assert [round(c.at - start, 6) for c in channel.calls] == [0, 2.5]

    async def test_it_passes_on_errors_other_than_rate_limits(self, clock):
        channel = FakeDiscordChannel()
        channel.fail_next("edit", PermissionError("403 Forbidden: thread is archived"))
        renderer = LiveMessageRenderer(channel)

        renderer.feed("Hello")
        await asyncio.sleep(2)
        renderer.feed(" again")

        with pytest.raises(PermissionError):
            await renderer.finish()

    async def test_it_stays_within_the_channel_limit_while_finishing_two_messages(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        text = "".join(f"Line {i} of a long answer.\n" for i in range(300))

        await stream(renderer, tokens(text), every=0.005)
        await renderer.finish()

        assert channel.contents() == split_message(text)
        assert_paced(channel)

    async def test_it_shows_the_status_until_text_arrives(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        start = clock()

        renderer.status("Queued (position 3)")
        await asyncio.sleep(0.2)
        renderer.status("Thinking…")
        await asyncio.sleep(2)
        renderer.feed("The answer is 42.")
        await renderer.finish()

        assert [(c.op, round(c.at - start, 6), c.content) for c in channel.calls] == [
            ("send", 0, "Queued (position 3)"),
            ("edit", INTERVAL, "Thinking…"),
            ("edit", 2.2, "The answer is 42."),
        ]

    async def test_it_edits_the_placeholder_instead_of_sending_a_message(self, clock):
        channel = FakeDiscordChannel()
        placeholder = await channel.send("Queued…")
        renderer = LiveMessageRenderer(channel, existing=[placeholder])

        renderer.feed("Done quickly.")
        handles = await renderer.finish()

        assert handles == [placeholder]
        assert [c.op for c in channel.calls] == ["send", "edit"]
        assert channel.contents() == ["Done quickly."]

    async def test_it_closes_a_code_block_that_is_still_being_written(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)

        renderer.feed("```python\nprint(1)\n")
        await asyncio.sleep(2)
        live = channel.contents()
        renderer.feed("```\nThat prints 1.")
        await renderer.finish()

        assert live == ["```python\nprint(1)\n```"]
        assert channel.contents() == ["```python\nprint(1)\n```\nThat prints 1."]

    async def test_it_replaces_the_streamed_text_with_the_final_text(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        await stream(renderer, tokens("x" * 3000), every=0.001)

        handles = await renderer.finish("A shorter answer after a retry.")

        assert channel.contents() == ["A shorter answer after a retry."]
        assert handles == list(channel.shown)
        assert [c.op for c in channel.calls].count("delete") == 1

    async def test_it_says_so_when_the_answer_is_empty(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        renderer.status("Thinking…")

        await renderer.finish("  \n")

        assert channel.contents() == [EMPTY_ANSWER]

    async def test_it_stops_without_writing_more_when_closed(self, clock):
        channel = FakeDiscordChannel()
        renderer = LiveMessageRenderer(channel)
        renderer.feed("Hello")
        await asyncio.sleep(0.1)
        renderer.feed(" and more")

        await renderer.close()
        await asyncio.sleep(5)

        assert channel.contents() == ["Hello"]

    @pytest.mark.parametrize("seed", range(25))
    async def test_it_delivers_generated_answers_exactly_and_within_limits(self, clock, seed):
        rng = random.Random(seed)
        text = random_text(rng, rng.choice([500, 3000, 9000]))
        channel = FakeDiscordChannel(latency=rng.choice([0.0, 0.05, 0.3]))
        renderer = LiveMessageRenderer(channel)

        await stream(renderer, tokens(text, rng), every=rng.choice([0.001, 0.02, 0.4]))
        await renderer.finish()

        assert channel.contents() == split_message(text)
        assert all(len(content) <= 2000 for content in channel.contents())
        assert_paced(channel)


def answer_text(n: int, length: int) -> str:
    """A distinct answer of about ``length`` characters, with code."""
    body = "".join(f"Answer {n}, line {i}: `value_{i}` = {{'k': [{i}]}}\n" for i in range(length // 40))
    return f"Answer {n}:\n```python\n{body}```\n"


async def stream_answers(renderers: list[LiveMessageRenderer], texts: list[str], starts: list[float]) -> list[float]:
    """Stream each text into its renderer at once (at 50 deltas a second, from its start); finish them all.

    Returns, for each answer, the seconds from its last delta to its final write being done.
    """
    loop = asyncio.get_running_loop()

    async def one(renderer: LiveMessageRenderer, text: str, start: float) -> float:
        await asyncio.sleep(start)
        await stream(renderer, tokens(text))
        last = loop.time()
        await renderer.finish()
        return loop.time() - last

    return list(await asyncio.gather(*(one(r, t, s) for r, t, s in zip(renderers, texts, starts, strict=True))))


class SharedChannelBudgetTests:
    """Several answers in one channel (a thread), as when two people ask at once."""

    @pytest.mark.parametrize("answers", [2, 4])
    async def test_answers_sharing_a_channel_stay_within_its_limits_and_end_exact(self, clock, answers):
        channel = FakeDiscordChannel(latency=0.05)
        budget = ChannelBudget()
        renderers = [LiveMessageRenderer(channel, budget=budget) for _ in range(answers)]
        texts = [answer_text(n, 1500 + 900 * n) for n in range(answers)]

        await stream_answers(renderers, texts, starts=[0.3 * n for n in range(answers)])

        assert channel.rejected() == []
        for renderer, text in zip(renderers, texts, strict=True):
            assert [channel.shown[handle] for handle in renderer.handles] == split_message(text)
        assert_paced(channel)

    async def test_answers_with_budgets_of_their_own_are_refused_by_the_channel(self, clock):
        # The fault the shared budget fixes: each answer alone keeps to 5 edits per 5 s, together they do not.
        channel = FakeDiscordChannel(latency=0.05)
        renderers = [LiveMessageRenderer(channel) for _ in range(2)]
        texts = [answer_text(n, 3000) for n in range(2)]

        await stream_answers(renderers, texts, starts=[0.0, 0.3])

        assert channel.rate_limited > 0

    async def test_a_finishing_answer_goes_before_the_live_edits_of_the_others(self, clock):
        channel = FakeDiscordChannel(latency=0.05)
        budget = ChannelBudget()
        finishing = LiveMessageRenderer(channel, budget=budget)
        streaming = [LiveMessageRenderer(channel, budget=budget) for _ in range(5)]
        loop = asyncio.get_running_loop()
        finishing.feed("Short")
        for renderer in streaming:
            renderer.feed("Still thinking about it")

        async def keep_streaming(renderer: LiveMessageRenderer) -> None:
            for i in range(200):  # 10 s of text, so the channel's edits are all spoken for
                await asyncio.sleep(0.05)
                renderer.feed(f" {i}")

        others = [asyncio.create_task(keep_streaming(renderer)) for renderer in streaming]
        await asyncio.sleep(6.0)  # the window is full of live edits by now
        finishing.feed(" answer.")
        last_token = loop.time()
        await finishing.finish()
        waited = loop.time() - last_token
        await asyncio.gather(*others)
        for renderer in streaming:
            await renderer.finish()

        assert channel.shown[finishing.handles[0]] == "Short answer."
        # It has not been edited for seconds, so it goes at once: the window kept room for it.
        assert waited <= 0.1, waited
        assert channel.rejected() == []
        assert_paced(channel)

    async def test_a_one_off_write_waits_for_the_channels_window(self, clock):
        channel = FakeDiscordChannel()
        budget = ChannelBudget(window_writes=2, window=5.0, margin=0.0)
        loop = asyncio.get_running_loop()
        start = loop.time()

        for _ in range(3):
            async with budget.writing("send"):
                await channel.send("files")

        assert [round(c.at - start, 6) for c in channel.calls] == [0.0, 0.0, 5.0]
        assert channel.rejected() == []


class InjectedClockTests:
    async def test_it_measures_and_waits_with_the_clock_and_sleep_it_is_given(self):
        now = [100.0]
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds
            await asyncio.sleep(0)

        channel = FakeDiscordChannel(clock=lambda: now[0])
        renderer = LiveMessageRenderer(channel, clock=lambda: now[0], sleep=sleep)

        renderer.feed("Hello")
        for _ in range(3):
            await asyncio.sleep(0)  # let the renderer send
        renderer.feed(", world.")
        await renderer.finish()

        assert slept == [pytest.approx(INTERVAL)]
        assert [(c.op, c.at, c.content) for c in channel.calls] == [
            ("send", 100.0, "Hello"),
            ("edit", pytest.approx(100.0 + INTERVAL), "Hello, world."),
        ]
