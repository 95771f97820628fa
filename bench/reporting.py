"""Printing and saving a benchmark's report, the same way for every benchmark."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from bench.pipeline import RESULTS_DIR, Skip


def report_main(title: str, result_name: str, produce: Callable[[], str]) -> int:
    """Run ``produce`` and print its report (saved to ``bench/results/<result_name>.txt``).

    Exit status 0 when it ran or was skipped with a reason, 1 when it could not run.
    """
    try:
        report = produce()
    except Skip as skip:
        print(f"{title}: SKIPPED: {skip}")
        return 0
    except Exception as exc:
        print(f"{title}: COULD NOT RUN: {exc!r}")
        return 1
    print(report)
    with contextlib.suppress(OSError):
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{result_name}.txt").write_text(report)
    return 0
