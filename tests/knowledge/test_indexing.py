"""Recording, embedding, editing, deleting and forgetting indexed messages, against the fake Ollama over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from knowledge import index, services
from knowledge.models import EmbeddingState, ForgottenUser, IndexedChannel, IndexedMessage
from knowledge.vectors import from_bytes
from tests.knowledge.helpers import GUILD, index_channel, said

GENERAL, RANDOM, ELSEWHERE = 501, 502, 503

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_indexes():
    index.forget_indexes()
    yield
    index.forget_indexes()


def embed_calls(fake_ollama):
    return [r for r in fake_ollama.requests if r.path == "/api/embed"]


def search(question: str, channels=(GENERAL,)):
    return services.find_sources(guild_id=GUILD, question=question, channel_ids=channels)


class RecordingTests:
    def test_nothing_is_recorded_outside_indexed_channels(self):
        index_channel(GENERAL)

        stored = services.record_messages(messages=[said("hello", channel_id=ELSEWHERE)])

        assert stored == 0
        assert not IndexedMessage.objects.exists()

    def test_messages_are_embedded_on_the_workers_in_batches(self, fake_ollama, settings):
        settings.KNOWLEDGE_EMBED_BATCH = 2
        index_channel(GENERAL)
        services.record_messages(messages=[said(f"message number {n}", channel_id=GENERAL) for n in range(5)])
        assert IndexedMessage.objects.filter(needs_embedding=True).count() == 5

        result = services.embed_pending()

        assert result == {"embedded": 5, "failed": 0}
        assert [len(call.body["input"]) for call in embed_calls(fake_ollama)] == [2, 2, 1]
        assert {call.body["model"] for call in embed_calls(fake_ollama)} == {"all-minilm"}
        row = IndexedMessage.objects.first()
        assert row is not None and not row.needs_embedding and row.embedding_model == "all-minilm"
        assert len(from_bytes(bytes(row.embedding))) == 384
        assert embed_calls(fake_ollama)[0].body["input"][0].startswith("message number")  # the text alone
        assert IndexedChannel.objects.get(channel_id=GENERAL).last_indexed_at is not None

    def test_a_message_of_several_clauses_is_embedded_with_each_of_them(self, fake_ollama):
        index_channel(GENERAL)
        long = said("Code freeze starts Wednesday noon, only hotfixes after that", channel_id=GENERAL)
        short = said("gg", channel_id=GENERAL)
        services.record_messages(messages=[long, short])

        services.embed_pending()

        # One call: the whole texts (newest first), then the long one's clauses.
        [call] = embed_calls(fake_ollama)
        assert call.body["input"] == [
            "gg",
            "Code freeze starts Wednesday noon, only hotfixes after that",
            "Code freeze starts Wednesday noon,",
            "only hotfixes after that",
        ]
        row = IndexedMessage.objects.get(pk=long.message_id)
        assert row.pieces is not None and len(from_bytes(bytes(row.pieces))) == 2 * 384
        assert IndexedMessage.objects.get(pk=short.message_id).pieces is None

        assert services.record_edit(message_id=long.message_id, text="no freeze after all")
        assert IndexedMessage.objects.get(pk=long.message_id).pieces is None
        services.embed_pending()
        assert embed_calls(fake_ollama)[-1].body["input"] == ["no freeze after all"]
        assert IndexedMessage.objects.get(pk=long.message_id).pieces is None

    def test_a_message_seen_again_unchanged_is_not_embedded_again(self, fake_ollama):
        index_channel(GENERAL)
        message = said("the release is on friday", channel_id=GENERAL)
        services.record_messages(messages=[message])
        services.embed_pending()

        assert services.record_messages(messages=[message]) == 0
        assert services.embed_pending() == {"embedded": 0, "failed": 0}
        assert len(embed_calls(fake_ollama)) == 1

    def test_the_knowledge_embedding_model_setting_wins_over_the_routers(self, fake_ollama, settings):
        fake_ollama.add_model("nomic-embed-text", capabilities=["embedding"])
        settings.KNOWLEDGE_EMBEDDING_MODEL = "nomic-embed-text"
        index_channel(GENERAL)
        services.record_messages(messages=[said("hi", channel_id=GENERAL)])

        services.embed_pending()

        assert {call.body["model"] for call in embed_calls(fake_ollama)} == {"nomic-embed-text"}

    def test_changing_the_model_embeds_everything_again_with_the_new_one(self, fake_ollama, settings):
        index_channel(GENERAL)
        services.record_messages(messages=[said("first", channel_id=GENERAL), said("second", channel_id=GENERAL)])
        services.embed_pending()
        fake_ollama.add_model("nomic-embed-text", capabilities=["embedding"])
        settings.KNOWLEDGE_EMBEDDING_MODEL = "nomic-embed-text"

        assert services.embed_pending() == {"embedded": 2, "failed": 0}

        assert set(IndexedMessage.objects.values_list("embedding_model", flat=True)) == {"nomic-embed-text"}
        assert services.embed_pending() == {"embedded": 0, "failed": 0}

    def test_a_missing_embedding_model_is_recorded_where_operators_look_and_retried_later(self, fake_ollama):
        fake_ollama.remove_model("all-minilm")
        index_channel(GENERAL)
        services.record_messages(messages=[said("the release is on friday", channel_id=GENERAL)])

        assert services.embed_pending() == {"embedded": 0, "failed": 1}

        channel = IndexedChannel.objects.get(channel_id=GENERAL)
        assert "ollama pull all-minilm" in channel.last_error
        assert "ollama pull all-minilm" in EmbeddingState.current().last_error
        assert IndexedMessage.objects.get().needs_embedding
        fake_ollama.reset()
        assert services.embed_pending() == {"embedded": 1, "failed": 0}
        channel.refresh_from_db()
        assert channel.last_error == ""

    def test_an_edit_is_embedded_again_and_found_by_its_new_words(self, fake_ollama):
        index_channel(GENERAL)
        message = said("the meetup is in the library", channel_id=GENERAL)
        services.record_messages(messages=[message])
        services.embed_pending()
        assert [s.message_id for s in search("where is the meetup library")] == [message.message_id]

        assert services.record_edit(message_id=message.message_id, text="the meetup moved to the harbour cafe")
        services.embed_pending()

        [found] = search("meetup harbour cafe")
        assert found.message_id == message.message_id and "harbour" in found.text
        assert IndexedMessage.objects.get().edited_at is not None

    def test_a_deleted_message_leaves_every_search_at_once(self, fake_ollama):
        index_channel(GENERAL)
        message = said("the wifi password is swordfish", channel_id=GENERAL)
        services.record_messages(messages=[message])
        services.embed_pending()
        assert search("what is the wifi password")  # the in-memory index now holds it

        assert services.record_deletions(message_ids=[message.message_id]) == 1

        assert search("what is the wifi password") == []
        row = IndexedMessage.objects.get()
        assert row.deleted and row.text == "" and row.embedding is None and row.pieces is None

    def test_forget_me_deletes_the_users_messages_and_keeps_new_ones_out(self, fake_ollama):
        index_channel(GENERAL)
        services.record_messages(
            messages=[
                said("alice likes tea", channel_id=GENERAL, author_id=7),
                said("bob likes coffee", channel_id=GENERAL, author_id=8, author="Bob"),
            ]
        )

        assert services.forget_user(user_id=7) == 1
        assert services.record_messages(messages=[said("alice again", channel_id=GENERAL, author_id=7)]) == 0

        assert ForgottenUser.objects.filter(user_id=7).exists()
        assert list(IndexedMessage.objects.filter(deleted=False).values_list("author_id", flat=True)) == [8]

    def test_opting_a_channel_out_deletes_its_entries(self):
        index_channel(GENERAL)
        index_channel(RANDOM, "random")
        services.record_messages(
            messages=[said("in general", channel_id=GENERAL), said("in random", channel_id=RANDOM)]
        )

        assert services.set_indexing(guild_id=GUILD, channel_id=GENERAL, name="general", on=False, by="test")

        assert list(IndexedMessage.objects.values_list("text", flat=True)) == ["in random"]
        assert list(IndexedChannel.objects.values_list("channel_id", flat=True)) == [RANDOM]

    def test_messages_older_than_the_retention_are_deleted_by_the_cleanup(self, settings):
        settings.KNOWLEDGE_RETENTION_DAYS = 30
        index_channel(GENERAL)
        services.record_messages(messages=[said("recent", channel_id=GENERAL)])
        old = said("old", channel_id=GENERAL, at=timezone.now() - timedelta(days=20))
        services.record_messages(messages=[old])
        assert (
            services.record_messages(
                messages=[said("too old to store", channel_id=GENERAL, at=timezone.now() - timedelta(days=40))]
            )
            == 0
        )
        IndexedMessage.objects.filter(message_id=old.message_id).update(created_at=timezone.now() - timedelta(days=31))

        assert services.cleanup() == {"expired": 1, "purged": 0}

        assert list(IndexedMessage.objects.filter(deleted=False).values_list("text", flat=True)) == ["recent"]
        IndexedMessage.objects.filter(deleted=True).update(changed_at=timezone.now() - timedelta(hours=2))
        assert services.cleanup() == {"expired": 0, "purged": 1}
        assert IndexedMessage.objects.count() == 1

    def test_the_backfill_cursor_moves_with_each_page_and_ends_when_history_does(self):
        index_channel(GENERAL)
        [target] = services.channels_to_backfill()
        assert target.before is None

        page = [said(f"old message {n}", channel_id=GENERAL) for n in range(3)]
        services.record_backfill_page(channel_id=GENERAL, messages=page, oldest_id=page[0].message_id, read=3)
        [target] = services.channels_to_backfill()
        assert target.before == page[0].message_id

        services.record_backfill_page(channel_id=GENERAL, messages=[], oldest_id=None, read=0)
        assert services.channels_to_backfill() == []
        channel = IndexedChannel.objects.get(channel_id=GENERAL)
        assert channel.backfill_done and channel.backfilled == 3
        assert IndexedMessage.objects.count() == 3

    def test_a_restarted_bot_reads_forward_from_the_newest_message_or_from_the_opt_in(self):
        index_channel(GENERAL)
        index_channel(RANDOM, "random")
        earlier = said("earlier", channel_id=GENERAL)
        newest = said("latest", channel_id=GENERAL)
        services.record_messages(messages=[newest, earlier])

        points = dict(services.catch_up_points())

        assert points[GENERAL] == newest.message_id
        opted_in = IndexedChannel.objects.get(channel_id=RANDOM).created_at
        assert points[RANDOM] == services.snowflake_at(opted_in)
        assert (points[RANDOM] >> 22) + services.DISCORD_EPOCH_MS == int(opted_in.timestamp() * 1000)

    def test_a_threads_reading_is_kept_page_by_page_and_resumed_forward_from_its_newest_message(self):
        index_channel(GENERAL)
        thread = 9001
        newest, older = said("newest", channel_id=GENERAL, posted_in=thread), said("older", channel_id=GENERAL)
        assert services.thread_progress(thread_id=thread) is None

        services.record_thread_page(
            channel_id=GENERAL, thread_id=thread, messages=[newest], oldest_id=newest.message_id, started=True
        )
        progress = services.thread_progress(thread_id=thread)
        assert progress is not None and progress.before == newest.message_id and not progress.done
        services.record_thread_page(
            channel_id=GENERAL, thread_id=thread, messages=[older], oldest_id=None, started=False
        )
        done = services.thread_progress(thread_id=thread)
        assert done is not None and done.done and done.read_at == progress.read_at  # the reading began once

        # Only messages posted in the thread count (``older`` was posted in the channel itself).
        assert services.thread_catch_up_point(thread_id=thread) == max(
            newest.message_id, services.snowflake_at(done.read_at)
        )

    def test_a_thread_gone_from_discord_takes_its_messages_with_it(self):
        index_channel(GENERAL)
        in_thread = said("in the thread", channel_id=GENERAL, posted_in=9002)
        in_channel = said("in the channel", channel_id=GENERAL)
        services.record_thread_page(
            channel_id=GENERAL, thread_id=9002, messages=[in_thread, in_channel], oldest_id=None, started=True
        )

        assert services.forget_thread(thread_id=9002) == 1

        assert services.thread_progress(thread_id=9002) is None
        assert list(IndexedMessage.objects.filter(deleted=False).values_list("text", flat=True)) == ["in the channel"]

    def test_threads_discord_no_longer_lists_leave_the_index_with_their_messages(self):
        index_channel(GENERAL)
        index_channel(RANDOM, "random")
        listed = said("in a listed thread", channel_id=GENERAL, posted_in=9010)
        gone = said("in a deleted thread", channel_id=GENERAL, posted_in=9011)
        elsewhere = said("in another channel's thread", channel_id=RANDOM, posted_in=9012)
        own = said("in the channel itself", channel_id=GENERAL)
        services.record_messages(messages=[listed, gone, elsewhere, own])
        services.record_thread_page(channel_id=GENERAL, thread_id=9011, messages=[], oldest_id=None, started=True)

        assert services.forget_threads_gone(channel_id=GENERAL, present=[9010]) == 1

        assert services.thread_progress(thread_id=9011) is None
        assert sorted(IndexedMessage.objects.filter(deleted=False).values_list("text", flat=True)) == sorted(
            [listed.text, elsewhere.text, own.text]
        )

    def test_a_threads_reading_is_not_kept_for_a_channel_opted_out(self):
        assert (
            services.record_thread_page(channel_id=GENERAL, thread_id=9003, messages=[], oldest_id=None, started=True)
            == 0
        )
        assert services.thread_progress(thread_id=9003) is None

    def test_warming_loads_each_guilds_index_before_anyone_asks(self, fake_ollama):
        index_channel(GENERAL)
        services.record_messages(messages=[said("the wifi password is swordfish", channel_id=GENERAL)])
        services.embed_pending()

        assert GUILD not in index._indexes
        assert services.warm_indexes() == 1

        assert len(index._indexes[GUILD].index) == 1


class AskTests:
    def test_an_empty_question_is_refused(self):
        index_channel(GENERAL)

        with pytest.raises(services.AskRefused, match="Your question is empty"):
            search("   ")

    def test_a_server_with_no_indexed_channel_says_how_to_index_one(self):
        with pytest.raises(services.AskRefused, match="/index on"):
            search("when is the event?")

    def test_no_readable_indexed_channel_is_said_plainly(self):
        index_channel(GENERAL)

        with pytest.raises(services.AskRefused, match="None of the indexed channels"):
            search("when is the event?", channels=[ELSEWHERE])

    def test_an_unavailable_embedding_model_is_said_with_what_to_do(self, fake_ollama):
        index_channel(GENERAL)
        fake_ollama.remove_model("all-minilm")

        with pytest.raises(services.AskRefused, match="ollama pull all-minilm"):
            search("when is the event?")

    def test_it_finds_the_message_that_answers_with_its_link_author_and_date(self, fake_ollama):
        index_channel(GENERAL)
        fact = said("The next community event is on March 14 at the park", channel_id=GENERAL, author="Carol")
        services.record_messages(
            messages=[fact, said("anyone tried the new build?", channel_id=GENERAL), said("lunch?", channel_id=GENERAL)]
        )
        services.embed_pending()

        sources = search("when is the next community event?")

        assert sources[0].message_id == fact.message_id
        assert sources[0].author == "Carol" and sources[0].channel == "general"
        assert sources[0].url == f"https://discord.com/channels/{GUILD}/{GENERAL}/{fact.message_id}"
        assert sources[0].created_at == fact.created_at.isoformat()
        assert [s.n for s in sources] == list(range(1, len(sources) + 1))

    def test_only_channels_the_asker_may_read_are_searched(self, fake_ollama):
        index_channel(GENERAL)
        index_channel(RANDOM, "mods-only")
        services.record_messages(messages=[said("the secret launch date is june 3", channel_id=RANDOM)])
        services.embed_pending()

        assert search("secret launch date", channels=[GENERAL, RANDOM])
        assert search("secret launch date", channels=[GENERAL]) == []

    def test_nothing_relevant_gives_no_sources(self, fake_ollama):
        index_channel(GENERAL)
        services.record_messages(messages=[said("pizza tonight?", channel_id=GENERAL)])
        services.embed_pending()

        assert search("quarterly budget spreadsheet review") == []

    def test_the_asking_message_is_never_its_own_source(self, fake_ollama):
        # A mention that asks is indexed like any message of the channel, and may be before it is searched for.
        index_channel(GENERAL)
        answer = said("the release date is May 30", channel_id=GENERAL)
        question = said("@Trollama what did we decide about the release date?", channel_id=GENERAL)
        services.record_messages(messages=[answer, question])
        services.embed_pending()

        found = services.find_sources(
            guild_id=GUILD, question=question.text, channel_ids=[GENERAL], excluding=[question.message_id]
        )

        assert [s.message_id for s in found] == [answer.message_id]
        assert question.message_id in [s.message_id for s in search(question.text)]  # without: it would be

    def test_the_questions_embedding_is_charged_to_the_asker(self, fake_ollama):
        from budgets.models import UsageEntry
        from conversations.models import ChatUser, Platform

        asker = ChatUser.objects.create(platform=Platform.DISCORD, external_id="4242", username="asker")
        index_channel(GENERAL)
        services.record_messages(messages=[said("pizza tonight?", channel_id=GENERAL)])
        services.embed_pending()

        services.find_sources(guild_id=GUILD, question="who brings the pizza?", channel_ids=[GENERAL], user_id=asker.pk)

        [entry] = UsageEntry.objects.filter(user=asker)
        assert entry.kind == "knowledge" and entry.model == "all-minilm"
        assert entry.prompt_tokens > 0 and entry.total_tokens == entry.prompt_tokens

    def test_an_unavailable_embedding_model_charges_nothing(self, fake_ollama):
        from budgets.models import UsageEntry
        from conversations.models import ChatUser, Platform

        asker = ChatUser.objects.create(platform=Platform.DISCORD, external_id="4243", username="asker")
        index_channel(GENERAL)
        fake_ollama.remove_model("all-minilm")

        with pytest.raises(services.AskRefused, match="can't search the server's messages right now"):
            services.find_sources(guild_id=GUILD, question="when?", channel_ids=[GENERAL], user_id=asker.pk)
        assert not UsageEntry.objects.filter(user=asker).exists()


class ResyncTests:
    def test_a_restart_reads_the_recent_window_again_or_from_the_newest_message_if_older(self, settings):
        settings.KNOWLEDGE_RESYNC_DAYS = 3
        now = timezone.now()
        window = services.snowflake_at(now - timedelta(days=3))

        assert services.resync_start(newest=window + 10**12, now=now) == window
        assert services.resync_start(newest=window - 10**12, now=now) == window - 10**12
        settings.KNOWLEDGE_RESYNC_DAYS = 0
        assert services.resync_start(newest=window + 10**12, now=now) == window + 10**12

    def test_messages_a_reread_did_not_return_were_deleted_meanwhile(self):
        index_channel(GENERAL)
        older, kept, gone = (said(t, channel_id=GENERAL) for t in ("older", "kept", "gone"))
        in_thread = said("in a thread", channel_id=GENERAL, posted_in=777)
        services.record_messages(messages=[older, kept, gone, in_thread])

        removed = services.record_missing(
            channel_id=GENERAL,
            after=older.message_id,
            before=in_thread.message_id + 1,
            seen=[kept.message_id],
        )

        assert removed == 1
        alive = set(IndexedMessage.objects.filter(deleted=False).values_list("message_id", flat=True))
        assert alive == {older.message_id, kept.message_id, in_thread.message_id}


class PrefixTests:
    def test_a_model_trained_with_prefixes_gets_them_on_both_sides(self, fake_ollama, settings):
        fake_ollama.add_model("nomic-embed-text", capabilities=["embedding"])
        settings.KNOWLEDGE_EMBEDDING_MODEL = "nomic-embed-text:latest"
        index_channel(GENERAL)
        services.record_messages(messages=[said("game night is friday", channel_id=GENERAL)])
        services.embed_pending()

        search("when is game night?")

        inputs = [call.body["input"][0] for call in embed_calls(fake_ollama)]
        assert inputs == ["search_document: game night is friday", "search_query: when is game night?"]

    def test_a_model_without_prefixes_embeds_the_text_as_it_is(self):
        assert services.prefixes("all-minilm") == ("", "")
        assert services.embedding_text("Alice", "hello", "all-minilm:latest") == "hello"


class ReplyContextTests:
    def test_a_reply_is_embedded_after_the_start_of_the_message_it_answers(self, fake_ollama):
        index_channel(GENERAL)
        question = said("when is the pub quiz?", channel_id=GENERAL)
        services.record_messages(messages=[question])
        services.embed_pending()
        answer = said("Tuesday at 8", channel_id=GENERAL, author="Bob")
        services.record_messages(
            messages=[services.SeenMessage(**{**answer.__dict__, "reply_to": question.message_id})]
        )

        services.embed_pending()

        assert embed_calls(fake_ollama)[-1].body["input"] == ["when is the pub quiz?\nTuesday at 8"]
        assert IndexedMessage.objects.get(pk=answer.message_id).text == "Tuesday at 8"  # shown to the model as said
