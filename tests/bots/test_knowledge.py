"""What the bot records for the server index, and the texts of its knowledge commands (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import discord

from bots.commands.knowledge import asked_header, forget_text, index_off_text, index_on_text
from bots.knowledge import indexed_channel_of, seen_message
from pipeline.footnotes import notice_lines

GUILD = SimpleNamespace(id=1)
INDEXED = {10: 1}
WHEN = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)


def message(
    *,
    channel_id=10,
    parent_id=None,
    kind=discord.ChannelType.text,
    bot=False,
    text="hello <@5>",
    clean="hello @Bob",
    type=discord.MessageType.default,
):
    channel = SimpleNamespace(id=channel_id, parent_id=parent_id, type=kind)
    author = SimpleNamespace(id=7, name="alice", display_name="Alice", bot=bot)
    return SimpleNamespace(
        id=99,
        channel=channel,
        guild=GUILD,
        author=author,
        content=text,
        clean_content=clean,
        type=type,
        created_at=WHEN,
        edited_at=None,
    )


class SeenMessageTests:
    def test_a_persons_message_in_an_indexed_channel_is_recorded_with_names_for_mentions(self):
        seen = seen_message(message(), INDEXED)

        assert seen is not None
        assert (seen.message_id, seen.channel_id, seen.posted_in, seen.guild_id) == (99, 10, 10, 1)
        assert (seen.author_id, seen.author_name, seen.text, seen.created_at) == (7, "Alice", "hello @Bob", WHEN)

    def test_a_public_thread_counts_as_its_parent_but_a_private_one_is_left_out(self):
        public = message(channel_id=20, parent_id=10, kind=discord.ChannelType.public_thread)
        private = message(channel_id=21, parent_id=10, kind=discord.ChannelType.private_thread)

        assert indexed_channel_of(public, INDEXED) == 10
        assert seen_message(public, INDEXED).posted_in == 20
        assert seen_message(private, INDEXED) is None

    def test_other_channels_bots_system_messages_and_empty_ones_are_left_out(self):
        assert seen_message(message(channel_id=11), INDEXED) is None
        assert seen_message(message(bot=True), INDEXED) is None
        assert seen_message(message(type=discord.MessageType.pins_add), INDEXED) is None
        assert seen_message(message(text="", clean="  "), INDEXED) is None


class KnowledgeTextsTests:
    def test_index_on_says_what_is_stored_and_for_how_long(self):
        text = index_on_text(channel="general", retention_days=365, created=True)

        assert text.startswith("#general is indexed now.")
        assert "text, author, time and link" in text and "365 days" in text and "/forget-me" in text

    def test_index_off_and_forget_me_say_what_was_deleted(self):
        assert "deleted from the index" in index_off_text(channel="general", changed=True)
        assert "nothing changed" in index_off_text(channel="general", changed=False)
        assert forget_text(1).startswith("Done: 1 of your message deleted")
        assert "3 of your messages" in forget_text(3)

    def test_the_header_quotes_the_question_line_by_line(self):
        assert asked_header(who="Alice", question="when?\nwhere?", found=2) == (
            "🔎 **Alice** asked the server's history:\n> when?\n> where?\n-# Answering from 2 messages."
        )

    def test_sources_are_listed_one_line_each_as_jump_links(self):
        notice = {
            "code": "sources",
            "sources": [
                {"n": 1, "url": "https://discord.com/channels/1/10/99", "author": "Alice", "date": "2026-03-02"},
                {"n": 2, "url": "https://discord.com/channels/1/10/98", "author": "Bob]", "date": "2026-03-01"},
            ],
        }

        assert notice_lines([notice, {"code": "turns_dropped", "count": 1}]) == [
            "🔗 [1] [Alice, 2026-03-02](https://discord.com/channels/1/10/99)",
            "🔗 [2] [Bob), 2026-03-01](https://discord.com/channels/1/10/98)",
            "🧵 The model did not see the 1 oldest message of this thread: they no longer fit its context window.",
        ]
