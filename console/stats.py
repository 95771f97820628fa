"""Small statistics helpers with no Django state."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (0..1) of ascending values by linear interpolation; None when empty.

    The same definition as PostgreSQL's ``percentile_cont`` and NumPy's default,
    written out because SQLite has neither and the values are already in hand.
    """
    if not sorted_values:
        return None
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    position = (len(sorted_values) - 1) * fraction
    below, above = math.floor(position), math.ceil(position)
    low, high = sorted_values[below], sorted_values[above]
    return low + (high - low) * (position - below)
