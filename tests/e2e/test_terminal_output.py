"""manage.py chat as a real process: its terminal shows the conversation, and log lines go to the log file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.conversations.files import pdf_with_text
from tests.e2e.harness import System, fresh_postgres_database

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(_fake_ollama_server, tmp_path_factory) -> Iterator[System]:
    """A bootstrapped install (database and admin), with no process running: enough for ``chat --inline``."""
    database_url = os.environ.get("DATABASE_URL", "")
    with contextlib.ExitStack() as stack:
        if database_url.startswith(("postgres", "pgsql")):
            database_url = stack.enter_context(fresh_postgres_database(database_url))
        system = System(
            tmp_path_factory.mktemp("terminal"),
            ollama_url=_fake_ollama_server.url,
            database_url=database_url,
            redis_url=settings.REDIS_URL,  # under pytest-xdist, this worker's own database
        )
        system.data_dir.mkdir(parents=True, exist_ok=True)
        system.manage("bootstrap", "--no-dotenv")
        yield system


def damaged_pdf() -> bytes:
    """A PDF whose startxref points past the xref table: pypdf reads it, warning that it is damaged."""
    data = pdf_with_text("The quarterly figures.")
    at = data.rindex(b"startxref\n") + len(b"startxref\n")
    return data[:at] + b"%d\n%%%%EOF\n" % (int(data[at:].split(b"\n")[0]) + 3)


class TerminalOutputTests:
    def test_log_lines_and_pypdf_warnings_go_to_the_log_file_not_the_terminal(self, installed, fake, tmp_path):
        fake.script("Figures read.")
        report = tmp_path / "report.pdf"
        report.write_bytes(damaged_pdf())

        result = installed.chat("summarise this", "--inline", "--file", str(report))

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Figures read.\n")
        assert " INFO " not in result.stderr and " WARNING " not in result.stderr
        assert "startxref" not in result.stderr and "Queued" not in result.stderr
        assert result.stderr.startswith("New thread ")
        log = (installed.data_dir / "logs" / "trollama.log").read_text()
        assert "incorrect startxref pointer" in log
        assert "done after" in log  # pipeline.processing logs "Request N done after 0.1 s"

    def test_verbose_also_prints_the_log_lines(self, installed, fake):
        fake.script("Hi.")

        result = installed.chat("hello", "--inline", "--verbose")

        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Hi.\n")
        assert " INFO pipeline.processing " in result.stderr
