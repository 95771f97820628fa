"""Training the fast path's classifier: multinomial logistic regression with per-route thresholds.

Plain numpy rather than scikit-learn: the model is one matrix, the fit is a
few dozen lines of full-batch gradient descent on a convex loss, and
scikit-learn would bring scipy and joblib onto every worker for that. No
Django state here; ``routing.training`` feeds it the examples.

Thresholds are chosen on out-of-fold probabilities (each example scored by a
model that never saw it), so they say how the classifier does on messages it
was not fitted on, then the final model is fitted on everything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from routing.decisions import LinearClassifier

NEVER = 2.0  # a threshold no probability reaches: that route is always left to the LLM


@dataclass(frozen=True)
class Fitted:
    classifier: LinearClassifier
    # Out-of-fold figures per route at the chosen thresholds: decided, right, examples.
    report: dict[str, dict[str, float]] = field(default_factory=dict)


def _fit(x: np.ndarray, y: np.ndarray, classes: int, *, l2: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (classes by dims) and bias minimising class-balanced cross-entropy plus ``l2``·‖W‖²."""
    n, dims = x.shape
    counts = np.bincount(y, minlength=classes).astype(float)
    # Every route weighs the same in the loss, whatever its number of examples.
    sample = (n / (classes * np.maximum(counts, 1.0)))[y]
    sample /= sample.sum()
    onehot = np.eye(classes)[y]
    weights = np.zeros((classes, dims))
    bias = np.zeros(classes)
    # Adam: the features are standardised, so one step size suits every problem this sees.
    rate, beta1, beta2, eps = 0.05, 0.9, 0.999, 1e-8
    moments = [np.zeros_like(weights), np.zeros_like(bias)]
    squares = [np.zeros_like(weights), np.zeros_like(bias)]
    for step in range(1, steps + 1):
        logits = x @ weights.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        error = (probs - onehot) * sample[:, None]
        grads = [error.T @ x + 2 * l2 * weights, error.sum(axis=0)]
        for i, (param, grad) in enumerate(zip((weights, bias), grads, strict=True)):
            moments[i] = beta1 * moments[i] + (1 - beta1) * grad
            squares[i] = beta2 * squares[i] + (1 - beta2) * grad * grad
            corrected = moments[i] / (1 - beta1**step)
            param -= rate * corrected / (np.sqrt(squares[i] / (1 - beta2**step)) + eps)
    return weights, bias


def _train(x: np.ndarray, y: np.ndarray, classes: int, *, l2: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit on standardised features, then fold the standardisation into the weights (plain dot + bias)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    weights, bias = _fit((x - mean) / std, y, classes, l2=l2, steps=steps)
    scaled = weights / std
    return scaled, bias - scaled @ mean


def _softmax(x: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    logits = x @ weights.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per example, each route spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(y), dtype=int)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        assignment[members] = np.arange(len(members)) % folds
    return assignment


def choose_threshold(confidences: Sequence[float], correct: Sequence[bool], *, precision: float, floor: float) -> float:
    """The lowest threshold at which the decisions above it are at least ``precision`` right.

    ``confidences`` and ``correct`` describe the examples this route won. Scanning
    from the most confident down, the threshold stops at the last point where
    the running precision still meets the target; ``NEVER`` when none does.
    """
    order = np.argsort(-np.asarray(confidences, dtype=float))
    best = NEVER
    right = 0
    for rank, index in enumerate(order, start=1):
        right += bool(correct[index])
        if right / rank >= precision:
            best = float(confidences[index])
    return max(best, floor) if best != NEVER else NEVER


def fit(
    vectors: Sequence[Sequence[float]],
    labels: Sequence[str],
    *,
    precision: float = 0.97,
    floor: float = 0.7,
    folds: int = 5,
    l2: float = 1e-3,
    steps: int = 300,
    seed: int = 0,
) -> Fitted:
    """Fit the classifier and calibrate a threshold per route to reach ``precision`` out of fold."""
    names = tuple(sorted(set(labels)))
    if len(names) < 2:
        raise ValueError("Training needs examples of at least two routes.")
    index = {name: i for i, name in enumerate(names)}
    x = np.asarray(vectors, dtype=float)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    y = np.array([index[label] for label in labels])
    out_of_fold = np.zeros((len(y), len(names)))
    assignment = _folds(y, folds, seed)
    for fold in range(folds):
        held = assignment == fold
        if held.all() or not held.any():
            continue
        weights, bias = _train(x[~held], y[~held], len(names), l2=l2, steps=steps)
        out_of_fold[held] = _softmax(x[held], weights, bias)
    predicted = out_of_fold.argmax(axis=1)
    confidence = out_of_fold.max(axis=1)
    thresholds: dict[str, float] = {}
    report: dict[str, dict[str, float]] = {}
    totals = Counter(labels)
    for i, name in enumerate(names):
        won = predicted == i
        threshold = choose_threshold(confidence[won].tolist(), (y[won] == i).tolist(), precision=precision, floor=floor)
        thresholds[name] = threshold
        decided = won & (confidence >= threshold)
        report[name] = {
            "threshold": round(threshold, 4),
            "examples": totals[name],
            "decided": int(decided.sum()),
            "right": int((decided & (y == i)).sum()),
        }
    weights, bias = _train(x, y, len(names), l2=l2, steps=steps)
    classifier = LinearClassifier(
        labels=names,
        weights=tuple(tuple(float(w) for w in row) for row in weights),
        bias=tuple(float(b) for b in bias),
        thresholds=thresholds,
    )
    return Fitted(classifier, report)
