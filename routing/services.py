"""Routing use cases that change state: syncing, warming models, users' route and thinking choices."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import ollama
from django.db import transaction

from conversations.models import ChatUser, Thread
from routing import hosts
from routing.clients import sync_client
from routing.models import NextMessageRoute, OllamaModel, Route, RouterSettings, RoutingPreference
from routing.sync import HostSync, sync_models

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Warmed:
    model: str
    keep_alive: str
    host: str = ""
    error: str = ""


def warm_up() -> list[Warmed]:
    """Load the router model and every ``keep_warm`` route's model with its keep-alive.

    An empty generate request is Ollama's documented way to load a model
    without answering anything. It asks for the context size the model's
    routes use (``context_for_model``): Ollama reloads a model asked for with
    another ``num_ctx``, so a warm-up with its own default would cost the first
    real answer a second load.
    """
    wanted: dict[str, str] = {}
    router = RouterSettings.current()
    if router.classifier_enabled and router.router_model:
        wanted[router.router_model] = router.router_keep_alive
    for route in Route.objects.filter(enabled=True, keep_warm=True):
        wanted.setdefault(route.model, route.keep_alive)
    results = []
    for model, keep_alive in wanted.items():
        choice = hosts.choose_host(model)
        if choice is None:
            results.append(Warmed(model, keep_alive, error="no usable host"))
            continue
        client = sync_client(choice.url)
        try:
            num_ctx = hosts.context_for_model(model)
            options = {"num_ctx": num_ctx} if num_ctx else None
            client.generate(model=model, prompt="", keep_alive=keep_alive or None, options=options)
            results.append(Warmed(model, keep_alive, host=choice.url))
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
            logger.warning("Could not warm %s on %s: %s", model, choice.url, exc)
            results.append(Warmed(model, keep_alive, host=choice.url, error=str(exc)))
        finally:
            client.close()
    return results


def missing_embedding_model() -> str:
    """The router's embedding model when no synced host lists it (empty when set and present, or unset)."""
    model = RouterSettings.current().embedding_model
    if not model or OllamaModel.objects.filter(name=hosts.canonical_model_name(model), available=True).exists():
        return ""
    return model


def sync_and_warm() -> list[HostSync]:
    reports = sync_models()
    warm_up()
    return reports


def preference_of(user: ChatUser) -> RoutingPreference:
    preference, _ = RoutingPreference.objects.get_or_create(user=user)
    return preference


@transaction.atomic
def pin_route(*, user: ChatUser, route: Route | None) -> RoutingPreference:
    """Pin ``route`` for every message of ``user``; None unpins (back to automatic)."""
    preference = preference_of(user)
    preference.pinned_route = route
    preference.save(update_fields=["pinned_route", "updated_at"])
    return preference


@transaction.atomic
def set_next_route(*, user: ChatUser, thread: Thread, route: Route) -> NextMessageRoute:
    """Force ``route`` for the user's next message in ``thread`` (replacing an earlier choice)."""
    forced, _ = NextMessageRoute.objects.update_or_create(user=user, thread=thread, defaults={"route": route})
    return forced


def move_next_route(*, user: ChatUser, from_thread: Thread, to_thread: Thread) -> bool:
    """Make the route ``user`` forced for their next message in ``from_thread`` apply in ``to_thread`` instead.

    For a message that opens a new thread: the choice made where it was
    written follows it. False when there was nothing to move.
    """
    return bool(NextMessageRoute.objects.filter(user=user, thread=from_thread).update(thread=to_thread))


@transaction.atomic
def set_thinking(*, user: ChatUser, thinking: str) -> RoutingPreference:
    if thinking not in RoutingPreference.Thinking.values:
        raise ValueError(f"thinking must be one of {', '.join(RoutingPreference.Thinking.values)}")
    preference = preference_of(user)
    preference.thinking = thinking
    preference.save(update_fields=["thinking", "updated_at"])
    return preference


@dataclass(frozen=True)
class RouteChoice:
    """What ``/route`` did: ``scope`` is ``next``, ``pin`` or ``auto``; ``route`` is None for ``auto``."""

    scope: str
    route: Route | None


class UnknownRoute(ValueError):
    """The user named a route that does not exist or is switched off; ``str()`` says which exist."""


@transaction.atomic
def choose_route(*, user: ChatUser, thread: Thread, slug: str, scope: str) -> RouteChoice:
    """``/route``: force a route for the next message here, pin it for every message, or ``auto`` to clear both.

    Overrides only choose the model: intake still checks budgets, and artifacts work on every route.
    """
    if slug == "auto":
        pin_route(user=user, route=None)
        NextMessageRoute.objects.filter(user=user, thread=thread).delete()
        return RouteChoice("auto", None)
    route = Route.objects.filter(slug=slug, enabled=True).first()
    if route is None:
        names = ", ".join(Route.objects.filter(enabled=True).values_list("slug", flat=True))
        raise UnknownRoute(f"There is no route called `{slug}`. Routes: {names}, or `auto`.")
    if scope == "pin":
        pin_route(user=user, route=route)
    else:
        set_next_route(user=user, thread=thread, route=route)
    return RouteChoice(scope, route)
