"""End to end (issue 15 §3): reply chains, the notices under answers, and the owner's access rules.

The real ``manage.py runbot`` with web and workers, default settings, against
the Discord stand-in and the fake Ollama; the test plays the people in the server.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

import pytest

from bots.intake import BLOCKED, DMS_OFF, NOT_ALLOWED
from tests.conversations.files import image
from tests.e2e.bot import finished, module_bot_system, wait_for_answer

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT = 90.0
RULES_READ = "Access rules in force:"
BRANCH_NOTE = "-# ↪️ Branched from the message you replied to"


system = module_bot_system("e2e-bot-branches")


def refusal_of(discord, asked):
    """The bot's reply to ``asked`` in its channel (a refusal, or a pointer to a branch), if any."""
    replies = (m for m in discord.bot_messages(asked.channel_id) if m.reference and m.reference.id == asked.id)
    return next(replies, None)


def answer_to(discord, asked, *, timeout=ANSWER_TIMEOUT):
    """Wait until the bot marked ``asked`` done (failing at once when it was refused instead); return it."""
    discord.wait_for(
        lambda: (
            finished(discord, asked)
            or (
                refusal_of(discord, asked)
                and discord.thread_of(asked) is None
                and "Branched into" not in refusal_of(discord, asked).content
            )
        ),
        timeout=timeout,
        what=f"the answer to {asked.content!r}",
    )
    assert finished(discord, asked), f"refused: {refusal_of(discord, asked).content}"
    return asked


def chat_history(fake, question):
    """The user and assistant turns the model was sent with ``question`` as the new message."""
    for request in reversed(fake.requests):
        messages = (request.body or {}).get("messages") if request.path == "/api/chat" else None
        if messages and messages[-1]["role"] == "user" and messages[-1]["content"] == question:
            return [m["content"] for m in messages if m["role"] != "system"]
    raise AssertionError(f"the model was never asked {question!r}")


def last_bot_message(discord, channel):
    return discord.bot_messages(channel)[-1]


def rules_read(system) -> int:
    return (system.data_dir / "bot.log").read_text(errors="replace").count(RULES_READ)


def apply_rules(system, discord, code: str) -> None:
    """Run ``code`` in a Django shell (it changes access rules) and wait until the bot has read the change."""
    before = rules_read(system)
    system.query(f"from bots.models import AccessRule, DiscordAccess\n{code}\nresult = True")
    discord.wait_for(lambda: rules_read(system) > before, timeout=30, what="the bot to read the access rules")


@contextlib.contextmanager
def access_rules(system, discord, code: str) -> Iterator[None]:
    """The access rules ``code`` makes, in force in the bot for the block; the defaults again after."""
    apply_rules(system, discord, code)
    try:
        yield
    finally:
        apply_rules(system, discord, "AccessRule.objects.all().delete()\nDiscordAccess.objects.all().delete()")


class ReplyChainTests:
    def test_a_reply_in_a_thread_to_an_earlier_answer_branches_into_a_new_thread(self, system, fake, fake_discord):
        fake.script("First answer.", tokens_per_second=200)
        asked = answer_to(fake_discord, fake_discord.send_message("alice", "general", "question one", mention_bot=True))
        thread = fake_discord.thread_of(asked)
        first_answer = last_bot_message(fake_discord, thread)
        fake.script("Second answer.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_message("alice", thread, "question two"))

        fake.script("A branch answer.", tokens_per_second=200)
        branching = answer_to(
            fake_discord, fake_discord.send_message("alice", thread, "what if instead?", reply_to=first_answer)
        )

        pointer = next(m for m in fake_discord.bot_messages(thread) if m.reference and m.reference.id == branching.id)
        branch_id = int(re.search(r"<#(\d+)>", pointer.content).group(1))
        branch = fake_discord.channel(branch_id)
        assert branch.parent_id == fake_discord.general.id and branch.owner_id == fake_discord.bot.id
        [answer] = fake_discord.bot_messages(branch)
        assert answer.content.startswith("A branch answer.\n") and BRANCH_NOTE in answer.content
        assert chat_history(fake, "what if instead?") == ["question one", "First answer.", "what if instead?"]
        # The first conversation is untouched, and still answered where it was.
        fake.script("Third answer.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_message("alice", thread, "question three"))
        assert chat_history(fake, "question three") == [
            "question one",
            "First answer.",
            "question two",
            "Second answer.",
            "question three",
        ]
        # And the branch goes on in its own thread, without the note.
        fake.script("Branch, continued.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_message("alice", branch, "go on"))
        assert chat_history(fake, "go on") == [
            "question one",
            "First answer.",
            "what if instead?",
            "A branch answer.",
            "go on",
        ]
        assert last_bot_message(fake_discord, branch).content == "Branch, continued."

    def test_a_reply_to_the_latest_answer_is_a_follow_up_in_the_same_thread(self, system, fake, fake_discord):
        carol = fake_discord.add_user("carol")
        fake.script("Only answer.", tokens_per_second=200)
        asked = answer_to(fake_discord, fake_discord.send_message(carol, "general", "single", mention_bot=True))
        thread = fake_discord.thread_of(asked)
        threads_before = len(fake_discord.calls_to("POST /channels/{channel_id}/threads"))

        fake.script("Follow-up answer.", tokens_per_second=200)
        answer_to(
            fake_discord,
            fake_discord.send_message(carol, thread, "and then?", reply_to=last_bot_message(fake_discord, thread)),
        )

        assert last_bot_message(fake_discord, thread).content == "Follow-up answer."
        assert len(fake_discord.calls_to("POST /channels/{channel_id}/threads")) == threads_before
        assert chat_history(fake, "and then?") == ["single", "Only answer.", "and then?"]

    def test_a_reply_in_the_channel_to_a_message_that_started_a_thread_branches_from_its_answer(
        self, system, fake, fake_discord
    ):
        dave = fake_discord.add_user("dave")
        fake.script("Root answer.", tokens_per_second=200)
        root = answer_to(fake_discord, fake_discord.send_message(dave, "general", "root question", mention_bot=True))
        fake.script("Later answer.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_message(dave, fake_discord.thread_of(root), "later question"))

        fake.script("Branched from the root.", tokens_per_second=200)
        again = answer_to(
            fake_discord,
            fake_discord.send_message(dave, "general", "the root again", mention_bot=True, reply_to=root),
        )

        branch = fake_discord.thread_of(again)
        [answer] = fake_discord.bot_messages(branch)
        assert answer.content.startswith("Branched from the root.\n") and BRANCH_NOTE in answer.content
        assert chat_history(fake, "the root again") == ["root question", "Root answer.", "the root again"]

    def test_a_reply_in_a_dm_branches_and_the_next_message_continues_the_branch(self, system, fake, fake_discord):
        olga = fake_discord.add_user("olga")  # a DM of her own: other modules count the bot's messages in theirs
        fake.script("DM answer one.", tokens_per_second=200)
        first = answer_to(fake_discord, fake_discord.send_dm(olga, "dm one"))
        first_answer = last_bot_message(fake_discord, first.channel_id)
        fake.script("DM answer two.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(olga, "dm two"))

        fake.script("DM branch.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(olga, "dm branch", reply_to=first_answer))
        fake.script("DM branch goes on.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(olga, "dm after"))

        branch_answer = fake_discord.bot_messages(first.channel_id)[-2]
        assert branch_answer.content.startswith("DM branch.\n") and BRANCH_NOTE in branch_answer.content
        assert chat_history(fake, "dm branch") == ["dm one", "DM answer one.", "dm branch"]
        assert chat_history(fake, "dm after") == ["dm one", "DM answer one.", "dm branch", "DM branch.", "dm after"]
        # The conversation set aside is kept, and a reply to its last answer branches from all of it.
        set_aside = next(m for m in fake_discord.bot_messages(first.channel_id) if m.content == "DM answer two.")
        fake.script("Back to two.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(olga, "back to two", reply_to=set_aside))
        assert chat_history(fake, "back to two") == [
            "dm one",
            "DM answer one.",
            "dm two",
            "DM answer two.",
            "back to two",
        ]

    def test_a_reset_in_a_dm_forgets_the_conversations_set_aside_there_too(self, system, fake, fake_discord):
        rui = fake_discord.add_user("rui")
        fake.script("Kept answer one.", tokens_per_second=200)
        first = answer_to(fake_discord, fake_discord.send_dm(rui, "my code word is heron"))
        dm = first.channel_id
        first_answer = last_bot_message(fake_discord, dm)
        fake.script("Kept answer two.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(rui, "and my pin is 1234"))
        set_aside = last_bot_message(fake_discord, dm)
        fake.script("A branch.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(rui, "branch here", reply_to=first_answer))

        [told] = wait_for_answer(fake_discord, fake_discord.run_command("reset", user=rui, channel=dm))

        # The branch's 4 messages (2 copied from before the reply, the reply and its answer) and the 4 set aside.
        assert told.content.startswith("rui reset this conversation: I've forgotten its 8 messages.")
        # A reply to the set-aside answer finds nothing to branch from: it is a new turn of the reset conversation.
        fake.script("Fresh start.", tokens_per_second=200)
        answer_to(fake_discord, fake_discord.send_dm(rui, "what was my pin?", reply_to=set_aside))
        assert chat_history(fake, "what was my pin?") == ["what was my pin?"]


class NoticeTests:
    def test_a_refused_file_and_images_the_model_cannot_see_are_noted_under_the_answer(
        self, system, fake, fake_discord
    ):
        erin = fake_discord.add_user("erin")
        system.query(
            "from routing.models import Route\nfrom routing.sync import sync_models\nsync_models()\n"
            "Route.objects.filter(slug='vision').update(enabled=False)\nresult = True"
        )
        try:
            fake.script("I read your text.", tokens_per_second=200)
            asked = answer_to(
                fake_discord,
                fake_discord.send_message(
                    erin,
                    "general",
                    "what are these?",
                    mention_bot=True,
                    attachments=[
                        ("tool.exe", b"MZ\x90\x00", "application/x-msdownload"),
                        ("red.png", image(32, 32), "image/png"),
                    ],
                ),
            )
        finally:
            system.query(
                "from routing.models import Route\nRoute.objects.filter(slug='vision').update(enabled=True)\n"
                "result = True"
            )

        [answer] = fake_discord.bot_messages(fake_discord.thread_of(asked))
        text, _, footer = answer.content.partition("\n\n-# ")
        assert text == "I read your text."
        assert "`tool.exe` was left out: I only read images, PDFs, and text or code files" in footer
        assert "cannot see images: it saw only the names of your 1 image." in footer
        assert all(line.startswith("-# ") for line in ("-# " + footer).splitlines())
        [chat] = [r for r in fake.requests if r.path == "/api/chat" and "what are these?" in str(r.body)][-1:]
        assert "images" not in chat.body["messages"][-1]

    def test_a_file_alone_that_cannot_be_used_is_refused_in_a_reply(self, system, fake, fake_discord):
        frank = fake_discord.add_user("frank")
        asked = fake_discord.send_message(
            frank, "general", "", mention_bot=True, attachments=[("tool.exe", b"MZ", "application/x-msdownload")]
        )

        reply = fake_discord.wait_for(
            lambda: next(
                (m for m in fake_discord.bot_messages("general") if m.reference and m.reference.id == asked.id), None
            ),
            timeout=30,
            what="the refusal",
        )
        assert reply.content.startswith("I can't use tool.exe: I only read images, PDFs, and text or code files")
        assert fake_discord.thread_of(asked) is None

    def test_the_terminal_prints_the_same_notices(self, system, fake, tmp_path):
        tool = tmp_path / "tool.exe"
        tool.write_bytes(b"MZ\x90\x00")
        picture = tmp_path / "red.png"
        picture.write_bytes(image(32, 32))
        system.query("from routing.sync import sync_models\nsync_models()\nresult = True")
        fake.script("Terminal answer.", tokens_per_second=200)

        result = system.chat("--route", "general", "--file", str(tool), "--file", str(picture), "look at these")

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Terminal answer.\n")
        assert '"tool.exe" was left out: I only read images' in result.stderr
        assert "cannot see images: it saw only the names of your 1 image." in result.stderr


class AccessTests:
    def test_a_blocked_user_is_ignored_and_unblocked_without_a_restart(self, system, fake, fake_discord):
        bob = fake_discord.bob.id
        with access_rules(
            system, fake_discord, f"AccessRule.objects.create(kind='user', action='block', discord_id={bob})"
        ):
            ignored = fake_discord.send_message("bob", "general", "blocked question", mention_bot=True)
            fake.script("Alice is answered.", tokens_per_second=200)
            # Messages are handled in order: once Alice's is answered, Bob's was seen.
            answer_to(fake_discord, fake_discord.send_message("alice", "general", "after bob", mention_bot=True))

            assert fake_discord.thread_of(ignored) is None
            assert not [m for m in fake_discord.bot_messages("general") if m.reference and m.reference.id == ignored.id]
            assert not fake_discord.message(ignored.id).reactions
            assert "blocked question" not in str([r.body for r in fake.requests])
            # A command is answered, privately, so Discord never says the bot did not respond.
            command = fake_discord.run_command("usage", user="bob", channel="general")
            fake_discord.wait_for(lambda: command.original_id, timeout=30, what="the /usage answer")
            told = fake_discord.message(command.original_id)
            assert told.ephemeral and told.content == BLOCKED and not command.late

        fake.script("Bob is back.", tokens_per_second=200)
        back = answer_to(fake_discord, fake_discord.send_message("bob", "general", "unblocked now", mention_bot=True))
        assert last_bot_message(fake_discord, fake_discord.thread_of(back)).content == "Bob is back."

    def test_a_role_allow_list_answers_its_members_and_tells_the_others(self, system, fake, fake_discord):
        moderator = fake_discord.world.moderator_role.id
        with access_rules(system, fake_discord, f"AccessRule.objects.create(kind='role', discord_id={moderator})"):
            outsider = fake_discord.send_message("alice", "general", "may I?", mention_bot=True)
            told = fake_discord.wait_for(
                lambda: next(
                    (m for m in fake_discord.bot_messages("general") if m.reference and m.reference.id == outsider.id),
                    None,
                ),
                timeout=30,
                what="the refusal",
            )
            fake.script("Hello, moderator.", tokens_per_second=200)
            member = answer_to(fake_discord, fake_discord.send_message("mod", "general", "I may", mention_bot=True))

            assert told.content == NOT_ALLOWED
            assert fake_discord.thread_of(outsider) is None
            assert last_bot_message(fake_discord, fake_discord.thread_of(member)).content == "Hello, moderator."

    def test_direct_messages_turned_off_in_the_admin_are_refused_with_a_pointer(self, system, fake, fake_discord):
        pia = fake_discord.add_user("pia")
        with access_rules(system, fake_discord, "DiscordAccess.objects.create(direct_messages='off')"):
            asked = fake_discord.send_dm(pia, "private question")
            told = fake_discord.wait_for(
                lambda: next(
                    (
                        m
                        for m in fake_discord.bot_messages(asked.channel_id)
                        if m.reference and m.reference.id == asked.id
                    ),
                    None,
                ),
                timeout=30,
                what="the refusal",
            )

            assert told.content == DMS_OFF
            assert "private question" not in str([r.body for r in fake.requests])


# 48,000 characters of Japanese: past ATTACHMENT_MAX_TEXT_CHARS (40,000), and far past any route's context window.
BIG_TEXT = "漢字のテキスト。" * 6000
SUMMARY_POSTED = "📝 Earlier conversation was summarized"


def footer(message) -> list[str]:
    return [line.removeprefix("-# ") for line in message.content.splitlines() if line.startswith("-# ")]


def spend_code(platform: str, external_id: str, username: str, tokens: int) -> str:
    """Django shell code charging ``tokens`` to a chat user (made if new), as earlier answers this week would have."""
    return (
        "from budgets.usage import record_usage\nfrom pipeline.services import get_or_create_chat_user\n"
        f"user = get_or_create_chat_user(platform={platform!r}, external_id={external_id!r}, username={username!r})\n"
        f"record_usage(user=user, kind='answer', model='gpt-oss:20b', prompt_tokens={tokens}, completion_tokens=0)\n"
        "result = True"
    )


class EveryNoticeTests:
    """Each notice the pipeline stores, as it reaches a person: under a Discord answer and on the terminal's stderr."""

    def test_cuts_dropped_turns_and_a_summary_are_noted_under_discord_answers(self, system, fake, fake_discord):
        hank = fake_discord.add_user("hank")
        fake.script("Read it.", tokens_per_second=200)

        first = answer_to(
            fake_discord,
            fake_discord.send_message(
                hank,
                "general",
                "read this",
                mention_bot=True,
                attachments=[("big.txt", BIG_TEXT.encode(), "text/plain")],
            ),
        )
        thread = fake_discord.thread_of(first)
        cut = footer(last_bot_message(fake_discord, thread))
        answer_to(fake_discord, fake_discord.send_message(hank, thread, "second question"))
        dropped = footer(last_bot_message(fake_discord, thread))
        answer_to(fake_discord, fake_discord.send_message(hank, thread, "third question"))
        # Six messages now: the summary covers all but the last five, in the background, and the bot says so.
        fake_discord.wait_for(
            lambda: any(m.content.startswith(SUMMARY_POSTED) for m in fake_discord.bot_messages(thread)),
            timeout=ANSWER_TIMEOUT,
            what="the summary",
        )
        answer_to(fake_discord, fake_discord.send_message(hank, thread, "fourth question"))
        summarized = footer(last_bot_message(fake_discord, thread))

        assert "✂️ `big.txt`: Only the first 40,000 of 48,000 characters of this file were read." in cut
        assert any(line.startswith("✂️ Your message was too long for the model's context window: ") for line in cut)
        assert (
            "🧵 The model did not see the 1 oldest message of this thread: they no longer fit its context window."
            in dropped
        )
        assert any(line.startswith("📝 The earlier conversation (") for line in summarized), summarized

    def test_a_capped_answer_and_a_budget_warning_are_noted_under_a_discord_answer(self, system, fake, fake_discord):
        ivy = fake_discord.add_user("ivy")
        system.query(spend_code("discord", str(ivy.id), "ivy", 98_800))  # 1,200 of the free tier's 100,000 left
        fake.script(" ".join(["word"] * 3000), match="long answer please", tokens_per_second=2000)

        asked = answer_to(
            fake_discord, fake_discord.send_message(ivy, "general", "long answer please", mention_bot=True)
        )

        lines = footer(last_bot_message(fake_discord, fake_discord.thread_of(asked)))
        assert any(line.startswith("⏳ This answer stopped at ") for line in lines), lines
        assert any(line.startswith("⚠️ You have used ") for line in lines), lines

    def test_the_terminal_prints_every_notice_on_stderr(self, system, fake, tmp_path):
        big = tmp_path / "big.txt"
        big.write_text(BIG_TEXT)
        fake.script("Terminal read it.", tokens_per_second=2000)

        first = system.chat("--user", "kim", "--file", str(big), "read this")
        name = re.search(r"--thread (\S+)", first.stderr).group(1)
        second = system.chat("--user", "kim", "--thread", name, "second question")
        system.chat("--user", "kim", "--thread", name, "third question")
        summary = f"from conversations.models import Thread\nresult = Thread.objects.get(external_id={name!r}).summary"
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while not system.query(summary):  # each look is a Django shell: a few seconds apart
            assert time.monotonic() < deadline, "the thread was never summarized"
        fourth = system.chat("--user", "kim", "--thread", name, "fourth question")
        system.query(spend_code("local", "lee", "lee", 98_800))
        fake.script(" ".join(["word"] * 3000), match="long answer please", tokens_per_second=2000)
        capped = system.chat("--user", "lee", "long answer please")

        assert '✂️ "big.txt": Only the first 40,000 of 48,000 characters of this file were read.' in first.stderr
        assert "✂️ Your message was too long for the model's context window: " in first.stderr
        assert "🧵 The model did not see the 1 oldest message of this thread" in second.stderr
        assert "📝 The earlier conversation (" in fourth.stderr
        assert "⏳ This answer stopped at " in capped.stderr and "⚠️ You have used " in capped.stderr
        assert all(r.returncode == 0 for r in (first, second, fourth, capped))
