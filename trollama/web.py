"""Run web: Daphne's command line, with its access log written through logging.

``python -m trollama.web -b 127.0.0.1 -p 8000 trollama.asgi:application``
takes every option of ``daphne``. Daphne itself writes its access log straight
to stdout, past every logging filter, so the token of a signed download link
(``GET /a/<token>/``) would land in the logs for anyone reading them to use.
Here each access line goes to the ``daphne.access`` logger instead (at INFO),
so it gets the same redaction, format (text or JSON) and log file as
everything else. Daphne's ``server_class`` hook is the seam: the server is
given our access logger wherever Daphne would have made its own.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne.access import AccessLogGenerator
from daphne.cli import CommandLineInterface
from daphne.server import Server

access_logger = logging.getLogger("daphne.access")


class LoggedAccess(AccessLogGenerator):
    """Daphne's access entries as log records (the formatter adds the time)."""

    def __init__(self) -> None:
        super().__init__(stream=None)

    def write_entry(
        self,
        host: Any,
        date: Any,
        request: str,
        status: int | None = None,
        length: int | None = None,
        ident: str | None = None,
        user: str | None = None,
    ) -> None:
        client = ":".join(map(str, host)) if isinstance(host, list | tuple) else host
        access_logger.info('%s "%s" %s %s', client or "-", request, status or "-", length or "-")


class LoggedServer(Server):
    def __init__(self, *args: Any, action_logger: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, action_logger=LoggedAccess() if action_logger is not None else None, **kwargs)


class WebCommandLine(CommandLineInterface):
    server_class = LoggedServer


if __name__ == "__main__":
    WebCommandLine.entrypoint()
