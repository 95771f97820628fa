"""Finishing a request: text PostgreSQL cannot store, and storage errors, never leave it running."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from django.db import connection

from artifacts.models import Artifact
from conversations.models import Attachment, Message, Request
from pipeline.attachments import Upload
from pipeline.finishing import ANSWER_NOT_STORED
from pipeline.processing import process_request
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from tests import personas
from tests.layer import listening
from trollama import events
from trollama.fields import REPLACEMENT

NUL_REPLY = 'Here:\n\n```python title="nul.py"\nSEP = "\x00"\n```\nThe separator is \x00 (NUL).\n'
NUL_FILE = 'SEP = "\x00"\n'


def submit(text: str = "hello there", **kwargs) -> Request:
    user = personas.discord_user()
    return submit_request(user=user, thread=personas.thread_of(user), content=text, enqueue=False, **kwargs).request


@contextlib.contextmanager
def database_refusing_replies_that_say(words: str) -> Iterator[None]:
    """A trigger that makes the database refuse to store an assistant message containing ``words``: a real write error."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_reply() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.content LIKE '%%{words}%%' THEN RAISE EXCEPTION 'could not extend file: No space left'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_reply BEFORE INSERT ON conversations_message "
                "FOR EACH ROW EXECUTE FUNCTION refuse_reply()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_reply BEFORE INSERT ON conversations_message "
                f"WHEN NEW.content LIKE '%{words}%' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER IF EXISTS refuse_reply ON conversations_message")
                cursor.execute("DROP FUNCTION IF EXISTS refuse_reply()")
            else:
                cursor.execute("DROP TRIGGER IF EXISTS refuse_reply")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class NulInAnswersTests:
    def test_an_answer_with_nul_is_done_stored_with_a_replacement_and_delivered_exactly(self, fake_ollama):
        fake_ollama.script(NUL_REPLY)
        request = submit("write nul.py")

        with listening(events.request_group(request.pk)) as received:
            outcome = process_request(request_id=request.pk)
            published = received()

        assert outcome is Outcome.DONE
        request.refresh_from_db()
        assert request.status == Request.Status.DONE and request.error == ""
        assert request.reply.content == NUL_REPLY.replace("\x00", REPLACEMENT)
        (done,) = [event for event in published if event["type"] == "request.done"]
        assert done["content"] == NUL_REPLY  # what the terminal and Discord get: the model's text exactly
        artifact = Artifact.objects.get(request=request)
        with artifact.file.open("rb") as handle:
            assert handle.read() == NUL_FILE.encode()  # files keep their exact bytes

    def test_a_partial_answer_with_nul_is_saved(self):
        request = submit()

        Request.objects.filter(pk=request.pk).update(partial_content="so far \x00")

        request.refresh_from_db()
        assert request.partial_content == f"so far {REPLACEMENT}"

    def test_a_text_file_with_nul_past_the_binary_check_is_accepted(self):
        text = "a" * 9000 + "\x00" + "end"

        request = submit("read it", attachments=[Upload("log.txt", "text/plain", text.encode())])

        attachment = Attachment.objects.get(message=request.message)
        assert attachment.extracted_text == "a" * 9000 + REPLACEMENT + "end"
        with attachment.file.open("rb") as handle:
            assert handle.read() == text.encode()

    def test_text_without_nul_is_stored_unchanged(self, fake_ollama):
        reply = "tabs\tand \ufffd already, and ünïcode\r\n"
        fake_ollama.script(reply)
        request = submit()

        process_request(request_id=request.pk)

        assert Message.objects.get(role=Message.Role.ASSISTANT).content == reply


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class StorageErrorWhileFinishingTests:
    def test_a_storage_error_fails_the_request_with_a_reason_instead_of_leaving_it_running(self, fake_ollama):
        fake_ollama.script("This answer cannot be stored.")
        request = submit()

        with (
            database_refusing_replies_that_say("cannot be stored"),
            listening(events.request_group(request.pk)) as received,
        ):
            outcome = process_request(request_id=request.pk)
            published = received()

        assert outcome is Outcome.FAILED
        request.refresh_from_db()
        assert request.status == Request.Status.FAILED
        assert request.error == ANSWER_NOT_STORED
        assert request.lease_expires_at is None and request.reserved_tokens == 0 and request.finished_at
        assert not Message.objects.filter(role=Message.Role.ASSISTANT).exists()
        assert not Artifact.objects.exists()
        assert [event["type"] for event in published if event["type"].startswith("request.")][-1] == "request.failed"

    def test_the_next_answer_is_stored_as_usual(self, fake_ollama):
        fake_ollama.script("A fine answer.")
        request = submit()

        with database_refusing_replies_that_say("cannot be stored"):
            assert process_request(request_id=request.pk) is Outcome.DONE
