"""The worker process's side of the delivery contract: who it is, whether it is stopping, and its heartbeat.

A django-q2 worker is a forked child of the cluster's Sentinel, itself a child
of the ``qcluster`` process (see ``pipeline.cluster``). What this module
keeps is per process:

- ``worker_name()``: ``host:cluster pid/worker pid``, stored on the request a
  worker runs, so the ``qcluster`` process can tell which requests its own
  workers hold when it stops;
- the stop flag, set by SIGTERM/SIGINT in a worker (``install_stop_handlers``
  replaces the default action django-q2 leaves, which would kill the worker
  mid-answer) and read by the streaming loop, which then hands its request back;
- ``LeaseKeeper``: a thread that renews a running request's lease every
  quarter of ``REQUEST_LEASE``, whatever the worker is doing (routing, waiting
  for a model to load, streaming, backing off). The lease therefore measures
  whether the process is alive, not how long the answer takes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import FrameType, TracebackType

from django.conf import settings
from django.db import connections
from django.utils import timezone

from conversations.models import Request

logger = logging.getLogger(__name__)

_cluster = ""  # "host:pid" of the qcluster process; inherited by its forked workers
_stopping = threading.Event()
_busy = threading.Event()  # a request task is running in this process


def set_cluster(label: str) -> None:
    """Name the cluster this process starts (called by ``qcluster`` before django-q2 forks its workers)."""
    global _cluster
    _cluster = label


def cluster_label() -> str:
    return _cluster


def worker_name() -> str:
    """``host:cluster pid/worker pid`` inside a cluster; ``host:pid`` elsewhere (tests, ``chat --inline``)."""
    if _cluster:
        return f"{_cluster}/{os.getpid()}"
    return f"{socket.gethostname()}:{os.getpid()}"


def stopping() -> bool:
    """True once this worker process was asked to stop: finish nothing new, hand back what it runs."""
    return _stopping.is_set()


def request_stop() -> None:
    _stopping.set()


def reset_stop() -> None:
    """Forget a stop request (tests; a process that only pretended to stop)."""
    _stopping.clear()


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    # A busy worker only notes it: the streaming loop notices within CANCEL_CHECK_INTERVAL
    # and hands its request back (then ``running_a_task`` ends the process). An idle one
    # leaves at once: the same signal may have killed the Sentinel that would stop it.
    _stopping.set()
    if not _busy.is_set():
        os._exit(0)


@contextlib.contextmanager
def running_a_task() -> Iterator[None]:
    """Mark this worker busy for one task; a worker told to stop meanwhile exits once the task is done.

    Exiting there (rather than taking the next task) matters when SIGTERM went to the
    whole process group: the Sentinel is gone, nothing would ever end this worker, and
    its open pipes would keep a process manager waiting until it sends SIGKILL.
    """
    _busy.set()
    try:
        yield
    finally:
        _busy.clear()
        if _stopping.is_set() and _cluster:
            logging.shutdown()  # flush the log lines of the hand-back
            os._exit(0)


def install_stop_handlers(**_: object) -> None:
    """In a django-q2 worker: let SIGTERM and SIGINT ask for a hand-back instead of killing the process.

    Connected to django-q2's ``post_spawn`` signal, which each worker sends
    from its main thread as it starts (the only thread that may set handlers).
    """
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)


def lease_expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.REQUEST_LEASE)


class LeaseKeeper:
    """Renews one request's lease from a thread while the worker holds it.

    ``attempt`` is the fencing token: the renewal only touches the row while
    that attempt is current and running, so a worker that lost the request
    (to a cancel, a takeover or its own hand-back) stops renewing at once.
    Update ``attempt`` when a retry takes the next one.
    """

    def __init__(self, request_id: int, attempt: int) -> None:
        self.request_id = request_id
        self.attempt = attempt
        self.interval = settings.REQUEST_LEASE / 4
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{request_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join(timeout=self.interval + 5)

    def renew(self) -> bool:
        """Push the lease forward; False when the request is no longer ours."""
        return bool(
            Request.objects.filter(pk=self.request_id, attempts=self.attempt, status__in=Request.RUNNING).update(
                lease_expires_at=lease_expiry()
            )
        )

    def _run(self) -> None:
        try:
            while not self._done.wait(self.interval):
                try:
                    self.renew()
                except Exception:  # a busy database must not kill the heartbeat; the next beat tries again
                    logger.warning("Could not renew the lease of request %s", self.request_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections
