"""Pure routing helpers: rules, similarity, the classifier's prompt and answer, think values.

No Django state here, so the benchmark and the tests call these directly.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# ------------------------------------------------------------------ rules


@dataclass(frozen=True)
class RuleSpec:
    route: str
    kind: str  # "keyword" or "regex"
    pattern: str
    label: str = ""

    def compiled(self) -> re.Pattern[str]:
        if self.kind == "keyword":
            return re.compile(rf"(?<!\w){re.escape(self.pattern)}(?!\w)", re.IGNORECASE)
        return re.compile(self.pattern)


def first_matching_rule(text: str, rules: Iterable[tuple[RuleSpec, re.Pattern[str]]]) -> RuleSpec | None:
    for spec, pattern in rules:
        if pattern.search(text):
            return spec
    return None


# ------------------------------------------------------------------ similarity


def unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(map(operator.mul, vector, vector)))
    return [x / norm for x in vector] if norm else list(vector)


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    # map(operator.mul) is about twice as fast as a generator, and this runs per example per message.
    return sum(map(operator.mul, a, b))


@dataclass(frozen=True)
class Similarity:
    route: str | None  # None when not confident
    best: float
    runner_up: float
    best_route: str

    def describe(self) -> str:
        return f"{self.best_route} {self.best:.2f} vs {self.runner_up:.2f}"


def most_similar(
    query: Sequence[float],
    examples: Mapping[str, Sequence[Sequence[float]]],
    *,
    threshold: float,
    margin: float,
    top_k: int = 1,
) -> Similarity | None:
    """The route whose examples are closest to ``query``, if it beats ``threshold`` and the runner-up by ``margin``.

    Vectors must be unit length (``unit``), so a dot product is the cosine.
    A route scores the mean of its ``top_k`` closest examples: one close
    example can be luck, two agreeing is a pattern, while a route still
    covers several kinds of message without diluting any of them.
    """
    query = unit(query)
    scores: list[tuple[float, str]] = []
    for route, vectors in examples.items():
        if vectors:
            closest = sorted((dot(query, vector) for vector in vectors), reverse=True)[:top_k]
            scores.append((sum(closest) / len(closest), route))
    if not scores:
        return None
    scores.sort(reverse=True)
    best, best_route = scores[0]
    runner_up = scores[1][0] if len(scores) > 1 else 0.0
    confident = best >= threshold and best - runner_up >= margin
    return Similarity(best_route if confident else None, best, runner_up, best_route)


# ------------------------------------------------------------------ classifier


@dataclass(frozen=True)
class RouteCard:
    slug: str
    description: str
    examples: tuple[str, ...] = ()


def classifier_schema(slugs: Sequence[str]) -> dict[str, object]:
    """The JSON schema passed as Ollama's ``format``, so the model answers in this shape."""
    return {
        "type": "object",
        "properties": {
            "route": {"type": "string", "enum": list(slugs)},
            "wants_file": {"type": "boolean"},
        },
        "required": ["route", "wants_file"],
    }


CLASSIFIER_INSTRUCTIONS = """\
You sort chat messages for an assistant that has several specialist models. \
Pick the one route that fits the user's LATEST message best. Earlier turns are \
context: a short follow-up ("and for 5?", "make it faster") belongs to the same \
route as the turn it follows. Set wants_file to true only when the user asks \
for a downloadable file (a document, spreadsheet, archive, script file).

Routes:
{routes}

Answer with JSON only: {{"route": "<one of: {slugs}>", "wants_file": true|false}}"""


def classifier_messages(
    routes: Sequence[RouteCard], history: Sequence[tuple[str, str]], message: str, *, examples_per_route: int = 3
) -> list[dict[str, str]]:
    """The chat sent to the router model: instructions, the recent turns, the new message."""
    lines = []
    for card in routes:
        lines.append(f"- {card.slug}: {card.description}".rstrip(": "))
        lines.extend(f'    e.g. "{example}"' for example in card.examples[:examples_per_route])
    system = CLASSIFIER_INSTRUCTIONS.format(routes="\n".join(lines), slugs=", ".join(c.slug for c in routes))
    transcript = "\n".join(f"{role}: {_clip(text)}" for role, text in history)
    prompt = (f"Conversation so far:\n{transcript}\n\n" if transcript else "") + f"Latest message:\n{_clip(message)}"
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


def _clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class ClassifierAnswer:
    route: str | None
    wants_file: bool


def _slug_pattern(slug: str) -> re.Pattern[str]:
    # "simple_code" also matches "Simple code" and "simple-code"; never inside a longer word.
    body = r"[\s_\-]+".join(re.escape(part) for part in slug.lower().split("_"))
    return re.compile(rf"(?<![a-z0-9]){body}(?![a-z0-9])")


def parse_classifier_answer(raw: str, slugs: Sequence[str]) -> ClassifierAnswer:
    """Read the router model's answer, however messy.

    Tries JSON first (what ``format`` asks for), then looks for a route name in
    the text: ``**MATH**``, ``route: math``, ``Simple code``. A route name must
    stand on its own (``math`` in ``mathematics`` does not count); when several
    appear, the first wins. Anything else (junk, empty) gives ``route=None``.
    """
    text = (raw or "").strip()
    wants_file = False
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        wants_file = data.get("wants_file") is True
        text = str(data.get("route") or "")
    else:
        wants_file = bool(re.search(r'wants_file"?\s*[:=]\s*true', text, re.IGNORECASE))
    lowered = text.lower()
    found = []
    for slug in slugs:
        match = _slug_pattern(slug).search(lowered)
        if match:
            found.append((match.start(), -len(slug), slug))
    if not found:
        return ClassifierAnswer(None, wants_file)
    return ClassifierAnswer(min(found)[2], wants_file)


# ------------------------------------------------------------------ thinking

THINK_LEVELS = ("low", "medium", "high")


def think_value(route_think: str, *, model_thinks: bool | None, preference: str = "auto") -> bool | str | None:
    """What to send as Ollama's ``think`` for a route, a model and a user's preference.

    None means "leave ``think`` out": the model cannot think (Ollama refuses
    ``think`` for such models) or its capabilities are unknown. The user's
    ``on`` turns thinking on where the route had it off; ``off`` turns it off.
    """
    if not model_thinks:
        return None
    if preference == "off":
        return False
    if preference == "on" and route_think == "off":
        return True
    if route_think in THINK_LEVELS:
        return route_think
    return route_think == "on"


# ------------------------------------------------------------------ the trained classifier


@dataclass(frozen=True)
class LinearClassifier:
    """A multinomial logistic regression over unit embedding vectors, with a threshold per route.

    Scoring is plain Python on purpose: it is one dot product per route
    (six of 384 numbers), well under a millisecond, so the request path needs
    no numpy. Training lives in ``routing.learning``.
    """

    labels: tuple[str, ...]
    weights: tuple[tuple[float, ...], ...]  # one row per label
    bias: tuple[float, ...]
    thresholds: Mapping[str, float]  # the probability a route needs; above 1 means never decided here

    def probabilities(self, vector: Sequence[float]) -> dict[str, float]:
        query = unit(vector)
        logits = [dot(row, query) + b for row, b in zip(self.weights, self.bias, strict=True)]
        top = max(logits)
        exps = [math.exp(logit - top) for logit in logits]
        total = sum(exps)
        return {label: e / total for label, e in zip(self.labels, exps, strict=True)}


@dataclass(frozen=True)
class Scored:
    """What the classifier made of a message: ``route`` is None when no route clears its threshold."""

    route: str | None
    best_route: str
    confidence: float
    threshold: float
    scores: Mapping[str, float]

    def describe(self) -> str:
        others = sorted(((p, r) for r, p in self.scores.items() if r != self.best_route), reverse=True)[:2]
        rest = ", ".join(f"{r} {p:.2f}" for p, r in others)
        return f"{self.best_route} {self.confidence:.2f} (needs {self.threshold:.2f}; {rest})"


def pick(scores: Mapping[str, float], thresholds: Mapping[str, float], allowed: Iterable[str]) -> Scored:
    """The best allowed route, confident only if its probability reaches its route's threshold."""
    allowed = set(allowed)
    candidates = {route: p for route, p in scores.items() if route in allowed} or dict(scores)
    best_route = max(candidates, key=candidates.__getitem__)
    confidence = candidates[best_route]
    threshold = thresholds.get(best_route, 2.0)
    route = best_route if best_route in allowed and confidence >= threshold else None
    return Scored(route, best_route, confidence, threshold, dict(scores))


def lean_towards(scores: Mapping[str, float], route: str, factor: float) -> dict[str, float]:
    """``scores`` with ``route`` weighted ``factor`` times as likely a priori, renormalised (Bayes' rule)."""
    weighted = {r: p * (factor if r == route else 1.0) for r, p in scores.items()}
    total = sum(weighted.values()) or 1.0
    return {r: p / total for r, p in weighted.items()}


@dataclass(frozen=True)
class ThreadDecision:
    scored: Scored
    kept: bool  # True when the previous turn's route was kept for a follow-up


FOLLOW_UP_WORDS = 12

# A message that opens by closing the previous exchange ("thanks! now…", "great, thanks.") or by
# saying it changes the subject. Read with the previous message, such a text still looks like the
# previous topic, so the context reading cannot be asked to agree before it leaves.
_NEW_TOPIC = re.compile(
    r"^\W*(?:thanks|thank you|thx|ty|cheers|great|perfect|awesome|cool|nice|brilliant|got it|"
    r"unrelated|new question|different (?:topic|question)|change of (?:topic|subject)|"
    r"changing the subject|on another note|switching gears|by the way|btw)\b",
    re.IGNORECASE,
)


def opens_a_new_topic(text: str) -> bool:
    """Whether ``text`` starts by closing the previous exchange or by changing the subject."""
    return bool(_NEW_TOPIC.match(text))


def decide_in_thread(
    *,
    alone: Mapping[str, float],
    in_context: Mapping[str, float],
    previous: str,
    words: int,
    thresholds: Mapping[str, float],
    allowed: Iterable[str],
    lean: float,
    new_topic: bool = False,
) -> ThreadDecision | None:
    """Route a message that follows an earlier turn routed to ``previous``.

    ``alone`` scores the message by itself; ``in_context`` scores it joined to
    the previous user message. The message leaves ``previous`` only when it
    clearly belongs elsewhere: confident on its own, and the context reading
    agrees, or the message opens a new topic (``new_topic``: "thanks! now write
    me a poem") and is confident on its own. Otherwise the previous route is kept when the message reads as a
    follow-up (short, or its context reading still favours ``previous`` once
    leant towards it); anything else goes to the classifier (None).
    """
    allowed = list(allowed)
    own = pick(alone, thresholds, allowed)
    context = pick(in_context, thresholds, allowed)
    if own.route is not None and (own.route == previous or context.best_route == own.route or new_topic):
        return ThreadDecision(own, kept=own.route == previous)
    leant = pick(lean_towards(in_context, previous, lean), thresholds, allowed)
    if previous in allowed and (words <= FOLLOW_UP_WORDS or leant.best_route == previous):
        keep = Scored(previous, previous, leant.scores[previous], thresholds.get(previous, 2.0), leant.scores)
        return ThreadDecision(keep, kept=True)
    return None if leant.route is None else ThreadDecision(leant, kept=False)
