"""Artifacts through the worker: instructions to the model, files from its answer."""

from __future__ import annotations

import pytest

from artifacts.intent import FILE_INSTRUCTIONS
from conversations.models import Request
from conversations.processing import process_request
from conversations.services import submit_request
from tests import personas


def submit(text: str) -> Request:
    user = personas.discord_user()
    thread = personas.thread_of(user)
    return submit_request(user=user, thread=thread, content=text, enqueue=False).request


def sent_messages(fake_ollama) -> list[dict]:
    return [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body["messages"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class FileInstructionsTests:
    def test_a_request_for_a_file_adds_the_instructions_to_the_system_message(self, fake_ollama):
        fake_ollama.script("ok")
        request = submit("Write a hello world script and save it as hello.py")

        process_request(request_id=request.pk)

        request.refresh_from_db()
        system = sent_messages(fake_ollama)[0]
        assert system["role"] == "system"
        assert system["content"].endswith("\n\n" + FILE_INSTRUCTIONS)
        assert system["content"].startswith(request.route.system_prompt)

    def test_ordinary_chat_gets_no_file_instructions(self, fake_ollama):
        fake_ollama.script("ok")
        request = submit("Write a haiku about GPUs")

        process_request(request_id=request.pk)

        assert all(FILE_INSTRUCTIONS not in m["content"] for m in sent_messages(fake_ollama))
