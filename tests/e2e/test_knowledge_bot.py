"""End to end: server knowledge with the real bot process (``manage.py runbot``), workers and web.

The fake Discord plays the server (channels, permissions, history, edits,
deletions); the fake Ollama embeds (hashed bag of words) and answers. What is
checked is what people see in Discord and what the model was shown.
"""

from __future__ import annotations

import itertools
import signal
import time

import pytest

from tests.e2e.bot import running_bot, start_bot

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0
_names = itertools.count()

PENDING = """
from knowledge.models import IndexedMessage
result = [IndexedMessage.objects.filter(deleted=False, needs_embedding=False).count(),
          IndexedMessage.objects.filter(deleted=False, needs_embedding=True).count()]
"""


@pytest.fixture(scope="module")
def system(_fake_ollama_server, _fake_discord_server, tmp_path_factory):
    with running_bot(
        tmp_path_factory.mktemp("e2e-knowledge"),
        ollama_url=_fake_ollama_server.url,
        discord=_fake_discord_server,
        KNOWLEDGE_BACKFILL_PAGE_DELAY="0.2",
    ) as system:
        yield system


def wait_threads_read(system, *threads) -> None:
    """Until each thread's history reading is stored as done (what a restarted bot reads forward from)."""
    ids = [thread.id for thread in threads]
    query = (
        "from knowledge.models import IndexedThread\n"
        f"result = IndexedThread.objects.filter(thread_id__in={ids}, backfill_done=True).count() == {len(ids)}"
    )
    wait(lambda: system.query(query), what="the threads' reading stored as done")


def wait(predicate, *, what, timeout=TIMEOUT, every=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(every)


def command_answer(discord, interaction):
    """The text of a deferred command's first followup, once the bot sent it."""
    discord.wait_for(
        lambda: interaction.original_id and not discord.message(interaction.original_id).loading,
        timeout=TIMEOUT,
        what=f"the /{interaction.name} answer",
    )
    return discord.message(interaction.original_id).content


def embedded(system, count):
    """Wait until ``count`` messages are indexed and none waits for its embedding."""
    return wait(lambda: (lambda done: done[0] >= count and done[1] == 0)(system.query(PENDING)), what="embeddings")


def embedded_message(system, message):
    """Wait until this one message is indexed with its embedding (other tests' messages may be counted already)."""
    query = (
        "from knowledge.models import IndexedMessage\n"
        f"result = IndexedMessage.objects.filter(pk={message.id}, needs_embedding=False, deleted=False).exists()"
    )
    return wait(lambda: system.query(query), what=f"message {message.id} embedded")


def index_on(discord, channel):
    answer = command_answer(discord, discord.run_command("index", {"state": "on"}, user="owner", channel=channel))
    assert "is indexed now" in answer, answer


def ask(discord, who, channel, question):
    return discord.run_command("ask", {"question": question}, user=who, channel=channel)


def answer_after(discord, channel, header):
    """The bot's messages after the /ask header, once the header is marked finished (✅ or ❌)."""
    discord.wait_for(
        lambda: discord.message(header.id).reactions.get("✅") or discord.message(header.id).reactions.get("❌"),
        timeout=90,
        what="the /ask answer",
    )
    return [m for m in discord.bot_messages(channel) if m.id > header.id and not m.ephemeral]


def header_for(discord, channel, question):
    return discord.wait_for(
        lambda: next(
            (m for m in discord.bot_messages(channel) if question in m.content and "asked" in m.content), None
        ),
        timeout=TIMEOUT,
        what="the /ask header",
    )


class KnowledgeBotTests:
    def test_only_a_member_with_manage_server_can_index_a_channel(self, system, fake_discord):
        channel = fake_discord.add_channel(f"kb-refused-{next(_names)}")

        answer = command_answer(
            fake_discord, fake_discord.run_command("index", {"state": "on"}, user="alice", channel=channel)
        )

        assert "Manage Server" in answer
        assert (
            system.query(
                f"from knowledge.models import IndexedChannel\nresult = IndexedChannel.objects.filter(channel_id={channel.id}).count()"
            )
            == 0
        )

    def test_ask_without_indexed_channel_and_with_an_empty_question_say_what_to_do(self, system, fake_discord):
        channel = fake_discord.add_channel(f"kb-empty-{next(_names)}")

        first = command_answer(fake_discord, ask(fake_discord, "alice", channel, "when is the event?"))
        index_on(fake_discord, channel)
        second = command_answer(fake_discord, ask(fake_discord, "alice", channel, "   "))

        assert "No channel in this server is indexed yet" in first and "/index on" in first
        assert "Your question is empty" in second

    def test_history_and_new_messages_are_indexed_and_asked_with_linked_sources(self, system, fake, fake_discord):
        channel = fake_discord.add_channel(f"kb-town-{next(_names)}")
        week_ago = time.time() - 7 * 86_400
        old = fake_discord.add_history("bob", channel, "I will fix the login bug on Thursday", at=week_ago)
        for n in range(150):  # more than a page of history
            fake_discord.add_history("alice", channel, f"chatter about lunch option {n}", at=week_ago + 60 + n)
        index_on(fake_discord, channel)
        live = fake_discord.send_message("alice", channel, "The next community event is on March 14 at the park")
        embedded(system, 152)

        fake.script("It is on March 14, at the park [1].", match="community event")
        question = "when is the next community event?"
        interaction = ask(fake_discord, "bob", channel, question)
        private_note = command_answer(fake_discord, interaction)
        header = header_for(fake_discord, channel, question)
        answer = answer_after(fake_discord, channel, header)

        text = "\n".join(m.content for m in answer)
        assert text.startswith("It is on March 14, at the park [1].")
        link = f"https://discord.com/channels/{fake_discord.guild_id}/{channel.id}/{live.id}"
        assert "[1] [Alice, " in text and link in text
        assert "answer follows in the channel" in private_note
        chat = [r for r in fake.requests if r.path == "/api/chat" and question in str(r.body["messages"][-1])][-1]
        assert "The next community event is on March 14 at the park" in chat.body["messages"][0]["content"]
        # The backfilled history answers too.
        sources = system.query(
            "from knowledge.services import find_sources\n"
            f"result = [s.message_id for s in find_sources(guild_id={fake_discord.guild_id}, "
            f"question='who will fix the login bug?', channel_ids=[{channel.id}])]"
        )
        assert sources[0] == old.id
        history_calls = fake_discord.calls_to("GET /channels/{channel_id}/messages", channel=channel)
        assert len(history_calls) >= 2 and fake_discord.rate_limited == []

    def test_edits_are_reindexed_and_deleted_messages_are_never_shown(self, system, fake, fake_discord):
        channel = fake_discord.add_channel(f"kb-edits-{next(_names)}")
        index_on(fake_discord, channel)
        said = fake_discord.send_message("alice", channel, "The picnic is in the rose garden")
        embedded(system, 1)
        fake_discord.edit_message(said, "The picnic moved to the harbour pier")
        wait(
            lambda: system.query(
                f"from knowledge.models import IndexedMessage\nm = IndexedMessage.objects.get(pk={said.id})\n"
                "result = 'harbour' in m.text and not m.needs_embedding"
            ),
            what="the edit re-embedded",
        )

        fake.script("At the harbour pier [1].", match="picnic")
        question = "where is the picnic harbour pier?"
        ask(fake_discord, "bob", channel, question)
        answer_after(fake_discord, channel, header_for(fake_discord, channel, question))
        chat = [r for r in fake.requests if r.path == "/api/chat" and question in str(r.body["messages"][-1])][-1]
        assert "harbour pier" in chat.body["messages"][0]["content"]
        assert "rose garden" not in chat.body["messages"][0]["content"]

        fake_discord.delete_message(said)
        wait(
            lambda: system.query(
                f"from knowledge.models import IndexedMessage\nresult = IndexedMessage.objects.get(pk={said.id}).deleted"
            ),
            what="the deletion recorded",
        )
        # Words only the deleted message had: the fake's hashed embeddings match common words too.
        gone = command_answer(fake_discord, ask(fake_discord, "bob", channel, "picnic harbour pier"))
        assert "I found nothing" in gone

    def test_private_channels_answer_only_those_who_can_read_them_and_only_in_private(self, system, fake, fake_discord):
        public = fake_discord.add_channel(f"kb-lobby-{next(_names)}")
        private = fake_discord.add_channel(
            f"kb-mods-{next(_names)}", overwrites=fake_discord.private(roles=[fake_discord.world.moderator_role.id])
        )
        index_on(fake_discord, public)
        index_on(fake_discord, private)
        fake_discord.send_message("mod", private, "The secret launch date is June 3")
        embedded(system, 1)
        # Only the private message holds these words: the fake's hashed bag of words rates shared function words
        # ("what is the … date") as similar, and other tests' channels (the same guild) are readable by all.
        question = "secret launch date?"

        alice_in_private = command_answer(fake_discord, ask(fake_discord, "alice", public, question))
        mod_in_public = command_answer(fake_discord, ask(fake_discord, "mod", public, question))
        fake.script("June 3 [1].", match="secret launch")
        ask(fake_discord, "mod", private, question)
        answer = answer_after(fake_discord, private, header_for(fake_discord, private, question))

        assert "I found nothing" in alice_in_private
        assert "I found nothing" in mod_in_public  # the lobby's readers can't read the mods' channel
        assert "June 3 [1]." in answer[0].content

        # A moderator who loses the role loses the answers with it.
        fake_discord.world.members[fake_discord.mod.id].roles.clear()
        no_longer = command_answer(fake_discord, ask(fake_discord, "mod", private, question))
        fake_discord.world.members[fake_discord.mod.id].roles.append(fake_discord.world.moderator_role.id)
        assert "None of the indexed channels" in no_longer or "I found nothing" in no_longer

    def test_forget_me_removes_what_someone_said_and_keeps_them_out(self, system, fake_discord):
        channel = fake_discord.add_channel(f"kb-forget-{next(_names)}")
        index_on(fake_discord, channel)
        fake_discord.send_message("bob", channel, "My phone number is in the pinned note")
        embedded(system, 1)

        answer = command_answer(fake_discord, fake_discord.run_command("forget-me", user="bob", channel=channel))
        fake_discord.send_message("bob", channel, "Another thing bob said")
        fake_discord.send_message("alice", channel, "Alice is still indexed")
        wait(
            lambda: (
                system.query(
                    "from knowledge.models import IndexedMessage\n"
                    f"result = list(IndexedMessage.objects.filter(channel__channel_id={channel.id}, deleted=False)"
                    ".values_list('text', flat=True))"
                )
                == ["Alice is still indexed"]
            ),
            what="only alice's message indexed",
        )

        assert "deleted from the server index" in answer

    def test_what_was_said_while_the_bot_was_away_is_read_when_it_is_back(self, system, fake_discord):
        channel = fake_discord.add_channel(f"kb-away-{next(_names)}")
        index_on(fake_discord, channel)
        before = fake_discord.send_message("alice", channel, "before the restart")
        wait(
            lambda: system.query(
                f"from knowledge.models import IndexedMessage\nresult = IndexedMessage.objects.filter(pk={before.id}).exists()"
            ),
            what="the first message recorded",
        )

        system.kill("bot", signal.SIGTERM)
        # Not bob: he ran /forget-me above.
        missed = [fake_discord.send_message("mod", channel, f"said while the bot was away {n}") for n in range(3)]
        start_bot(system, fake_discord)

        query = (
            "from knowledge.models import IndexedMessage\n"
            f"result = sorted(IndexedMessage.objects.filter(channel__channel_id={channel.id}, deleted=False)"
            ".values_list('message_id', flat=True))"
        )
        indexed = wait(
            lambda: (lambda ids: ids if len(ids) == 4 else None)(system.query(query)), what="the missed ones"
        )

        assert set(indexed) >= {m.id for m in missed}

    def test_a_mention_about_the_servers_past_is_answered_from_the_index_with_sources(self, system, fake, fake_discord):
        channel = fake_discord.add_channel(f"kb-mention-{next(_names)}")
        index_on(fake_discord, channel)
        decided = fake_discord.send_message("alice", channel, "We agreed in the call: the release date is May 30")
        embedded_message(system, decided)

        fake.script("May 30 [1].", match="decide about the release date")
        asked = fake_discord.send_message(
            "mod", channel, "what did we decide about the release date?", mention_bot=True
        )
        thread = fake_discord.wait_for(lambda: fake_discord.thread_of(asked), timeout=TIMEOUT, what="a thread")
        fake_discord.wait_for(
            lambda: any("[1] [Alice, " in m.content for m in fake_discord.bot_messages(thread)),
            timeout=90,
            what="the answer with its sources",
        )

        text = "\n".join(m.content for m in fake_discord.bot_messages(thread))
        assert text.startswith("May 30 [1].")
        assert f"https://discord.com/channels/{fake_discord.guild_id}/{channel.id}/{decided.id}" in text
        chat = [c for c in fake.chats if "decide about the release date" in str(c.body["messages"][-1])][-1]
        assert "the release date is May 30" in chat.body["messages"][0]["content"]
        # The question's embedding is charged to the asker, as server knowledge usage.
        charged = system.query(
            "from budgets.models import UsageEntry\n"
            f"result = UsageEntry.objects.filter(user__external_id='{fake_discord.mod.id}', kind='knowledge').count()"
        )
        assert charged >= 1

    def test_a_general_question_with_the_same_words_is_routed_as_usual(self, system, fake, fake_discord):
        channel = fake_discord.add_channel(f"kb-general-{next(_names)}")
        index_on(fake_discord, channel)
        embedded_message(
            system, fake_discord.send_message("alice", channel, "We agreed in the call: the release date is May 30")
        )

        fake.script("A pre-release sorts before its release.", match="release date in semver")
        asked = fake_discord.send_message("mod", channel, "what is a release date in semver?", mention_bot=True)
        thread = fake_discord.wait_for(lambda: fake_discord.thread_of(asked), timeout=TIMEOUT, what="a thread")
        fake_discord.wait_for(
            lambda: any("pre-release" in m.content for m in fake_discord.bot_messages(thread)),
            timeout=90,
            what="the answer",
        )

        chat = [c for c in fake.chats if "release date in semver" in str(c.body["messages"][-1])][-1]
        assert "May 30" not in str(chat.body["messages"])
        assert not any("[1] [" in m.content for m in fake_discord.bot_messages(thread))

    def test_edits_and_deletions_made_while_the_bot_was_away_reach_the_index_when_it_is_back(
        self, system, fake_discord
    ):
        channel = fake_discord.add_channel(f"kb-resync-{next(_names)}")
        index_on(fake_discord, channel)
        edited = fake_discord.send_message("alice", channel, "The raid starts at 8")
        deleted = fake_discord.send_message("alice", channel, "My address is 12 Elm Street")
        kept = fake_discord.send_message("alice", channel, "Bring potions")
        rows = (
            "from knowledge.models import IndexedMessage\n"
            f"result = {{str(i): t for i, t in IndexedMessage.objects.filter(channel__channel_id={channel.id}, "
            "deleted=False).values_list('message_id', 'text')}"
        )
        wait(lambda: len(system.query(rows)) == 3, what="the three messages recorded")

        system.kill("bot", signal.SIGTERM)
        fake_discord.edit_message(edited, "The raid starts at 9 now")
        fake_discord.delete_message(deleted)
        start_bot(system, fake_discord)

        indexed = wait(
            lambda: (lambda found: found if len(found) == 2 and "9 now" in found.get(str(edited.id), "") else None)(
                system.query(rows)
            ),
            what="the edit and the deletion caught up",
        )
        assert set(indexed) == {str(edited.id), str(kept.id)}
        assert indexed[str(edited.id)] == "The raid starts at 9 now"

    def test_the_history_of_an_indexed_channels_public_threads_is_read_and_private_ones_never(
        self, system, fake_discord
    ):
        channel = fake_discord.add_channel(f"kb-threads-{next(_names)}")
        world = fake_discord.world
        active = world.add_thread(channel.id, "release planning", owner=fake_discord.alice)
        archived = world.add_thread(channel.id, "old bugs", owner=fake_discord.alice)
        private = world.add_thread(channel.id, "mods only", owner=fake_discord.mod)
        private.type = 12  # a private thread
        hour_ago = time.time() - 3600
        in_active = fake_discord.add_history("alice", active, "We ship v3 on the 12th", at=hour_ago)
        in_archived = fake_discord.add_history("alice", archived, "The crash was the image cache", at=hour_ago + 1)
        fake_discord.add_history("mod", private, "Ban list is in the vault", at=hour_ago + 2)
        archived.archived, archived.archived_at = True, hour_ago + 10
        index_on(fake_discord, channel)

        query = (
            "from knowledge.models import IndexedMessage\n"
            f"result = sorted([str(i), p] for i, p in IndexedMessage.objects.filter(channel__channel_id={channel.id})"
            ".values_list('message_id', 'posted_in'))"
        )
        found = wait(lambda: (lambda rows: rows if len(rows) >= 2 else None)(system.query(query)), what="threads read")
        time.sleep(2)  # the private thread would come in the same pass

        assert sorted(system.query(query)) == sorted(
            [[str(in_active.id), active.id], [str(in_archived.id), archived.id]]
        ), found

    def test_ask_while_the_embedding_model_is_missing_says_what_to_do(self, system, fake, fake_discord):
        channel = fake_discord.add_channel(f"kb-nomodel-{next(_names)}")
        index_on(fake_discord, channel)
        fake.remove_model("all-minilm")

        answer = command_answer(fake_discord, ask(fake_discord, "alice", channel, "when is the next event?"))

        assert "can't search the server's messages right now" in answer and "ollama pull all-minilm" in answer
        assert not [c for c in fake.chats if "when is the next event?" in str(c.body["messages"][-1])]

    def test_threads_read_before_a_restart_are_only_read_forward_and_catch_up_on_edits_and_deletions(
        self, system, fake_discord
    ):
        channel = fake_discord.add_channel(f"kb-thread-resync-{next(_names)}")
        world = fake_discord.world
        active = world.add_thread(channel.id, "raid night", owner=fake_discord.alice)
        archived = world.add_thread(channel.id, "last season", owner=fake_discord.alice)
        hour_ago = time.time() - 3600
        edited = fake_discord.add_history("alice", active, "The raid starts at 8", at=hour_ago)
        deleted = fake_discord.add_history("alice", active, "My address is 12 Elm Street", at=hour_ago + 1)
        kept = fake_discord.add_history("alice", active, "Bring potions", at=hour_ago + 2)
        old = fake_discord.add_history("alice", archived, "Season one ended in a draw", at=hour_ago - 600)
        archived.archived, archived.archived_at = True, hour_ago - 500
        index_on(fake_discord, channel)
        rows = (
            "from knowledge.models import IndexedMessage\n"
            f"result = {{str(i): t for i, t in IndexedMessage.objects.filter(channel__channel_id={channel.id}, "
            "deleted=False).values_list('message_id', 'text')}"
        )
        wait(lambda: len(system.query(rows)) == 4, what="both threads read")
        wait_threads_read(system, active, archived)

        system.kill("bot", signal.SIGTERM)
        fake_discord.edit_message(edited, "The raid starts at 9 now")
        fake_discord.delete_message(deleted)
        new = fake_discord.send_message("mod", active, "I'll bring the map")  # not bob: he ran /forget-me above
        restarted = time.time()
        start_bot(system, fake_discord)

        indexed = wait(
            lambda: (lambda found: found if len(found) == 4 and "9 now" in found.get(str(edited.id), "") else None)(
                system.query(rows)
            ),
            what="the thread's edit, deletion and new message caught up",
        )
        assert set(indexed) == {str(edited.id), str(kept.id), str(old.id), str(new.id)}
        assert indexed[str(edited.id)] == "The raid starts at 9 now"
        # Neither thread's history was read from the newest backward again: the active one only forward
        # (from its newest message, or the resync window), the archived one, untouched since, not at all.
        reads = [c for c in fake_discord.calls_to("GET /channels/{channel_id}/messages") if c.at >= restarted]
        assert [c for c in reads if c.channel_id == active.id]
        assert all("after" in c.query for c in reads if c.channel_id == active.id)
        assert not [c for c in reads if c.channel_id == archived.id]

    def test_a_message_deleted_in_an_archived_thread_while_the_bot_was_away_leaves_the_index(
        self, system, fake_discord
    ):
        channel = fake_discord.add_channel(f"kb-archived-gone-{next(_names)}")
        world = fake_discord.world
        archived = world.add_thread(channel.id, "old plans", owner=fake_discord.alice)
        hour_ago = time.time() - 3600
        deleted = fake_discord.add_history("alice", archived, "My phone number is 555 0100", at=hour_ago)
        kept = fake_discord.add_history("alice", archived, "We picked the blue logo", at=hour_ago + 1)
        archived.archived, archived.archived_at = True, hour_ago + 10
        index_on(fake_discord, channel)
        rows = (
            "from knowledge.models import IndexedMessage\n"
            f"result = sorted(str(i) for i in IndexedMessage.objects.filter(channel__channel_id={channel.id}, "
            "deleted=False).values_list('message_id', flat=True))"
        )
        wait(lambda: len(system.query(rows)) == 2, what="the archived thread read")
        wait_threads_read(system, archived)

        system.kill("bot", signal.SIGTERM)
        # Discord refuses a deletion in an archived thread; its client unarchives the thread first
        # (the stand-in does the same), and the thread is archived again before the bot is back.
        fake_discord.delete_message(deleted)
        fake_discord.archive_thread(archived)
        start_bot(system, fake_discord)

        wait(lambda: system.query(rows) == [str(kept.id)], what="the deletion caught up")

    def test_a_deleted_thread_takes_its_messages_out_of_the_index_live_or_while_the_bot_was_away(
        self, system, fake_discord
    ):
        channel = fake_discord.add_channel(f"kb-thread-gone-{next(_names)}")
        world = fake_discord.world
        live = world.add_thread(channel.id, "deleted live", owner=fake_discord.alice)
        away = world.add_thread(channel.id, "deleted while away", owner=fake_discord.alice)
        kept = world.add_thread(channel.id, "kept", owner=fake_discord.alice)
        hour_ago = time.time() - 3600
        for n, thread in enumerate((live, away, kept)):
            fake_discord.add_history("alice", thread, f"said in {thread.name}", at=hour_ago + n)
        in_channel = fake_discord.add_history("alice", channel, "said in the channel", at=hour_ago + 5)
        index_on(fake_discord, channel)
        rows = (
            "from knowledge.models import IndexedMessage\n"
            f"result = sorted(IndexedMessage.objects.filter(channel__channel_id={channel.id}, deleted=False)"
            ".values_list('text', flat=True))"
        )
        wait(lambda: len(system.query(rows)) == 4, what="the channel and its threads read")

        fake_discord.delete_thread(live)
        wait(lambda: "said in deleted live" not in system.query(rows), what="the live deletion applied")
        system.kill("bot", signal.SIGTERM)
        world.channels.pop(away.id)  # deleted while the bot was away: no event will come
        start_bot(system, fake_discord)

        remaining = wait(
            lambda: (lambda found: found if len(found) == 2 else None)(system.query(rows)),
            what="the deletion caught up",
        )
        assert remaining == sorted(["said in kept", in_channel.content])
