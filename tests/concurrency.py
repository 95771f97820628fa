"""Running work in real threads that start at the same instant, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def race(work: Callable[[T], object], items: list[T]) -> list[object]:
    """Run ``work`` for every item in its own thread, all released at once; each result, or what it raised."""
    start = threading.Barrier(len(items))
    results: list[object] = [None] * len(items)

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = work(items[index])
        except Exception as exc:  # the test inspects what each thread met
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
