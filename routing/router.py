"""Choosing the route for a request.

In order: an explicit override (the request's own, a route forced for the
next message in this thread, the user's pinned route), images → the vision
route, the pre-router (admin rules, then similarity to route examples), the
LLM classifier, and finally the default route. Routes, rules, settings, the
trained classifier and the hosts are kept per process (``routing.state``) and
reloaded when their token changes, so admin edits apply to the next request; a
decision on the fast path makes one query to read and one to record.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace

import httpx
import ollama
from django.conf import settings

from conversations.models import Message, Request
from routing import decisions, embeddings, hosts, state
from routing.clients import shared_sync_client
from routing.decisions import LinearClassifier, RouteCard, RuleSpec
from routing.models import (
    NextMessageRoute,
    Route,
    RouterSettings,
    RoutingDecision,
    RoutingPreference,
)
from routing.selectors import NoRouteAvailable, default_route, enabled_routes
from routing.signals import record_usage
from routing.state import RequestFacts, RouterState

logger = logging.getLogger(__name__)

VISION_ROUTE = "vision"


@dataclass(frozen=True)
class Decision:
    route: Route
    method: str  # override, pinned, vision, rule, embedding, classifier, default
    detail: str = ""
    ms: float = 0.0
    # The classifier's reading of whether the user asked for a downloadable file.
    wants_file: bool = False
    # Of ``ms``, the time the model servers said they spent on this decision's calls
    # (the message's embedding, the classifier): Ollama's ``total_duration``.
    model_ms: float = 0.0
    # The trained classifier's probability per route and for its best route, when it scored the message.
    scores: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    previous_route: str = ""  # the thread's previous turn's route, when the fast path read it


@dataclass(frozen=True)
class Unsure:
    """The fast path scored the message but no route reached its threshold: the scores, for the record."""

    detail: str
    scores: dict[str, float]
    confidence: float
    previous_route: str = ""


@dataclass
class ModelTime:
    """Adds up what model servers report spending on one decision's calls."""

    ms: float = 0.0

    def add(self, total_duration_ns: int | None) -> None:
        self.ms += (total_duration_ns or 0) / 1e6


def _override(request: Request, routes: dict[str, Route], facts: RequestFacts) -> Decision | None:
    if request.route_override:
        if request.route_override in routes:
            return Decision(routes[request.route_override], "override", f"asked for {request.route_override}")
        logger.info("Route %r asked for by request %s is gone; routing normally", request.route_override, request.pk)
    if facts.forced:
        forced = NextMessageRoute.objects.filter(user_id=request.user_id, thread_id=request.thread_id).first()
        # Deleting is the claim: of two workers racing, only one uses it up.
        if forced is not None and NextMessageRoute.objects.filter(pk=forced.pk).delete()[0]:
            route = routes.get(forced.route.slug)
            if route is not None:
                return Decision(route, "override", "/route for the next message")
    if facts.pinned is not None and facts.pinned in routes:
        return Decision(routes[facts.pinned], "pinned", "pinned with /route")
    return None


def _has_images(request: Request) -> bool:
    return request.message.attachments.filter(kind="image").exists()


def _rules() -> list[tuple[RuleSpec, re.Pattern[str]]]:
    return state._compiled_rules(logger)


_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: object) -> None:
    """A fast-path problem is logged once per process, not once per message."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def _embed_query(request: Request, model: str, host: str, texts: list[str], spent: ModelTime) -> list[list[float]]:
    query = embeddings.embed(host=host, model=model, texts=texts, timeout=settings.ROUTER_TIMEOUT)
    spent.add(query.total_duration)
    record_usage(
        user=request.user_id,
        kind="embedding",
        model=model,
        prompt_tokens=query.prompt_tokens,
        completion_tokens=0,
        request=request.pk,
    )
    return query.vectors


def _similar(
    request: Request, routes: dict[str, Route], config: RouterSettings, spent: ModelTime, host: str
) -> Decision | None:
    """Nearest route examples: the fast path while no classifier is trained for the embedding model."""
    model = config.embedding_model
    # Vision is for messages with images, which never get this far.
    examples = {
        slug: route.example_list for slug, route in routes.items() if route.example_list and slug != VISION_ROUTE
    }
    all_texts = [text for texts in examples.values() for text in texts]
    vectors = embeddings.example_vectors(host=host, model=model, texts=all_texts, timeout=settings.ROUTER_TIMEOUT)
    # Example embeddings are shared by everyone and cached; only the query is this user's cost.
    (query,) = _embed_query(request, model, host, [request.message.content], spent)
    scored = decisions.most_similar(
        query,
        {slug: [vectors[text] for text in texts] for slug, texts in examples.items()},
        threshold=config.similarity_threshold,
        margin=config.similarity_margin,
        top_k=config.similarity_top_k,
    )
    if scored is None or scored.route is None:
        return None
    return Decision(routes[scored.route], "embedding", scored.describe())


def _classified(
    request: Request,
    routes: dict[str, Route],
    config: RouterSettings,
    spent: ModelTime,
    host: str,
    classifier: LinearClassifier,
    facts: RequestFacts,
) -> Decision | Unsure:
    """The trained classifier on the message, and for a follow-up on the message read with the previous turn."""
    model = config.embedding_model
    text = request.message.content
    allowed = [slug for slug in classifier.labels if slug in routes]
    previous = (facts.previous_route, facts.previous_text or "") if facts.previous_route is not None else None
    if previous is not None and previous[0] not in classifier.labels:
        previous = None  # e.g. the vision route: the next message is judged on its own
    texts = [text] if previous is None else [text, f"{previous[1]}\n{text}"]
    vectors = _embed_query(request, model, host, texts, spent)
    alone = classifier.probabilities(vectors[0])
    if previous is None:
        scored = decisions.pick(alone, classifier.thresholds, allowed)
        kept = False
    else:
        in_thread = decisions.decide_in_thread(
            alone=alone,
            in_context=classifier.probabilities(vectors[1]),
            previous=previous[0],
            words=len(text.split()),
            thresholds=classifier.thresholds,
            allowed=allowed,
            lean=config.follow_up_lean,
            new_topic=decisions.opens_a_new_topic(text),
        )
        if in_thread is None:
            scored, kept = replace(decisions.pick(alone, classifier.thresholds, allowed), route=None), False
        else:
            scored, kept = in_thread.scored, in_thread.kept
    scores = {slug: round(p, 4) for slug, p in scored.scores.items()}
    previous_route = previous[0] if previous else ""
    if scored.route is None:
        return Unsure(scored.describe(), scores, round(scored.confidence, 4), previous_route)
    return Decision(
        routes[scored.route],
        "follow_up" if kept else "embedding",
        ("kept from the previous turn: " if kept else "") + scored.describe(),
        scores=scores,
        confidence=round(scored.confidence, 4),
        previous_route=previous_route,
    )


def _fast_path(
    request: Request, router: RouterState, facts: RequestFacts, spent: ModelTime
) -> Decision | Unsure | None:
    """Similarity to the labelled examples; None when unsure, switched off, or the embedding model is missing."""
    routes, config = router.routes, router.config
    model = config.embedding_model
    if not model or not settings.ROUTER_FAST_PATH:
        return None
    choice = router.choose_host(model)
    if choice is None:
        return None
    classifier = router.classifier
    try:
        if classifier is None:
            _warn_once(
                f"untrained:{model}",
                "No router classifier is trained for %s yet, so the fast path compares with route examples only. "
                "It is trained by the scheduled model sync, or now with `manage.py retrainrouter`.",
                model,
            )
            return _similar(request, routes, config, spent, choice.url)
        return _classified(request, routes, config, spent, choice.url, classifier, facts)
    except ollama.ResponseError as exc:
        if exc.status_code == 404:
            _warn_once(
                f"missing:{model}",
                "The embedding model %s is not on %s: run `ollama pull %s` there. Until then every message "
                "no rule decides goes to the router model.",
                model,
                choice.url,
                model,
            )
        else:
            logger.warning("Embedding with %s failed, skipping the fast path: %s", model, exc)
    except (httpx.HTTPError, ConnectionError) as exc:
        logger.warning("Embedding with %s failed, skipping the fast path: %s", model, exc)
    return None


def preroute(request: Request, router: RouterState, facts: RequestFacts, spent: ModelTime) -> Decision | Unsure | None:
    """Everything before the LLM: override, images, rules, similarity. Otherwise ask the classifier."""
    routes = router.routes
    decided = _override(request, routes, facts)
    if decided is not None:
        return decided
    if VISION_ROUTE in routes and facts.has_images:
        return Decision(routes[VISION_ROUTE], "vision", "the message has images")
    rule = decisions.first_matching_rule(request.message.content, router.rules)
    if rule is not None:
        return Decision(routes[rule.route], "rule", rule.label[:300])
    return _fast_path(request, router, facts, spent)


def _history(request: Request, turns: int) -> list[tuple[str, str]]:
    if turns <= 0:
        return []
    earlier = (
        Message.objects.filter(thread_id=request.thread_id, created_at__lte=request.message.created_at)
        .exclude(pk=request.message.pk)
        .order_by("-created_at", "-pk")[: turns * 2]
    )
    return [(message.role, message.content) for message in reversed(earlier)]


def classify(
    request: Request,
    routes: dict[str, Route],
    config: RouterSettings,
    spent: ModelTime,
    router: RouterState | None = None,
) -> Decision | None:
    """Ask the router model; None when it fails or gives no usable answer."""
    model = config.router_model
    choice = router.choose_host(model) if router is not None else hosts.choose_host(model)
    if choice is None:
        logger.warning("No host can run the router model %s", model)
        return None
    routes = {slug: route for slug, route in routes.items() if slug != VISION_ROUTE}  # no images got this far
    cards = [RouteCard(slug, route.description, tuple(route.example_list)) for slug, route in routes.items()]
    messages = decisions.classifier_messages(cards, _history(request, config.history_turns), request.message.content)
    capabilities = hosts.model_capabilities(model) or {}
    think = decisions.think_value("off", model_thinks=capabilities.get("thinking"))
    client = shared_sync_client(choice.url, read_timeout=settings.ROUTER_TIMEOUT)
    try:
        response = client.chat(
            model=model,
            messages=messages,
            format=decisions.classifier_schema(list(routes)),
            stream=False,
            think=think,
            # The routes' num_ctx when they share the router's model: another would make Ollama reload it.
            options={"temperature": 0, **({"num_ctx": num_ctx} if (num_ctx := hosts.context_for_model(model)) else {})},
            keep_alive=config.router_keep_alive or None,
        )
    except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
        logger.warning("Router model %s failed: %s", model, exc)
        return None
    spent.add(response.total_duration)
    record_usage(
        user=request.user_id,
        kind="router",
        model=model,
        prompt_tokens=response.prompt_eval_count,
        completion_tokens=response.eval_count,
        request=request.pk,
    )
    raw = response.message.content or ""
    answer = decisions.parse_classifier_answer(raw, list(routes))
    if answer.route is None:
        logger.info("Router model gave no route for request %s: %r", request.pk, raw[:200])
        return None
    return Decision(routes[answer.route], "classifier", raw.strip()[:300], wants_file=answer.wants_file)


def expected_model(request: Request) -> str:
    """The model ``request`` will most likely run on, judged without asking any model; "" when only they can tell.

    For the scheduler, at intake: an override, a route forced for the next
    message or a pinned route, images, an admin rule, or a router that can
    only fall back to the default route. Reads only; ``/route`` for the next
    message is used up by ``route_request`` as before.
    """
    routes = {route.slug: route for route in enabled_routes()}
    if not routes:
        return ""
    route: Route | None = routes.get(request.route_override) if request.route_override else None
    if route is None:
        forced = NextMessageRoute.objects.filter(user_id=request.user_id, thread_id=request.thread_id).first()
        route = routes.get(forced.route.slug) if forced is not None else None
    if route is None:
        pinned = RoutingPreference.objects.filter(user_id=request.user_id, pinned_route__enabled=True).first()
        route = pinned.pinned_route if pinned is not None else None
    if route is None and VISION_ROUTE in routes and _has_images(request):
        route = routes[VISION_ROUTE]
    if route is None:
        rule = decisions.first_matching_rule(request.message.content, _rules())
        route = routes.get(rule.route) if rule is not None else None
    if route is None:
        config = RouterSettings.current()
        asks_a_model = (settings.ROUTER_FAST_PATH and config.embedding_model) or (
            settings.ROUTER_CLASSIFIER and config.classifier_enabled and len(routes) > 1
        )
        if asks_a_model:
            return ""
        route = default_route()
    return hosts.canonical_model_name(route.model) if route.model else ""


def _default_route(routes: dict[str, Route]) -> Route:
    """The route for a message nothing else claims: DEFAULT_ROUTE, else the first enabled one (by slug)."""
    route = routes.get(settings.DEFAULT_ROUTE) or next(iter(routes.values()), None)
    if route is None:
        raise NoRouteAvailable("No route is enabled. An operator can enable one in the admin under Routing → Routes.")
    return route


def route_request(request: Request) -> Decision:
    """Decide the route for ``request`` and record how. Raises ``NoRouteAvailable`` when no route is enabled."""
    started = time.perf_counter()
    spent = ModelTime()
    facts = state.request_facts(request)
    router = state.state_for(facts.token)
    routes, config = router.routes, router.config
    found = preroute(request, router, facts, spent)
    decided = found if isinstance(found, Decision) else None
    if decided is None and settings.ROUTER_CLASSIFIER and config.classifier_enabled and len(routes) > 1:
        decided = classify(request, routes, config, spent, router)
    if decided is None:
        decided = Decision(_default_route(routes), "default", "nothing else decided")
    if isinstance(found, Unsure):  # the classifier or the default decided, but keep what the fast path saw
        decided = replace(
            decided,
            detail=f"{decided.detail}; fast path unsure: {found.detail}",
            scores=found.scores,
            confidence=found.confidence,
            previous_route=found.previous_route,
        )
    elapsed = (time.perf_counter() - started) * 1000
    decided = replace(decided, ms=round(elapsed, 2), model_ms=round(spent.ms, 2))
    RoutingDecision.objects.create(
        request_id=request.pk,
        route=decided.route.slug,
        method=decided.method,
        detail=decided.detail[:300],
        confidence=decided.confidence,
        scores=decided.scores,
        previous_route=decided.previous_route,
        ms=decided.ms,
        model_ms=decided.model_ms,
    )
    return decided
