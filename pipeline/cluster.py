"""Running the django-q2 cluster so that a crash or a stop loses no answer (``manage.py qcluster``).

django-q2 alone gets two things wrong for us (see DESIGN.md, "Things that
bite"): its Sentinel resets SIGTERM to the default action, so the workers it
forks die mid-answer on SIGTERM, and its own stop waits for every running task
to finish, which can take as long as an answer (minutes) while a process
manager gives five seconds. Nothing in django-q2 hooks into either, so this
supervisor wraps its ``Cluster``:

- before the cluster forks, it names itself (``host:pid``) so that every worker
  writes that name on the requests it runs;
- while running, a reaper thread puts requests whose lease ran out (their
  worker was killed) back in the queue every quarter of ``REQUEST_LEASE``,
  sends a task when requests wait and none runs (one the scheduler held back
  has no task left), and refreshes the waiting requests' positions; at
  start it also sends a task again for every queued request, since tasks a
  killed cluster had already taken from the broker died with it;
- on SIGTERM or SIGINT it stops taking work and asks its workers to hand their
  requests back (``pipeline.workers`` turns the signal into a flag the
  streaming loop reads, which closes the Ollama stream and requeues the
  request with the partial answer kept), requeues whatever is still held when
  the grace period is nearly over, then ends every process of the cluster and
  exits, all within ``WORKER_STOP_GRACE``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

import psutil
from django.conf import settings
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.cluster import Cluster
from django_q.status import Stat

from conversations import selectors
from pipeline import processing, queue, workers

logger = logging.getLogger(__name__)

# After the last request is handed back, how long the workers get to pass on
# tasks they had already taken from the broker (each is re-sent in milliseconds).
DRAIN_SECONDS = 0.3
POLL_SECONDS = 0.1
FAMILY_SECONDS = 1.0  # how often the cluster's processes are listed (it costs a walk over /proc)


class ClusterSupervisor:
    def __init__(self, *, grace: float | None = None, reap_every: float | None = None) -> None:
        self.grace = settings.WORKER_STOP_GRACE if grace is None else grace
        self.reap_every = settings.REQUEST_LEASE / 4 if reap_every is None else reap_every
        self.label = f"{socket.gethostname()}:{os.getpid()}"
        self._signal: int | None = None
        self._reaper_done = threading.Event()
        self._family: list[psutil.Process] = []

    def run(self) -> int:
        """Start the cluster and supervise it until a signal stops it; returns the exit status."""
        workers.set_cluster(self.label)
        cluster = Cluster()
        # Cluster() installed handlers that wait for every task to finish; ours replace them.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        cluster.start()
        reaper = threading.Thread(target=self._reap, name="reaper", daemon=True)
        reaper.start()
        try:
            resent = processing.resend_waiting_tasks()
            if resent:
                logger.info("Sent the tasks of %d waiting request(s) again", resent)
            looked = 0.0
            while self._signal is None and cluster.sentinel is not None and cluster.sentinel.is_alive():
                if time.monotonic() - looked > FAMILY_SECONDS:
                    # Remembered now: a SIGTERM to the whole process group kills the Sentinel at
                    # once, and its workers are then no longer our descendants.
                    self._family, looked = _descendants(), time.monotonic()
                time.sleep(POLL_SECONDS)
            if self._signal is None:
                logger.error("The cluster's Sentinel exited unexpectedly; stopping")
                self.stop()
                return 1
            self.stop()
            return 0
        finally:
            self._reaper_done.set()
            reaper.join(timeout=5)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._signal is None:
            logger.info("Got %s: handing requests in flight back to the queue", signal.Signals(signum).name)
        self._signal = signum

    def _reap(self) -> None:
        try:
            while True:
                try:
                    counts = processing.requeue_abandoned_requests()
                    if counts["requeued"] or counts["settled"]:
                        logger.info("Reaper: %s", counts)
                    processing.nudge_stalled_queue()
                    queue.publish_positions_quietly(force=True)
                except Exception:
                    logger.exception("The reaper could not look for abandoned requests")
                if self._reaper_done.wait(self.reap_every):
                    return
        finally:
            connections.close_all()

    def stop(self) -> None:
        """Hand every request back and end the cluster's processes, within the grace period."""
        deadline = time.monotonic() + self.grace
        direct = psutil.Process().children()
        children = list({child.pid: child for child in [*self._family, *_descendants()]}.values())
        # Workers turn SIGTERM into a hand-back (pipeline.workers); the
        # Sentinel, pusher and monitor keep django-q2's default and exit, so
        # nothing takes new work from the broker.
        for child in children:
            _signal(child, signal.SIGTERM)
        # Wait while a live worker still holds a request (one killed earlier never will:
        # its request is handed back below at once). Leave a little of the grace for that and the kill.
        while time.monotonic() < deadline - 0.5:
            live = {child.pid for child in children if _running(child)}
            if not processing.holders_in(self.label) & live:
                break
            time.sleep(POLL_SECONDS)
        forced = processing.hand_back_held_by(self.label)
        if forced:
            logger.warning("Requeued %d request(s) whose worker had died or did not hand back in time", forced)
        time.sleep(max(0.0, min(DRAIN_SECONDS, deadline - time.monotonic())))
        # Tasks the workers had fetched but not started die with them: send them again, for
        # another cluster or this one's next start (a duplicate is harmless).
        processing.resend_waiting_tasks()
        for child in children:
            _signal(child, signal.SIGKILL)
        # Our direct child (the Sentinel) is reaped here; the workers were its children, and a
        # killed orphan can stay a zombie for as long as nobody reaps it (PID 1 in many containers).
        psutil.wait_procs(direct, timeout=0.5)
        while time.monotonic() < deadline and any(_running(child) for child in children):
            time.sleep(0.05)
        logger.info("Cluster %s stopped", self.label)


def _descendants() -> list[psutil.Process]:
    """Every process this one started, however deep, and when it leads its process group,
    every other process in that group too (a worker orphaned when its Sentinel died)."""
    me = psutil.Process()
    found = {child.pid: child for child in me.children(recursive=True)}
    if os.getpgid(0) == me.pid:
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if process.pid != me.pid and os.getpgid(process.pid) == me.pid:
                    found.setdefault(process.pid, process)
    return list(found.values())


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(process: psutil.Process, signum: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signum)


# A cluster that has not reported for this long is counted as gone. django-q2's sentinel reports every
# guard cycle (half a second) and its report expires from the cache after 3 s, so in practice a stopped
# cluster is gone within 3 s; this bounds a report whose cache kept it longer.
CLUSTER_STALE_SECONDS = 30


def live_clusters(broker: Any = None) -> list[dict[str, Any]]:
    """Each django-q2 cluster that reported in the last ``CLUSTER_STALE_SECONDS``: its id, host and worker count."""
    now = timezone.now()
    stats = [
        stat
        for stat in Stat.get_all(broker=broker or get_broker())
        if (now - stat.timestamp).total_seconds() < CLUSTER_STALE_SECONDS
    ]
    return [
        {"cluster": str(stat.cluster_id), "host": stat.host, "workers": len(stat.workers)}
        for stat in sorted(stats, key=lambda stat: (stat.host, str(stat.cluster_id)))
    ]


def workers_running() -> bool:
    """Whether a worker is there to take a queued request, however busy: what ``chat``'s hint asks.

    A cluster that reported lately is one (its workers may all be answering, or between two answers).
    So is a request held under a lease its worker keeps renewing: the reports live in the cache, and a
    cluster whose report is late still holds its requests.
    """
    if selectors.worker_holds_a_request():
        return True
    try:
        return any(cluster["workers"] for cluster in live_clusters())
    except Exception:  # the cache or broker does not answer: nothing says a worker is there
        logger.warning("Could not read the worker clusters' reports", exc_info=True)
        return False
