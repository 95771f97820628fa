"""End to end: several answers streaming at once into one Discord thread, through the real bot process.

Discord counts a channel's message sends and edits together for every answer in
it (a thread is a channel), so the bot's answers share one budget per channel.
The stand-in answers 429 exactly as Discord would; none may come.
"""

from __future__ import annotations

import itertools

import pytest

from bots.render import split_message
from tests.e2e.bot import running_bot
from tests.e2e.test_bot_against_stand_in import ANSWER_TIMEOUT, EDIT_INTERVAL, finished

pytestmark = pytest.mark.e2e

ASKERS = ["alice", "bob", "mod", "owner"]


def reply(n: int, lines: int) -> str:
    """A distinct answer with code whose indentation must arrive byte for byte."""
    body = "".join(f"    value_{n}_{i} = {{'k': [{i}]}}  # line {i}\n" for i in range(lines))
    return f"Answer {n}:\n\n```python\ndef answer_{n}():\n{body}```\n\tDone ({n}).\n"


@pytest.fixture(scope="module")
def system(_fake_ollama_server, _fake_discord_server, tmp_path_factory):
    with running_bot(
        tmp_path_factory.mktemp("e2e-bot-shared"), ollama_url=_fake_ollama_server.url, discord=_fake_discord_server
    ) as system:
        yield system


def answers_in_thread(fake_discord, fake, thread, count: int) -> None:
    """Ask ``count`` questions in ``thread`` at once; check the thread saw each exact answer, paced, without a 429."""
    replies = {n: reply(n, 40 + 25 * n) for n in range(count)}
    for n, text in replies.items():
        fake.script(text, match=f"question {n}\\b", tokens_per_second=60)
    asked = {n: fake_discord.send_message(ASKERS[n], thread, f"question {n}, please") for n in range(count)}
    for message in asked.values():
        fake_discord.wait_for(lambda m=message: finished(fake_discord, m), timeout=ANSWER_TIMEOUT, what="an answer")

    answers = fake_discord.bot_messages(thread)
    shown = "".join(m.content for m in answers)
    for n, text in replies.items():
        mine = [m.content for m in answers if m.content.startswith(f"Answer {n}:") or f"value_{n}_" in m.content]
        assert mine == split_message(text), n
        assert fake_discord.message(asked[n].id).reactions.get("✅") == {fake_discord.bot.id}
    assert shown.count("Done (") == count
    assert fake_discord.rate_limited == []
    for message in answers:
        times = [version.at for version in message.history]
        assert all(b - a >= EDIT_INTERVAL - 0.05 for a, b in itertools.pairwise(times)), (message.content[:30], times)
    # They did stream at once: every answer was being written while another was.
    spans = [(min(v.at for v in m.history), max(v.at for v in m.history)) for m in answers]
    assert sum(1 for a, b in itertools.combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]) >= count - 1


class SharedChannelTests:
    @pytest.mark.parametrize("count", [2, 4])
    def test_answers_streaming_at_once_in_one_thread_get_no_429_and_arrive_exact(
        self, system, fake, fake_discord, count
    ):
        fake.script("Ask away.", match="open a thread")
        opener = fake_discord.send_message("alice", "general", "open a thread", mention_bot=True)
        thread = fake_discord.wait_for(lambda: fake_discord.thread_of(opener), timeout=30, what="a thread")
        fake_discord.wait_for(lambda: finished(fake_discord, opener), timeout=ANSWER_TIMEOUT, what="the first answer")

        answers_in_thread(fake_discord, fake, thread, count)
