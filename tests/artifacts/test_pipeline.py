"""Artifacts through the worker: instructions to the model, files from its answer."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from artifacts.intent import FILE_INSTRUCTIONS
from artifacts.models import Artifact
from artifacts.selectors import artifact_summary
from conversations.models import Request
from pipeline.processing import process_request
from pipeline.services import submit_request
from tests import personas
from tests.artifacts.storage import BrokenStorage


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
        # The composed prompt keeps the route's own prompt and adds the file instructions to it.
        assert FILE_INSTRUCTIONS in system["content"] and request.route.system_prompt in system["content"]
        assert system["content"] == request.system_prompt

    def test_ordinary_chat_gets_no_file_instructions(self, fake_ollama):
        fake_ollama.script("ok")
        request = submit("Write a haiku about GPUs")

        process_request(request_id=request.pk)

        assert all(FILE_INSTRUCTIONS not in m["content"] for m in sent_messages(fake_ollama))


ANSWER = (
    "Here it is.\n\n"
    '```python title="scraper.py"\nimport sys\n\ndef main():\n\tif sys.argv:\n        return [{"a": (1, 2)}]\n```\n\n'
    "Run it with:\n```bash\npython scraper.py\n```\n"
)


def answer_without_files(fake_ollama, published) -> dict:
    """Answer a request for a file whose file cannot be kept; the answer must be, untouched."""
    fake_ollama.script(ANSWER)
    request = submit("save it as scraper.py")

    process_request(request_id=request.pk)

    request.refresh_from_db()
    assert request.status == Request.Status.DONE
    assert request.reply is not None and request.reply.content == ANSWER
    assert not Artifact.objects.exists()
    return next(e for e in published() if e["type"] == "request.done")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class FilesFromAnswersTests:
    def test_named_files_in_the_answer_are_stored_and_announced_with_the_answer(self, fake_ollama, published):
        fake_ollama.script(ANSWER)
        request = submit("Write a scraper and save it as scraper.py")

        process_request(request_id=request.pk)

        request.refresh_from_db()
        assert request.reply.content == ANSWER
        artifact = Artifact.objects.get()
        assert (artifact.filename, artifact.request, artifact.owner, artifact.thread) == (
            "scraper.py",
            request,
            request.user,
            request.thread,
        )
        expected = 'import sys\n\ndef main():\n\tif sys.argv:\n        return [{"a": (1, 2)}]\n'
        assert artifact.file.read() == expected.encode()
        assert artifact.size == len(expected) and artifact.content_type == "text/x-python"
        assert artifact.sha256 == hashlib.sha256(expected.encode()).hexdigest()
        assert artifact.expires_at == artifact.created_at + timedelta(hours=12)
        done = next(e for e in published() if e["type"] == "request.done")
        assert done["artifacts"] == [artifact_summary(artifact)]
        assert done["artifacts"][0]["url"].startswith("http://127.0.0.1:8000/a/")
        assert done["artifact_notes"] == []

    def test_unnamed_blocks_become_files_only_when_the_user_asked_for_files(self, fake_ollama):
        fake_ollama.script("```python\nprint(1)\n```\n")
        asked = submit("Give me a python file that prints 1")
        process_request(request_id=asked.pk)
        chatted = submit_request(
            user=asked.user, thread=asked.thread, content="Show me print in python", enqueue=False
        ).request
        process_request(request_id=chatted.pk)

        assert list(Artifact.objects.values_list("request", "filename")) == [(asked.pk, "script.py")]

    def test_a_file_over_the_size_limit_is_noted_and_the_answer_is_kept(self, fake_ollama, settings, published):
        settings.ARTIFACT_MAX_BYTES = 10
        done = answer_without_files(fake_ollama, published)

        assert done["artifacts"] == []
        assert done["artifact_notes"][0].startswith("scraper.py is 69 bytes, over the 10 bytes limit")

    def test_a_storage_failure_drops_the_files_with_a_note_but_never_the_answer(
        self, fake_ollama, published, artifact_storage
    ):
        artifact_storage(BrokenStorage())
        done = answer_without_files(fake_ollama, published)

        assert "could not be saved because file storage failed" in done["artifact_notes"][0]
