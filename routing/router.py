"""Choosing the route for a request.

In order: an explicit override (the request's own, a route forced for the
next message in this thread, the user's pinned route), images → the vision
route, the pre-router (admin rules, then similarity to route examples), the
LLM classifier, and finally the default route. Everything is read from the
database on each call, so admin edits apply to the next request.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace

import httpx
import ollama
from django.conf import settings

from budgets.usage import record_usage
from conversations.models import Message, Request
from routing import decisions, embeddings, hosts
from routing.clients import shared_sync_client
from routing.decisions import RouteCard, RuleSpec
from routing.models import NextMessageRoute, Route, RouterRule, RouterSettings, RoutingPreference
from routing.selectors import default_route, enabled_routes

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


@dataclass
class ModelTime:
    """Adds up what model servers report spending on one decision's calls."""

    ms: float = 0.0

    def add(self, total_duration_ns: int | None) -> None:
        self.ms += (total_duration_ns or 0) / 1e6


def _override(request: Request, routes: dict[str, Route]) -> Decision | None:
    if request.route_override:
        if request.route_override in routes:
            return Decision(routes[request.route_override], "override", f"asked for {request.route_override}")
        logger.info("Route %r asked for by request %s is gone; routing normally", request.route_override, request.pk)
    forced = NextMessageRoute.objects.filter(user_id=request.user_id, thread_id=request.thread_id).first()
    # Deleting is the claim: of two workers racing, only one uses it up.
    if forced is not None and NextMessageRoute.objects.filter(pk=forced.pk).delete()[0]:
        route = routes.get(forced.route.slug)
        if route is not None:
            return Decision(route, "override", "/route for the next message")
    pinned = (
        RoutingPreference.objects.filter(user_id=request.user_id, pinned_route__enabled=True)
        .select_related("pinned_route")
        .first()
    )
    if pinned is not None and pinned.pinned_route is not None:
        return Decision(pinned.pinned_route, "pinned", "pinned with /route")
    return None


def _has_images(request: Request) -> bool:
    return request.message.attachments.filter(kind="image").exists()


def _rules() -> list[tuple[RuleSpec, re.Pattern[str]]]:
    compiled = []
    for rule in RouterRule.objects.filter(enabled=True, route__enabled=True).select_related("route"):
        spec = RuleSpec(rule.route.slug, rule.kind, rule.pattern, rule.note or rule.pattern)
        try:
            compiled.append((spec, spec.compiled()))
        except re.error:  # the admin validates patterns; an old bad row must not stop routing
            logger.warning("Skipping router rule %s: invalid pattern %r", rule.pk, rule.pattern)
    return compiled


def _similar(request: Request, routes: dict[str, Route], config: RouterSettings, spent: ModelTime) -> Decision | None:
    model = config.embedding_model
    if not model:
        return None
    choice = hosts.choose_host(model)
    if choice is None:
        return None
    # Vision is for messages with images, which never get this far.
    examples = {
        slug: route.example_list for slug, route in routes.items() if route.example_list and slug != VISION_ROUTE
    }
    all_texts = [text for texts in examples.values() for text in texts]
    try:
        vectors = embeddings.example_vectors(
            host=choice.url, model=model, texts=all_texts, timeout=settings.ROUTER_TIMEOUT
        )
        query = embeddings.embed(
            host=choice.url, model=model, texts=[request.message.content], timeout=settings.ROUTER_TIMEOUT
        )
    except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
        logger.warning("Embedding with %s failed, skipping similarity: %s", model, exc)
        return None
    spent.add(query.total_duration)
    # Example embeddings are shared by everyone and cached; only the query is this user's cost.
    record_usage(
        user=request.user_id,
        kind="embedding",
        model=model,
        prompt_tokens=query.prompt_tokens,
        completion_tokens=0,
        request=request.pk,
    )
    scored = decisions.most_similar(
        query.vectors[0],
        {slug: [vectors[text] for text in texts] for slug, texts in examples.items()},
        threshold=config.similarity_threshold,
        margin=config.similarity_margin,
        top_k=config.similarity_top_k,
    )
    if scored is None or scored.route is None:
        return None
    return Decision(routes[scored.route], "embedding", scored.describe())


def preroute(request: Request, routes: dict[str, Route], config: RouterSettings, spent: ModelTime) -> Decision | None:
    """Everything before the LLM: override, images, rules, similarity. None: ask the classifier."""
    decided = _override(request, routes)
    if decided is not None:
        return decided
    if VISION_ROUTE in routes and _has_images(request):
        return Decision(routes[VISION_ROUTE], "vision", "the message has images")
    rule = decisions.first_matching_rule(request.message.content, _rules())
    if rule is not None:
        return Decision(routes[rule.route], "rule", rule.label[:300])
    return _similar(request, routes, config, spent)


def _history(request: Request, turns: int) -> list[tuple[str, str]]:
    if turns <= 0:
        return []
    earlier = (
        Message.objects.filter(thread_id=request.thread_id, created_at__lte=request.message.created_at)
        .exclude(pk=request.message.pk)
        .order_by("-created_at", "-pk")[: turns * 2]
    )
    return [(message.role, message.content) for message in reversed(earlier)]


def classify(request: Request, routes: dict[str, Route], config: RouterSettings, spent: ModelTime) -> Decision | None:
    """Ask the router model; None when it fails or gives no usable answer."""
    model = config.router_model
    choice = hosts.choose_host(model)
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
            options={"temperature": 0},
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


def route_request(request: Request) -> Decision:
    """Decide the route for ``request``. Raises ``NoRouteAvailable`` when no route is enabled."""
    started = time.perf_counter()
    spent = ModelTime()
    routes = {route.slug: route for route in enabled_routes()}
    config = RouterSettings.current()
    decided = preroute(request, routes, config, spent)
    if decided is None and settings.ROUTER_CLASSIFIER and config.classifier_enabled and len(routes) > 1:
        decided = classify(request, routes, config, spent)
    if decided is None:
        decided = Decision(default_route(), "default", "nothing else decided")
    elapsed = (time.perf_counter() - started) * 1000
    return replace(decided, ms=round(elapsed, 2), model_ms=round(spent.ms, 2))
