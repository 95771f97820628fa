"""What a routing decision reads, kept per process and reloaded when an operator changes it.

A decision used to read the routes, the rules, the router settings, the trained
classifier and the hosts from the database every time: about ten queries. They
change only when someone edits them (the admin, a retrain, a model sync, a
breaker opening), so each process keeps one ``RouterState`` and checks a token
(``RouterStateVersion``) that every such write replaces: saves and deletes through
the signal receivers here, bulk writes through ``RouterStateQuerySet``. The token
is read inside the one query a decision makes anyway (``request_facts``), so an
edit applies on the next decision in every process, without a restart.

The token is read before the rows it stands for, so a state built while an edit
commits is labelled with the older token and rebuilt on the next decision.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.db.models.signals import post_delete, post_save

from conversations.models import Attachment, Request
from routing.decisions import LinearClassifier, RuleSpec
from routing.hosts import HostChoice, canonical_model_name, choose_among, default_host
from routing.models import (
    NextMessageRoute,
    OllamaHost,
    OllamaModel,
    Route,
    RouteClassifier,
    RouterRule,
    RouterSettings,
    RouterStateVersion,
    RoutingPreference,
    bump_router_state,
)

CACHED_MODELS = (OllamaHost, OllamaModel, Route, RouterRule, RouterSettings, RouteClassifier)


@dataclass(frozen=True)
class RouterState:
    token: str | None
    routes: dict[str, Route]  # enabled, by slug, in slug order
    config: RouterSettings
    rules: list[tuple[RuleSpec, re.Pattern[str]]]
    classifier: LinearClassifier | None  # for ``config.embedding_model``
    hosts: list[OllamaHost]  # enabled, by pk
    # (canonical model name) -> ids of the enabled hosts the last sync saw with it
    having: dict[str, set[int]] = field(default_factory=dict)

    def choose_host(self, model: str) -> HostChoice | None:
        return choose_among(list(self.hosts), self.having.get(canonical_model_name(model), set()), model)


@dataclass(frozen=True)
class RequestFacts:
    """What one decision needs to know about its request, read in one query with the state token."""

    token: str | None
    forced: bool  # a /route for the next message in this thread waits
    pinned: str | None  # the user's pinned route, if enabled
    has_images: bool
    previous_route: str | None  # the thread's previous routed request's route and text
    previous_text: str | None


FACTS = ("state_token", "forced", "pinned", "has_images", "previous_route", "previous_text")
_SENTINEL = -7_316_842_105  # a request id no row has: marks where the id goes in the compiled SQL
_compiled_facts: dict[str, tuple[str, tuple[Any, ...], int]] = {}


def _facts_query(request_id: int) -> QuerySet[Request, dict[str, Any]]:
    previous = (
        Request.objects.filter(
            thread_id=OuterRef("thread_id"), route__isnull=False, queued_at__lte=OuterRef("queued_at")
        )
        .exclude(pk=OuterRef("pk"))
        .order_by("-queued_at", "-pk")
    )
    return (
        Request.objects.filter(pk=request_id)
        .annotate(
            state_token=Subquery(RouterStateVersion.objects.filter(pk=1).values("token")[:1]),
            forced=Exists(
                NextMessageRoute.objects.filter(user_id=OuterRef("user_id"), thread_id=OuterRef("thread_id"))
            ),
            pinned=Subquery(
                RoutingPreference.objects.filter(user_id=OuterRef("user_id"), pinned_route__enabled=True).values(
                    "pinned_route__slug"
                )[:1]
            ),
            has_images=Exists(Attachment.objects.filter(message_id=OuterRef("message_id"), kind="image")),
            previous_route=Subquery(previous.values("route__slug")[:1]),
            previous_text=Subquery(previous.values("message__content")[:1]),
        )
        .values(*FACTS)
    )


def _facts_sql() -> tuple[str, tuple[Any, ...], int] | None:
    """The facts query compiled once per process and database: building it with the ORM cost more than running it."""
    found = _compiled_facts.get(connection.vendor)
    if found is None:
        sql, params = _facts_query(_SENTINEL).query.sql_with_params()
        slots = [index for index, param in enumerate(params) if param == _SENTINEL]
        if len(slots) != 1:
            return None
        found = _compiled_facts[connection.vendor] = (sql, tuple(params), slots[0])
    return found


def request_facts(request: Request) -> RequestFacts:
    """The state token and what this request's decision needs, in one query."""
    compiled = _facts_sql()
    row: dict[str, Any] | None
    if compiled is None:  # never seen; the ORM's own path still answers
        row = _facts_query(request.pk).first()
    else:
        sql, params, slot = compiled
        with connection.cursor() as cursor:
            cursor.execute(sql, (*params[:slot], request.pk, *params[slot + 1 :]))
            names = [column[0] for column in cursor.description]
            fetched = cursor.fetchone()
        row = dict(zip(names, fetched, strict=True)) if fetched is not None else None
    if row is None:  # the request is gone; decide as for a fresh one
        token = RouterStateVersion.objects.filter(pk=1).values_list("token", flat=True).first()
        return RequestFacts(token, False, None, False, None, None)
    return RequestFacts(
        row["state_token"],
        bool(row["forced"]),
        row["pinned"],
        bool(row["has_images"]),
        row["previous_route"],
        row["previous_text"],
    )


def _compiled_rules(logger: Any) -> list[tuple[RuleSpec, re.Pattern[str]]]:
    compiled = []
    for rule in RouterRule.objects.filter(enabled=True, route__enabled=True).select_related("route"):
        spec = RuleSpec(rule.route.slug, rule.kind, rule.pattern, rule.note or rule.pattern)
        try:
            compiled.append((spec, spec.compiled()))
        except re.error:  # the admin validates patterns; an old bad row must not stop routing
            logger.warning("Skipping router rule %s: invalid pattern %r", rule.pk, rule.pattern)
    return compiled


def _classifier(model: str) -> LinearClassifier | None:
    row = RouteClassifier.objects.filter(embedding_model=model).first() if model else None
    if row is None:
        return None
    return LinearClassifier(
        labels=tuple(row.labels),
        weights=tuple(tuple(weights) for weights in row.weights),
        bias=tuple(row.bias),
        thresholds=dict(row.thresholds),
    )


def build(token: str | None) -> RouterState:
    """Read everything a decision needs; ``token`` is the one read before it."""
    import logging

    logger = logging.getLogger("routing.router")
    config = RouterSettings.current()
    enabled_hosts = list(OllamaHost.objects.filter(enabled=True).order_by("pk"))
    if not enabled_hosts and not OllamaHost.objects.exists():
        enabled_hosts = [default_host()]
    having: dict[str, set[int]] = {}
    for name, host_id in OllamaModel.objects.filter(host__in=enabled_hosts, available=True).values_list(
        "name", "host_id"
    ):
        having.setdefault(name, set()).add(host_id)
    return RouterState(
        token=token,
        routes={route.slug: route for route in Route.objects.filter(enabled=True)},
        config=config,
        rules=_compiled_rules(logger),
        classifier=_classifier(config.embedding_model),
        hosts=enabled_hosts,
        having=having,
    )


_lock = threading.Lock()
_current: RouterState | None = None


def state_for(token: str | None) -> RouterState:
    """This process's state if it was built at ``token``; otherwise rebuilt now."""
    global _current
    found = _current
    if found is not None and found.token == token:
        return found
    with _lock:
        if _current is not None and _current.token == token:
            return _current
        _current = build(token)
        return _current


def forget() -> None:
    """Drop this process's state (the benchmark measures the uncached path with it)."""
    global _current
    _current = None


def _changed(sender: type, **kwargs: Any) -> None:
    bump_router_state()


def connect_signals() -> None:
    for model in CACHED_MODELS:
        post_save.connect(_changed, sender=model, dispatch_uid=f"router-state-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"router-state-delete-{model.__name__}")
