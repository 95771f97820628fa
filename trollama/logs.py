"""Logging helpers wired up by ``LOGGING`` in the settings.

* ``request_context(request_id)`` puts a request id in a context variable for
  the duration of a block; ``RequestIdFilter`` copies it onto every record, so
  the text and JSON formats both carry it without each call passing it.
* ``RedactSecretsFilter`` replaces the Discord token and the other secrets in
  any record, whoever logged it (discord.py, httpx, a traceback), and the
  token of every signed download link (``/a/<token>/``): Daphne's access log
  (see ``trollama.web``) and Django's "Gone: /a/…" warnings carry the path,
  and whoever holds the token can download the file.
* ``SharedTimedRotatingFileHandler`` lets several processes share one file.
* ``log_to_file_only()`` keeps log lines off a terminal command's output.

No Django model imports here: this module is loaded while logging is being
configured, before the apps are ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from logging.handlers import TimedRotatingFileHandler

REDACTED = "[redacted]"
# Secrets shorter than this are not searched for: they would match ordinary words.
MIN_SECRET_LENGTH = 8

# The token of a signed download link (artifacts.links: base64 and ':' from
# django.core.signing), in a path or a full URL. Eight characters at least, so
# an ordinary path such as /a/b is left alone.
DOWNLOAD_TOKEN = re.compile(r"(/a/)[A-Za-z0-9_\-.:%]{8,}")
# LogRecord's own attributes; anything else on a record is an extra a formatter
# may print (python-json-logger prints them all, e.g. django.request's request).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}

request_id_var: ContextVar[int | None] = ContextVar("trollama_request_id", default=None)


@contextlib.contextmanager
def request_context(request_id: int | None) -> Iterator[None]:
    """Tag every log record made inside the block (in this thread or task) with ``request_id``."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the current request's id, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = request_id_var.get()
            record.request_id = request_id if request_id is not None else "-"
        return True


def _configured_secrets() -> list[str]:
    from django.conf import settings

    names = ("DISCORD_TOKEN", "INTERNAL_TOKEN", "METRICS_TOKEN", "SECRET_KEY")
    try:
        values = [getattr(settings, name, "") for name in names]
    except Exception:  # settings not configured (a bare script); nothing to redact yet
        return []
    return [value for value in values if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` without the secrets and without the token of any signed download link."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "/a/" in text:
        text = DOWNLOAD_TOKEN.sub(rf"\1{REDACTED}", text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Never let a secret or a download token reach a log line: message, extras and traceback alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _configured_secrets()
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for name, value in list(vars(record).items()):
            if name in _RECORD_ATTRIBUTES or isinstance(value, int | float | bool | type(None)):
                continue
            # An extra such as django.request's HttpRequest is printed as its str().
            text = value if isinstance(value, str) else str(value)
            cleaned = redact(text, secrets)
            if cleaned != text:
                setattr(record, name, cleaned)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


class SharedTimedRotatingFileHandler(TimedRotatingFileHandler):
    """A daily rotating file that web, every worker process and the bot append to.

    The standard handler assumes one writer: at midnight each process would
    rotate, and the second one deletes the file the first just rotated. Here
    the rollover runs under an exclusive lock file, and a process that finds
    the file already rotated by another one only reopens it.
    """

    def doRollover(self) -> None:
        with open(self.baseFilename + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self._rotated_elsewhere():
                    if self.stream:
                        self.stream.close()
                    self.stream = self._open()
                    self.rolloverAt = self.computeRollover(int(time.time()))
                else:
                    super().doRollover()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _rotated_elsewhere(self) -> bool:
        if self.stream is None:
            return False
        try:
            current = os.stat(self.baseFilename)
        except FileNotFoundError:
            return False
        ours = os.fstat(self.stream.fileno())
        return (current.st_dev, current.st_ino) != (ours.st_dev, ours.st_ino)


# The names LOGGING gives the handler writing to the process's stderr and the one writing the log file.
CONSOLE_HANDLER, FILE_HANDLER = "console", "file"


@contextlib.contextmanager
def log_to_file_only() -> Iterator[None]:
    """Keep log lines off the terminal for the duration of the block (``manage.py chat`` without --verbose).

    The console handler is taken off every logger that has it, so lines still
    reach the log file; without a log file (``LOG_TO_FILE=false``) only errors
    are shown. Python warnings (pypdf's notes about damaged PDFs) are routed
    into logging meanwhile, so they follow the same way instead of reaching
    stderr directly.
    """
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    has_file = any(h.get_name() == FILE_HANDLER for logger in loggers for h in logger.handlers)
    removed: list[tuple[logging.Logger, logging.Handler]] = []
    raised: list[tuple[logging.Handler, int]] = []
    for logger in loggers:
        for handler in list(logger.handlers):
            if handler.get_name() != CONSOLE_HANDLER:
                continue
            if has_file:
                logger.removeHandler(handler)
                removed.append((logger, handler))
            else:
                raised.append((handler, handler.level))
                handler.setLevel(max(handler.level, logging.ERROR))
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for logger, handler in removed:
            logger.addHandler(handler)
        for handler, level in raised:
            handler.setLevel(level)
