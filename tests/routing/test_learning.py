"""Training the fast path's classifier: the fit, the calibrated thresholds, and scoring it in plain Python."""

from __future__ import annotations

import random

import pytest

from routing.decisions import unit
from routing.learning import NEVER, choose_threshold, fit


def clusters(centres: dict[str, list[float]], per_route: int, spread: float, seed: int = 1) -> tuple[list, list]:
    rng = random.Random(seed)
    vectors, labels = [], []
    for label, centre in centres.items():
        for _ in range(per_route):
            vectors.append(unit([c + rng.gauss(0, spread) for c in centre]))
            labels.append(label)
    return vectors, labels


CENTRES = {
    "math": [1.0, 0.0, 0.0, 0.0],
    "simple_code": [0.0, 1.0, 0.0, 0.0],
    "general": [0.0, 0.0, 1.0, 0.0],
}


class ChooseThresholdTests:
    def test_it_is_the_lowest_confidence_that_keeps_the_precision(self):
        confidences = [0.99, 0.95, 0.9, 0.8, 0.7, 0.6]
        correct = [True, True, True, True, False, False]

        assert choose_threshold(confidences, correct, precision=0.8, floor=0.0) == 0.7
        assert choose_threshold(confidences, correct, precision=1.0, floor=0.0) == 0.8

    def test_a_route_that_never_reaches_the_precision_is_never_decided(self):
        assert choose_threshold([0.9, 0.8], [False, True], precision=0.95, floor=0.0) == NEVER

    def test_the_floor_bounds_it_from_below(self):
        assert choose_threshold([0.4, 0.3], [True, True], precision=0.95, floor=0.5) == 0.5


class FitTests:
    def test_separate_routes_are_learnt_and_decided(self):
        vectors, labels = clusters(CENTRES, per_route=30, spread=0.2)

        fitted = fit(vectors, labels, precision=0.95)

        classifier = fitted.classifier
        assert classifier.labels == ("general", "math", "simple_code")
        scores = classifier.probabilities([0.9, 0.1, 0.0, 0.05])
        assert max(scores, key=scores.__getitem__) == "math"
        assert sum(scores.values()) == pytest.approx(1.0)
        assert scores["math"] >= classifier.thresholds["math"]
        assert all(fitted.report[label]["examples"] == 30 for label in classifier.labels)

    def test_overlapping_routes_get_thresholds_that_hold_their_precision_out_of_fold(self):
        # math and reasoning overlap heavily; general stands apart.
        centres = {"math": [1.0, 0.3, 0.0], "reasoning": [0.8, 0.6, 0.0], "general": [0.0, 0.0, 1.0]}
        vectors, labels = clusters(centres, per_route=60, spread=0.35)

        fitted = fit(vectors, labels, precision=0.95)

        for label, figures in fitted.report.items():
            if figures["decided"]:
                assert figures["right"] / figures["decided"] >= 0.95, label
        assert fitted.report["general"]["decided"] > fitted.report["reasoning"]["decided"]

    def test_it_needs_two_routes(self):
        with pytest.raises(ValueError):
            fit([[1.0, 0.0]], ["math"])
