"""The context builder: what the model sees of a thread, always within the route's window."""

from __future__ import annotations

import random

import pytest
from django.core.files.base import ContentFile

from conversations.models import Attachment, Thread
from pipeline.context import (
    ANSWER_RESERVE,
    Turn,
    build_chat_messages,
    build_context,
    context_budget,
    estimate_tokens,
    fit_context,
)
from routing.models import Route
from tests import personas
from tests.conversations.helpers import History


def route(context_size: int = 1024) -> Route:
    return Route.objects.create(slug=f"r{context_size}", name="Test", model="gpt-oss:20b", context_size=context_size)


def estimated_size(messages: list[dict]) -> int:
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)


@pytest.mark.django_db
class ContextFittingTests:
    def test_it_keeps_the_most_recent_turns_that_fit_and_records_how_many_were_dropped(self):
        history = History()
        for n in range(40):
            history.say(f"question {n} " + "x" * 200)
            history.answer(f"answer {n} " + "y" * 200)
        request = history.ask("and now?")
        small = route(1024)

        messages = build_chat_messages(request=request, route=small, system_prompt="Be brief.")

        assert messages[0] == {"role": "system", "content": "Be brief."}
        assert messages[-1] == {"role": "user", "content": "and now?"}
        assert messages[-2]["content"].startswith("answer 39 ")
        assert estimated_size(messages) <= context_budget(1024)
        kept = len(messages) - 2
        assert 0 < kept < 80
        request.refresh_from_db()
        assert request.dropped_turns == 80 - kept

    def test_a_thread_that_fits_drops_nothing(self):
        history = History()
        history.say("hi")
        history.answer("hello")
        request = history.ask("how are you?")

        messages = build_chat_messages(request=request, route=route(8192), system_prompt="")

        assert [m["content"] for m in messages] == ["hi", "hello", "how are you?"]
        request.refresh_from_db()
        assert request.dropped_turns == 0

    def test_an_enormous_last_message_is_cut_with_a_note_instead_of_overflowing(self):
        history = History()
        history.say("earlier")
        history.answer("reply")
        enormous = "BEGIN " + "word " * 50_000 + " END?"
        request = history.ask(enormous)

        messages = build_chat_messages(request=request, route=route(2048), system_prompt="You are helpful.")

        assert messages[0]["content"] == "You are helpful."
        last = messages[-1]["content"]
        assert last.startswith("BEGIN ") and last.endswith(" END?")  # the question at either end survives
        assert "characters of this message were left out" in last
        assert estimated_size(messages) <= context_budget(2048)
        request.refresh_from_db()
        assert request.dropped_turns == 2 - (len(messages) - 2)  # little or no room was left for earlier turns
        assert request.dropped_turns >= 1

    def test_ollamas_stored_counts_are_used_instead_of_the_estimate(self):
        history = History()
        history.say("z" * 4000, tokens=10)  # the estimate would say 1,000 tokens
        history.answer("fine", tokens=1)
        request = history.ask("next")

        context = build_context(request=request, route=route(512), system_prompt="")

        assert context.dropped_turns == 0
        assert len(context.messages) == 3

    def test_the_budget_leaves_a_reserve_for_the_answer(self):
        assert context_budget(8192) == int(8192 * (1 - ANSWER_RESERVE)) < 8192

    def test_fitting_never_exceeds_the_budget_whatever_the_sizes(self):
        rng = random.Random(7)
        for _ in range(200):
            budget = rng.randint(200, 5000)
            turns = [
                Turn(role=rng.choice(["user", "assistant"]), content="a" * rng.randint(1, 9000)) for _ in range(30)
            ]
            current = Turn(role="user", content="q" * rng.randint(1, 90_000))
            context = fit_context(
                budget=budget,
                system_prompt="s" * rng.randint(0, 3000),
                summary="m" * rng.randint(0, 6000),
                current=current,
                earlier_newest_first=iter(turns),
                earlier_total=len(turns),
                label=False,
            )
            assert estimated_size(context.messages) <= budget
            assert context.tokens <= budget
            assert context.messages[-1]["role"] == "user"


@pytest.mark.django_db
class LabelTests:
    def test_each_user_turn_is_labelled_with_its_authors_name_when_several_people_talk(self):
        alice = personas.discord_user("alice", "1001")
        bob = personas.discord_user("bob", "1002")
        history = History(alice)
        history.say("I like tea")
        history.answer("Noted.")
        history.say("I prefer coffee", by=bob)
        history.answer("Noted too.")
        request = history.ask("what do we each like?")

        messages = build_chat_messages(request=request, route=route(8192), system_prompt="")

        assert [m["content"] for m in messages] == [
            "Alice: I like tea",
            "Noted.",
            "Bob: I prefer coffee",
            "Noted too.",
            "Alice: what do we each like?",
        ]

    def test_a_thread_with_one_person_is_not_labelled(self):
        history = History()
        history.say("I like tea")
        request = history.ask("what do I like?")

        messages = build_chat_messages(request=request, route=route(8192), system_prompt="")

        assert [m["content"] for m in messages] == ["I like tea", "what do I like?"]


@pytest.mark.django_db
class SummaryPlacementTests:
    def test_the_summary_sits_after_the_system_prompt_and_replaces_the_turns_it_covers(self):
        history = History()
        history.say("old question")
        covered = history.answer("old answer")
        history.say("recent question")
        history.answer("recent answer")
        request = history.ask("new question")
        Thread.objects.filter(pk=history.thread.pk).update(
            summary="They talked about old things.", summary_until=covered
        )

        messages = build_chat_messages(request=request, route=route(8192), system_prompt="Be kind.")

        assert messages[0] == {"role": "system", "content": "Be kind."}
        assert messages[1]["role"] == "system"
        assert messages[1]["content"].endswith("They talked about old things.")
        assert [m["content"] for m in messages[2:]] == ["recent question", "recent answer", "new question"]


@pytest.mark.django_db
class AttachmentContextTests:
    def test_a_files_text_is_given_with_its_filename_in_later_turns_too(self):
        history = History()
        upload = history.say("here is my config")
        Attachment.objects.create(
            message=upload,
            kind=Attachment.Kind.TEXT,
            filename="settings.toml",
            size=20,
            extracted_text='port = 8080\nname = "demo"',
            note="",
        )
        history.answer("Got it.")
        request = history.ask("which port?")

        messages = build_chat_messages(request=request, route=route(8192), system_prompt="")

        first = messages[0]["content"]
        assert first.startswith("here is my config\n\n[File: settings.toml]\n")
        assert "port = 8080" in first
        assert first.endswith("[End of file: settings.toml]")

    def test_an_image_sent_alone_is_named_and_left_out_for_a_model_without_vision(self):
        history = History()
        request = history.ask("")
        attachment = Attachment(message=request.message, kind=Attachment.Kind.IMAGE, filename="cat.png", size=3)
        attachment.file.save("cat.png", ContentFile(b"PNG"))

        vision = route(8192)
        without = build_chat_messages(request=request, route=vision, system_prompt="", images=False)
        with_images = build_chat_messages(request=request, route=vision, system_prompt="")

        assert without == [{"role": "user", "content": "[Image: cat.png]"}]
        assert with_images == [{"role": "user", "content": "[Image: cat.png]", "images": ["UE5H"]}]
