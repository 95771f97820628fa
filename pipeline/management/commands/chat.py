"""Talk to the assistant from a terminal, through the same pipeline as Discord."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import mimetypes
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipeline.attachments import Upload
from pipeline.listeners import WebUnreachable
from pipeline.terminal import ChatTurn, run_chat
from trollama.logs import log_to_file_only


def read_file(path: str) -> Upload:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"Can't read {path}: {exc.strerror or exc}.") from None
    return Upload(name=Path(path).name, content_type=mimetypes.guess_type(path)[0] or "", data=data)


class Command(BaseCommand):
    help = "Send one message and stream the answer to stdout. Ctrl-C cancels it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="The message to send (may be empty with --file).")
        parser.add_argument("--user", default=None, help="Local user name (default: your OS user).")
        parser.add_argument(
            "--thread", default=None, help="Continue this local thread (its name is printed when it starts)."
        )
        parser.add_argument("--route", default=None, help="Answer on this route instead of letting the router choose.")
        parser.add_argument(
            "--file",
            action="append",
            default=[],
            metavar="PATH",
            help="Send this file with the message (an image, PDF, or text or code file). Repeatable.",
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="Run the request in this process, so nothing else needs to be running.",
        )
        parser.add_argument(
            "--save-artifacts",
            metavar="DIR",
            type=Path,
            default=None,
            help="Write the files in the answer into DIR (made if missing; existing files are never overwritten).",
        )
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="Also print log lines on stderr (they always go to the log file).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        turn = ChatTurn(
            username=options["user"] or getpass.getuser(),
            content=options["text"],
            thread_name=options["thread"],
            route=options["route"],
            inline=options["inline"],
            save_artifacts=options["save_artifacts"],
            files=[read_file(path) for path in options["file"]],
        )
        # The answer must reach stdout byte for byte: no added line endings, no colours.
        self.stdout.ending = self.stderr.ending = ""
        self.stderr.style_func = None
        quiet = contextlib.nullcontext() if options["verbose"] else log_to_file_only()
        try:
            with quiet:
                code = asyncio.run(run_chat(turn, out=self.stdout, err=self.stderr))
        except WebUnreachable as exc:
            raise CommandError(
                f"{exc} Start everything with `honcho start`, or answer in this process with --inline."
            ) from None
        if code:
            raise SystemExit(code)
