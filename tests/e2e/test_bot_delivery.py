"""The delivery contract on Discord: the real bot process against the stand-in, through restarts and crashes.

Web, workers and ``manage.py runbot`` run as OS processes with the settings a
fresh install has. Each test breaks something in the middle of an answer and
checks what a person in the channel ends up seeing: the exact answer once, in
the message the bot started writing, and ✅ on the question.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from bots.render import split_message
from tests.e2e.bot import running_bot, start_bot

pytestmark = pytest.mark.e2e

SLOW = "".join(f"word{i} " for i in range(160))  # 8 s at 20 tokens/s
ANSWER = "Done.\n```python\ndef f():\n\treturn {'a': [1, (2, 3)]}\n```\n"
ANSWER_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def system(_fake_ollama_server, _fake_discord_server, tmp_path_factory):
    with running_bot(
        tmp_path_factory.mktemp("bot-delivery"), ollama_url=_fake_ollama_server.url, discord=_fake_discord_server
    ) as system:
        yield system


def ask_slowly(system, fake, fake_discord, text: str, *, then: str | None = None):
    """Mention the bot with ``text``; returns the question and its thread once the answer is visibly streaming."""
    if then is not None:
        fake.script(then, match=f"{text}$")
        fake.script(SLOW, match=f"{text}$", tokens_per_second=20, times=1)
    else:
        fake.script(SLOW, match=f"{text}$", tokens_per_second=20)
    asked = fake_discord.send_message("alice", "general", text, mention_bot=True)
    thread = fake_discord.wait_for(lambda: fake_discord.thread_of(asked), timeout=30, what="a thread")
    fake_discord.wait_for(
        lambda: any("word3" in m.content for m in fake_discord.bot_messages(thread)), timeout=60, what="streamed text"
    )
    return asked, thread


def worker_answering(system, asked, timeout: float = 60.0) -> str:
    """The worker generating the answer to ``asked`` (not simply the newest request's): on a loaded
    machine a missed heartbeat may have handed the request back for a moment."""
    query = (
        "from conversations.models import Request\n"
        f"result = Request.objects.filter(message__external_id='{asked.id}', status='generating')"
        ".values_list('worker', flat=True).first() or ''"
    )
    deadline = time.monotonic() + timeout
    while not (worker := system.query(query)):
        assert time.monotonic() < deadline, f"no worker is generating the answer to {asked.content!r}"
        time.sleep(0.25)
    return worker


def answered(fake_discord, asked) -> bool:
    return bool(fake_discord.message(asked.id).reactions.get("✅"))


def wait_answered(fake_discord, asked) -> None:
    fake_discord.wait_for(lambda: answered(fake_discord, asked), timeout=ANSWER_TIMEOUT, what="✅ on the question")


class BotRestartTests:
    def test_a_bot_restarted_mid_answer_finishes_it_in_the_same_message(self, system, fake, fake_discord):
        asked, thread = ask_slowly(system, fake, fake_discord, "bot restart")
        [first] = fake_discord.bot_messages(thread)

        system.kill("bot")  # SIGKILL: nothing is flushed, nothing is said goodbye
        start_bot(system, fake_discord)
        wait_answered(fake_discord, asked)

        messages = fake_discord.bot_messages(thread)
        assert [m.content for m in messages] == split_message(SLOW)
        assert messages[0].id == first.id  # finished where it started, not posted again
        reactions = fake_discord.message(asked.id).reactions
        assert not reactions.get("⏳") and reactions.get("✅") == {fake_discord.bot.id}

    def test_an_answer_whose_thread_was_archived_while_the_bot_was_down_is_finished_there(
        self, system, fake, fake_discord
    ):
        asked, thread = ask_slowly(system, fake, fake_discord, "archived while down")
        [first] = fake_discord.bot_messages(thread)

        system.kill("bot")
        # Archived by hand here; Discord's own timer does the same to a thread quiet for a day,
        # and Discord refuses edits in an archived thread until it is unarchived.
        fake_discord.archive_thread(thread)
        start_bot(system, fake_discord)
        wait_answered(fake_discord, asked)

        messages = fake_discord.bot_messages(thread)
        assert [m.content for m in messages] == split_message(SLOW)
        assert messages[0].id == first.id
        assert not fake_discord.channel(thread.id).archived

    def test_a_branch_from_a_thread_restarted_mid_answer_still_marks_the_reply_in_the_old_thread(
        self, system, fake, fake_discord
    ):
        fake.script("First answer.", match="branch root$", tokens_per_second=200)
        asked = fake_discord.send_message("alice", "general", "branch root", mention_bot=True)
        wait_answered(fake_discord, asked)
        thread = fake_discord.thread_of(asked)
        [first_answer] = fake_discord.bot_messages(thread)
        fake.script("Second answer.", match="branch second$", tokens_per_second=200)
        wait_answered(fake_discord, fake_discord.send_message("alice", thread, "branch second"))

        # The reply is written in the old thread; its answer streams into a new one.
        fake.script(SLOW, match="branch reply$", tokens_per_second=20)
        reply = fake_discord.send_message("alice", thread, "branch reply", reply_to=first_answer)
        pointer = fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.bot_messages(thread) if m.reference and m.reference.id == reply.id), None
            ),
            timeout=60,
            what="the pointer to the branch",
        )
        branch = fake_discord.channel(int(re.search(r"<#(\d+)>", pointer.content).group(1)))
        fake_discord.wait_for(
            lambda: any("word3" in m.content for m in fake_discord.bot_messages(branch)),
            timeout=60,
            what="streamed text",
        )

        system.kill("bot")
        start_bot(system, fake_discord)
        wait_answered(fake_discord, reply)

        assert "".join(m.content for m in fake_discord.bot_messages(branch)).startswith(SLOW.strip()[:40])
        reactions = fake_discord.message(reply.id).reactions
        assert not reactions.get("⏳") and reactions.get("✅") == {fake_discord.bot.id}


class WebRestartTests:
    def test_the_bots_answer_ends_with_the_exact_text_after_web_is_killed_and_restarted(
        self, system, fake, fake_discord
    ):
        asked, thread = ask_slowly(system, fake, fake_discord, "web restart")

        system.kill("web")
        system.start_web()
        wait_answered(fake_discord, asked)

        assert [m.content for m in fake_discord.bot_messages(thread)] == split_message(SLOW)
        system.wait_until_ready(workers=True, timeout=60)


class WorkerCrashTests:
    def test_a_worker_killed_mid_answer_shows_a_note_then_the_whole_answer(self, system, fake, fake_discord):
        asked, thread = ask_slowly(system, fake, fake_discord, "worker crash", then=ANSWER)
        [message] = fake_discord.bot_messages(thread)
        worker = worker_answering(system, asked)

        os.kill(int(worker.rsplit("/", 1)[1]), signal.SIGKILL)
        wait_answered(fake_discord, asked)

        shown = fake_discord.message(message.id)
        assert [m.content for m in fake_discord.bot_messages(thread)] == [ANSWER]
        assert any(version.content.startswith("↻ ") for version in shown.history)  # the user was told
