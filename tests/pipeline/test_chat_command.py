"""manage.py chat --inline: the whole pipeline in one process, no servers."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from conversations.models import ChatUser, Message, Request, Thread

REPLY = "def f():\n\treturn {'a': [1, 2]}\n\n  spaced  "


def chat(*args: str) -> tuple[int | str | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    try:
        call_command("chat", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChatCommandTests:
    def test_it_streams_the_answer_byte_for_byte_then_the_token_counts(self, fake_ollama):
        fake_ollama.script(REPLY, prompt_tokens=12, completion_tokens=34)

        code, out, err = chat("write f", "--inline", "--user", "bob")

        assert code == 0, err
        assert out == REPLY + "\n\n[12 prompt + 34 completion tokens · route general · model gpt-oss:20b]\n"
        assert "New thread" in err
        request = Request.objects.get()
        assert request.status == Request.Status.DONE
        assert request.user.username == "bob" and request.user.platform == "local"

    def test_a_named_thread_continues_with_its_history(self, fake_ollama):
        fake_ollama.script("Noted: 42.", times=1)
        chat("remember 42", "--inline")
        name = Thread.objects.get().external_id

        code, _, err = chat("what number?", "--inline", "--thread", name)

        assert code == 0, err
        assert Thread.objects.count() == 1
        sent = fake_ollama.chats[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] != "system"] == ["remember 42", "Noted: 42.", "what number?"]

    def test_an_unknown_thread_is_refused_and_nothing_is_stored(self, fake_ollama):
        code, out, err = chat("hi", "--inline", "--thread", "nope")

        assert code == 2
        assert "no local thread called 'nope'" in err
        assert out == ""
        assert not Message.objects.exists()

    @pytest.mark.parametrize("text", ["", "   "])
    def test_empty_text_is_refused(self, fake_ollama, text):
        code, _, err = chat(text, "--inline")

        assert code == 2
        assert "Your message is empty" in err
        assert not Thread.objects.exists() and not Message.objects.exists()

    def test_a_failure_exits_non_zero_with_the_reason(self, fake_ollama):
        fake_ollama.remove_model("gpt-oss:20b")

        code, _, err = chat("hi", "--inline")

        assert code == 1
        assert "Failed: The model gpt-oss:20b isn't installed" in err

    def test_without_inline_an_unreachable_web_is_explained_before_anything_is_stored(
        self, fake_ollama, settings, monkeypatch
    ):
        settings.WEB_URL = "http://127.0.0.1:9"
        monkeypatch.setattr("pipeline.terminal.WEB_WAIT", 0.5)  # the default waits 15 s for a restarting web
        err = io.StringIO()

        with pytest.raises(CommandError, match=r"Couldn't connect to web at ws://127\.0\.0\.1:9/ws/events/.*--inline"):
            call_command("chat", "hi", stdout=io.StringIO(), stderr=err)

        assert "Waiting up to 0.5 s for it" in err.getvalue()
        assert not ChatUser.objects.exists() and not Message.objects.exists()

    def test_inline_shows_no_queue_position_since_nothing_is_queued(self, fake_ollama):
        fake_ollama.script("Hi.")

        code, _, err = chat("hello", "--inline")

        assert code == 0, err
        assert "Queued" not in err


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChatUnderMaintenanceTests:
    def test_inline_under_soft_maintenance_prints_the_operators_message(self, fake_ollama):
        from ops.maintenance import set_maintenance

        set_maintenance(mode="soft", message="Swapping the GPU, back in 20 minutes.", changed_by="ops")

        code, out, err = chat("hello", "--inline")

        assert code == 3
        assert "Held: Swapping the GPU, back in 20 minutes. Your message is saved" in err
        assert out == ""
        assert Request.objects.get().status == Request.Status.HELD
        assert not [r for r in fake_ollama.requests if r.path == "/api/chat"]

    def test_inline_under_soft_maintenance_without_a_message_says_maintenance(self, fake_ollama):
        from ops.maintenance import set_maintenance

        set_maintenance(mode="soft", changed_by="ops")

        code, _, err = chat("hello", "--inline")

        assert code == 3
        assert "Held: Trollama is under maintenance. Your message is saved" in err


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ChatNoticeTests:
    def test_what_was_cut_is_said_on_stderr_and_stdout_stays_the_answer(self, fake_ollama):
        from routing.models import Route

        Route.objects.filter(slug="general").update(context_size=512)
        fake_ollama.script(REPLY, prompt_tokens=12, completion_tokens=34)

        code, out, err = chat("tell me about this: " + "lorem ipsum dolor sit amet " * 200, "--inline")

        assert code == 0, err
        assert out == REPLY + "\n\n[12 prompt + 34 completion tokens · route general · model gpt-oss:20b]\n"
        assert "✂️ Your message was too long for the model's context window:" in err
        assert Request.objects.get().notices[0]["code"] == "message_cut"

    def test_a_summary_written_since_the_last_turn_is_said_on_stderr(self, fake_ollama):
        from django.utils import timezone

        fake_ollama.script("First.", times=1)
        chat("first question", "--inline")
        thread = Thread.objects.get()
        first = Message.objects.filter(thread=thread).order_by("created_at", "pk")
        Thread.objects.filter(pk=thread.pk).update(
            summary="They asked a first question.", summary_until=first.last(), summarized_at=timezone.now()
        )
        fake_ollama.script("Second.")

        code, _, err = chat("second question", "--inline", "--thread", thread.external_id)

        assert code == 0, err
        assert "📝 The earlier conversation (2 messages) was summarized" in err
