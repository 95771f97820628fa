"""Which Discord messages become turns."""

from __future__ import annotations

from typing import Any

import pytest

from bots.intake import (
    BLOCKED,
    DMS_OFF,
    NOT_ALLOWED,
    OUTSIDE,
    Access,
    AccessPolicy,
    Allowlist,
    ChannelKind,
    Intake,
    MessageFacts,
    Person,
    decide,
    mention_ids,
    readable_mentions,
    strip_mentions,
    thread_name,
)


def facts(**overrides) -> MessageFacts:
    values: dict[str, Any] = {
        "author_is_bot": False,
        "is_system": False,
        "mentions_bot": False,
        "channel": ChannelKind.TEXT,
        "guild_id": 1,
        "channel_id": 10,
        "content": "<@99> hello",
    }
    values.update(overrides)
    return MessageFacts(**values)


class DecideTests:
    def test_a_mention_in_a_text_channel_starts_a_thread(self):
        assert decide(facts(mentions_bot=True)) is Intake.START_THREAD

    def test_a_follow_up_in_a_thread_the_bot_started_needs_no_mention(self):
        assert decide(facts(channel=ChannelKind.THREAD, in_thread_started_by_bot=True)) is Intake.TURN

    def test_a_mention_in_any_other_thread_answers_there(self):
        assert decide(facts(channel=ChannelKind.THREAD, mentions_bot=True)) is Intake.TURN

    def test_an_unaddressed_message_in_someone_elses_thread_is_ignored(self):
        assert decide(facts(channel=ChannelKind.THREAD)) is Intake.IGNORE

    def test_a_dm_is_a_turn(self):
        assert decide(facts(channel=ChannelKind.DM, guild_id=None, content="hi")) is Intake.TURN

    @pytest.mark.parametrize(
        "overrides",
        [
            {"author_is_bot": True, "mentions_bot": True},
            {"is_system": True, "mentions_bot": True},
            {"mentions_bot": False, "content": "@everyone look"},
            {"channel": ChannelKind.OTHER, "mentions_bot": True},
        ],
    )
    def test_bots_system_messages_and_broadcast_pings_are_ignored(self, overrides):
        assert decide(facts(**overrides)) is Intake.IGNORE

    @pytest.mark.parametrize("text", ["cancel", "<@99> stop", "Stop!", "CANCEL."])
    def test_cancel_or_stop_alone_cancels(self, text):
        assert decide(facts(channel=ChannelKind.THREAD, in_thread_started_by_bot=True, content=text)) is Intake.CANCEL

    def test_a_sentence_containing_stop_is_a_normal_turn(self):
        decision = decide(
            facts(channel=ChannelKind.THREAD, in_thread_started_by_bot=True, content="how do I stop a loop")
        )
        assert decision is Intake.TURN

    def test_the_allowlist_limits_guilds_and_channels_but_not_dms(self):
        allowlist = Allowlist(guilds=frozenset({1}), channels=frozenset({10}))

        assert decide(facts(mentions_bot=True), allowlist=allowlist) is Intake.START_THREAD
        assert decide(facts(mentions_bot=True, guild_id=2), allowlist=allowlist) is Intake.IGNORE
        assert decide(facts(mentions_bot=True, channel_id=11), allowlist=allowlist) is Intake.IGNORE
        thread = facts(channel=ChannelKind.THREAD, channel_id=500, parent_channel_id=10, mentions_bot=True)
        assert decide(thread, allowlist=allowlist) is Intake.TURN
        assert decide(facts(channel=ChannelKind.DM, guild_id=None), allowlist=allowlist) is Intake.TURN


class ThreadNameTests:
    def test_it_is_the_message_without_the_mention(self):
        assert thread_name("<@99>   what is   a monad?") == "what is a monad?"

    def test_it_is_trimmed_to_discords_limit_on_a_word_boundary(self):
        name = thread_name("<@99> " + "word " * 60)

        assert len(name) <= 100
        assert name.endswith("word…")

    def test_an_empty_message_gets_a_generic_name(self):
        assert thread_name("<@99>") == "Conversation"

    def test_strip_mentions_keeps_everything_else(self):
        assert strip_mentions("<@!99> keep\n  this ") == "keep\n  this"


BOT = 99
ALICE, SAM, OTHER_SAM = 1, 2, 3
PEOPLE = {ALICE: Person("Alice", "alice"), SAM: Person("Sam", "sam_k")}


def readable(content: str, people=PEOPLE, **maps) -> str:
    return readable_mentions(
        content, bot_id=BOT, people=people, roles=maps.get("roles", {}), channels=maps.get("channels", {})
    )


class ReadableMentionsTests:
    def test_only_the_bots_own_mention_is_removed(self):
        assert readable("<@99> ask <@2> about it") == "ask @Sam about it"
        assert readable("<@!99> ask <@!2>") == "ask @Sam"

    def test_namesakes_are_told_apart_by_their_username(self):
        people = {**PEOPLE, OTHER_SAM: Person("sam", "samuel")}

        assert readable("<@99> <@2> or <@3>?", people) == "@Sam (sam_k) or @sam (samuel)?"

    def test_a_namesake_of_the_author_is_told_apart_too(self):
        people = {ALICE: Person("Sam", "sam_k"), OTHER_SAM: Person("Sam", "samuel")}

        assert readable("<@99> tell <@3> hi", people) == "tell @Sam (samuel) hi"

    def test_roles_and_channels_become_names(self):
        text = readable("<@99> ping <@&7> in <#8>", roles={7: "Moderator"}, channels={8: "general"})

        assert text == "ping @Moderator in #general"

    def test_what_is_not_known_stays_as_discord_wrote_it(self):
        assert readable("<@99> <@5> <@&6> <#7> <@everyone>") == "<@5> <@&6> <#7> <@everyone>"

    def test_the_rest_of_the_text_is_untouched(self):
        assert readable("<@99>   keep\n\t  this  ") == "keep\n\t  this"

    def test_mention_ids_lists_kinds_and_ids(self):
        assert mention_ids("<@1> <@!2> <@&3> <#4>") == [("@", 1), ("@", 2), ("@&", 3), ("#", 4)]


class AccessPolicyTests:
    def test_with_no_lists_everyone_is_answered(self):
        assert AccessPolicy().access(facts(author_id=5, role_ids=frozenset({7}))) is Access.ALLOWED

    def test_a_blocked_user_is_ignored_even_when_allowed(self):
        policy = AccessPolicy(blocked_users=frozenset({5}), allowed_users=frozenset({5}))

        assert policy.access(facts(author_id=5)) is Access.IGNORED

    def test_a_blocked_role_is_ignored_even_with_an_allowed_role(self):
        policy = AccessPolicy(blocked_roles=frozenset({8}), allowed_roles=frozenset({7}))

        assert policy.access(facts(author_id=5, role_ids=frozenset({7, 8}))) is Access.IGNORED

    def test_an_allow_list_refuses_the_others_and_tells_them_why(self):
        policy = AccessPolicy(allowed_roles=frozenset({7}), allowed_users=frozenset({6}))
        outsider = facts(author_id=5, role_ids=frozenset({9}))

        assert policy.access(facts(author_id=5, role_ids=frozenset({7}))) is Access.ALLOWED
        assert policy.access(facts(author_id=6, role_ids=None)) is Access.ALLOWED
        assert policy.access(outsider) is Access.REFUSED
        assert "Ask a server admin" in policy.refusal(outsider)

    def test_a_dm_with_unknown_roles_is_refused_by_a_role_allow_list(self):
        policy = AccessPolicy(allowed_roles=frozenset({7}))

        assert policy.access(facts(channel=ChannelKind.DM, guild_id=None, author_id=5)) is Access.REFUSED

    def test_dms_off_refuses_a_dm_with_a_pointer_to_the_server(self):
        policy = AccessPolicy(dms=False)
        dm = facts(channel=ChannelKind.DM, guild_id=None, author_id=5)

        assert policy.access(dm) is Access.REFUSED
        assert policy.refusal(dm) == DMS_OFF
        assert policy.access(facts(author_id=5)) is Access.ALLOWED

    def test_a_reply_to_the_bot_is_addressed_to_it(self):
        assert decide(facts(replies_to_bot=True)) is Intake.START_THREAD

    def test_a_slash_command_is_answered_privately_whatever_the_rules_say(self):
        policy = AccessPolicy(
            channels=frozenset({10}), blocked_users=frozenset({5}), allowed_roles=frozenset({7}), dms=False
        )

        assert policy.command_refusal(facts(author_id=6, role_ids=frozenset({7}))) is None
        assert policy.command_refusal(facts(author_id=6, channel_id=11)) == OUTSIDE
        assert policy.command_refusal(facts(author_id=5, role_ids=frozenset({7}))) == BLOCKED
        assert policy.command_refusal(facts(author_id=6)) == NOT_ALLOWED
        assert policy.command_refusal(facts(channel=ChannelKind.DM, guild_id=None, author_id=6)) == DMS_OFF
