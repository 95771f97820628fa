"""An /ask question through the normal request pipeline: the model sees the sources, the user gets them as links."""

from __future__ import annotations

import pytest

from bots.knowledge import submit_ask
from bots.render import discord_footer
from bots.services import DiscordAuthor
from conversations.models import Request
from knowledge import index, services
from knowledge.models import Ask
from pipeline.processing import process_request
from pipeline.streaming import Outcome
from tests.knowledge.helpers import GUILD, index_channel, said

GENERAL = 601
ANSWER = "The next event is on March 14 at the park [1].\n\n```\n  kept  exactly\n```"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class AskPipelineTests:
    def test_the_answer_is_the_models_text_with_its_sources_listed_under_it(self, fake_ollama):
        index.forget_indexes()
        index_channel(GENERAL)
        fact = said("The next community event is on March 14 at the park", channel_id=GENERAL, author="Carol")
        services.record_messages(messages=[fact, said("who has the projector?", channel_id=GENERAL)])
        services.embed_pending()
        question = "when is the next community event?"
        sources = services.find_sources(guild_id=GUILD, question=question, channel_ids=[GENERAL])
        fake_ollama.script(ANSWER)

        submission = submit_ask(
            author=DiscordAuthor(id=42, username="alice", display_name="Alice"),
            role_ids=[],
            guild_id=GUILD,
            channel_id=GENERAL,
            channel_title="general",
            parent_channel_id=None,
            question=question,
            external_id="ask-777",
            sources=sources,
        )
        assert process_request(request_id=submission.request.pk) is Outcome.DONE

        request = Request.objects.select_related("reply").get(pk=submission.request.pk)
        assert request.reply is not None and request.reply.content == ANSWER  # byte for byte
        chat = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1]
        system = chat.body["messages"][0]["content"]
        assert "[1] Carol in #general" in system
        assert "The next community event is on March 14 at the park" in system
        assert "Cite the message behind every claim" in system
        assert chat.body["messages"][-1] == {"role": "user", "content": question}
        [notice] = [n for n in request.notices if n["code"] == "sources"]
        assert notice["sources"][0]["url"] == f"https://discord.com/channels/{GUILD}/{GENERAL}/{fact.message_id}"
        footer = discord_footer(request.notices)
        assert f"-# 🔗 [1] [Carol, {fact.created_at.date().isoformat()}](https://discord.com/channels/" in footer
        assert Ask.objects.get(request=request).guild_id == GUILD

    def test_an_ordinary_request_gets_no_sources(self, fake_ollama):
        from pipeline.services import submit_request
        from tests import personas

        fake_ollama.script("hi")
        user = personas.discord_user()
        request = submit_request(user=user, thread=personas.thread_of(user), content="hello", enqueue=False).request

        process_request(request_id=request.pk)

        request.refresh_from_db()
        assert not [n for n in request.notices if n["code"] == "sources"]
        assert "Cite the message" not in request.system_prompt
