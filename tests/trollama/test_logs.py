"""Logging: request ids on every record, JSON format, no message text at INFO, no secrets, shared rotation."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from artifacts.links import make_token
from artifacts.models import Artifact
from pipeline.processing import process_request
from pipeline.services import submit_request
from tests import personas
from tests.e2e.harness import free_port
from trollama.logs import (
    REDACTED,
    RedactSecretsFilter,
    RequestIdFilter,
    SharedTimedRotatingFileHandler,
    request_context,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET_QUESTION = "my-unique-secret-question-about-zebras"
SECRET_ANSWER = "a-unique-answer-about-zebra-stripes"


def run_logging_script(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Log from a fresh process configured by the real settings."""
    script = "import django, logging, os; django.setup(); from trollama.logs import request_context\n" + code
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
        "DJANGO_SETTINGS_MODULE": "trollama.settings",
        "LOG_TO_FILE": "false",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


class LogFormatTests:
    def test_json_lines_carry_the_request_id(self, tmp_path):
        result = run_logging_script(
            "with request_context(42):\n    logging.getLogger('pipeline.processing').warning('retrying')\n"
            "logging.getLogger('trollama').warning('outside')",
            LOG_FORMAT="json",
            DATA_DIR=str(tmp_path),
        )

        inside, outside = (json.loads(line) for line in result.stderr.strip().splitlines())
        assert inside["request_id"] == 42
        assert inside["message"] == "retrying"
        assert inside["level"] == "WARNING"
        assert inside["logger"] == "pipeline.processing"
        assert outside["request_id"] == "-"

    def test_text_lines_carry_the_request_id(self, tmp_path):
        result = run_logging_script(
            "with request_context(7):\n    logging.getLogger('trollama').warning('hello')", DATA_DIR=str(tmp_path)
        )

        assert "req 7]: hello" in result.stderr

    def test_the_discord_token_is_redacted_from_any_logger(self, tmp_path):
        token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789"
        result = run_logging_script(
            "from django.conf import settings\n"
            "logging.getLogger('discord.http').warning('Authorization: Bot %s', settings.DISCORD_TOKEN)\n"
            "try:\n    raise ValueError(settings.DISCORD_TOKEN)\n"
            "except ValueError:\n    logging.getLogger('bots').exception('boom')",
            DISCORD_TOKEN=token,
            DATA_DIR=str(tmp_path),
        )

        assert token not in result.stderr
        assert f"Authorization: Bot {REDACTED}" in result.stderr
        assert f"ValueError: {REDACTED}" in result.stderr


class RedactionFilterTests:
    def test_it_redacts_message_arguments_and_tracebacks(self, settings):
        settings.DISCORD_TOKEN = "tok-" + "s" * 40
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", (settings.DISCORD_TOKEN,), None)
        try:
            raise RuntimeError(settings.DISCORD_TOKEN)
        except RuntimeError:
            record.exc_info = sys.exc_info()

        assert RedactSecretsFilter().filter(record)

        assert record.getMessage() == f"token={REDACTED}"
        assert settings.DISCORD_TOKEN not in (record.exc_text or "")

    def test_records_without_secrets_are_untouched(self, settings):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "request %s done", (5,), None)

        RedactSecretsFilter().filter(record)

        assert (record.msg, record.args) == ("request %s done", (5,))


class DownloadLinkRedactionTests:
    TOKEN = "eyJpZCI6NywiZXhwIjoxNzAwMDAwMDAwfQ:1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"

    @pytest.mark.parametrize(
        "text",
        [
            f"Gone: /a/{TOKEN}/",
            f"GET /a/{TOKEN}/ HTTP/1.1",
            f"sent https://chat.example.org/a/{TOKEN}/ to the channel",
        ],
    )
    def test_the_token_of_a_download_link_is_redacted_wherever_it_appears(self, text):
        record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s", (text,), None)

        RedactSecretsFilter().filter(record)

        assert self.TOKEN not in record.getMessage()
        assert f"/a/{REDACTED}/" in record.getMessage()

    def test_extras_that_print_the_path_are_redacted_too(self):
        class FakeRequest:
            def __str__(self) -> str:
                return f"<ASGIRequest: GET '/a/{DownloadLinkRedactionTests.TOKEN}/'>"

        record = logging.makeLogRecord({"msg": "Gone", "request": FakeRequest(), "status_code": 410})

        RedactSecretsFilter().filter(record)

        assert record.request == f"<ASGIRequest: GET '/a/{REDACTED}/'>"
        assert record.status_code == 410

    def test_ordinary_paths_are_left_alone(self):
        record = logging.makeLogRecord({"msg": "GET /a/b/ and /admin/login/"})

        RedactSecretsFilter().filter(record)

        assert record.getMessage() == "GET /a/b/ and /admin/login/"

    @pytest.mark.parametrize("log_format", ["text", "json"])
    def test_web_logs_neither_the_access_line_nor_the_gone_warning_with_the_token(self, tmp_path, settings, log_format):
        expired = make_token(Artifact(pk=12345, expires_at=timezone.now() - timedelta(hours=1)))
        forged = "eyJpZCI6MSwiZXhwIjo5OTk5OTk5OTk5fQ:forgedforgedforgedforged"
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))},
            "DATA_DIR": str(tmp_path),
            "SECRET_KEY": settings.SECRET_KEY,
            "LOG_FORMAT": log_format,
            "PYTHONUNBUFFERED": "1",
        }
        output = tmp_path / "web.out"
        with output.open("wb") as sink:
            web = subprocess.Popen(
                [sys.executable, "-m", "trollama.web", "-b", "127.0.0.1", "-p", str(port), "trollama.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            try:
                statuses = [self._get(f"http://127.0.0.1:{port}/a/{token}/") for token in (expired, forged)]
                time.sleep(0.5)  # the access line is written once the response is complete
            finally:
                web.terminate()
                web.wait(timeout=20)

        logged = output.read_text() + (tmp_path / "logs" / "trollama.log").read_text()
        assert statuses == [410, 404]
        assert expired not in logged and forged not in logged
        assert expired.split(":")[-1] not in logged
        assert logged.count(f"/a/{REDACTED}/") >= 4, logged  # two access lines, Gone and Not Found
        assert '"GET /a/' in logged or '\\"GET /a/' in logged  # the access log goes through logging

    @staticmethod
    def _get(url: str) -> int:
        deadline = time.monotonic() + 60
        while True:
            try:
                return httpx.get(url, timeout=5).status_code
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class NoMessageTextAtInfoTests:
    def test_a_request_answered_end_to_end_logs_neither_question_nor_answer(self, fake_ollama, caplog):
        fake_ollama.script(SECRET_ANSWER)
        user = personas.discord_user()
        caplog.set_level(logging.INFO)
        caplog.handler.addFilter(RequestIdFilter())

        request = submit_request(user=user, thread=personas.thread_of(user), content=SECRET_QUESTION, enqueue=False)
        process_request(request_id=request.request.pk)

        assert any(f"Request {request.request.pk} done" in r.getMessage() for r in caplog.records)
        text = caplog.text + " ".join(str(getattr(r, "request_id", "")) for r in caplog.records)
        assert SECRET_QUESTION not in text
        assert SECRET_ANSWER not in text

    def test_a_retried_request_logs_with_its_request_id(self, fake_ollama, caplog):
        fake_ollama.script("fine", times=1)
        fake_ollama.script(error=(500, "llama runner process has terminated"), times=1)
        user = personas.discord_user()
        caplog.set_level(logging.INFO)
        caplog.handler.addFilter(RequestIdFilter())
        request = submit_request(user=user, thread=personas.thread_of(user), content="hi", enqueue=False).request

        process_request(request_id=request.pk)

        retry = next(r for r in caplog.records if "retrying" in r.getMessage())
        assert retry.request_id == request.pk


class SharedRotationTests:
    def test_a_second_process_rolling_over_keeps_what_the_first_rotated(self, tmp_path):
        path = tmp_path / "trollama.log"
        first = SharedTimedRotatingFileHandler(str(path), when="midnight", utc=True, backupCount=3)
        second = SharedTimedRotatingFileHandler(str(path), when="midnight", utc=True, backupCount=3)
        for handler, text in ((first, "from web"), (second, "from a worker")):
            handler.emit(logging.LogRecord("x", logging.WARNING, __file__, 1, text, None, None))

        first.doRollover()
        second.doRollover()
        second.emit(logging.LogRecord("x", logging.WARNING, __file__, 1, "after midnight", None, None))
        first.close()
        second.close()

        rotated = [p for p in tmp_path.iterdir() if p.name.startswith("trollama.log.") and not p.name.endswith("lock")]
        assert len(rotated) == 1
        assert rotated[0].read_text() == "from web\nfrom a worker\n"
        assert path.read_text() == "after midnight\n"

    def test_retention_keeps_backup_count_files(self, tmp_path):
        path = tmp_path / "trollama.log"
        for day in range(1, 6):
            (tmp_path / f"trollama.log.2026-01-0{day}").write_text("old\n")
        handler = SharedTimedRotatingFileHandler(str(path), when="midnight", utc=True, backupCount=2)

        handler.doRollover()
        handler.close()

        rotated = sorted(
            p.name for p in tmp_path.iterdir() if p.name.startswith("trollama.log.") and "lock" not in p.name
        )
        assert len(rotated) == 2
        assert "trollama.log.2026-01-01" not in rotated


def test_request_context_restores_the_previous_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    with request_context(1), request_context(2):
        pass
    RequestIdFilter().filter(record)
    assert record.request_id == "-"
