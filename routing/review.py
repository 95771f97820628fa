"""Operators reviewing the router's decisions: what to look at, and a relabel that teaches the fast path.

The console's Routing page lists recent decisions in three views:

- ``unsure``: the fast path could not decide, so the router model (or the
  default route) did. These are the messages new examples help most.
- ``overrides``: a user chose the route (``/route``, a pin), which says
  where they thought the message belonged.
- ``corrected``: decisions an operator has already relabelled.

Relabelling a decision stores the message as a training example of the
route the operator picked (``RouteExample``, source ``console``) and
retrains the classifier in a worker once the edit is committed, exactly as an
edit of the examples in the admin does; the router reloads the new weights on
its next message, without a restart.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from routing import training
from routing.models import Route, RouteExample, RoutingDecision

RELABEL_SOURCE = "console"

# What each view shows, in the order the page offers them.
VIEWS: dict[str, str] = {
    "unsure": "Fast path unsure",
    "overrides": "Chosen by users",
    "corrected": "Relabelled",
    "all": "All",
}
DEFAULT_VIEW = "unsure"
_UNSURE_METHODS = ("classifier", "default")
_OVERRIDE_METHODS = ("override", "pinned")


class RelabelRefused(ValueError):
    """The decision cannot become a training example; the message says why."""


def decisions_to_review(view: str) -> QuerySet[RoutingDecision]:
    """Newest first, with the message each decision was about. An unknown view shows the default one."""
    decisions = RoutingDecision.objects.select_related("request__message", "request__user")
    match view if view in VIEWS else DEFAULT_VIEW:
        case "unsure":
            return decisions.filter(method__in=_UNSURE_METHODS, corrected_route="")
        case "overrides":
            return decisions.filter(method__in=_OVERRIDE_METHODS)
        case "corrected":
            return decisions.exclude(corrected_route="")
        case _:
            return decisions


def relabel_targets() -> list[str]:
    """The routes a message can be relabelled to: every enabled one but vision."""
    return list(
        Route.objects.filter(enabled=True)
        .exclude(slug=training.VISION_ROUTE)
        .order_by("slug")
        .values_list("slug", flat=True)
    )


def relabel(decision: RoutingDecision, route: Route, *, operator: str) -> RouteExample:
    """Make the decision's message a training example of ``route`` and schedule a retrain.

    The same text stored as an example of another route is disabled (not
    deleted, so the admin still shows it): the operator has just said that
    label was wrong, and two labels for one text would only teach the
    classifier to doubt both. A route's own example messages (its
    ``examples`` field) are left alone; edit them in the admin.
    """
    if not route.enabled:
        raise RelabelRefused(f"The route {route.slug} is disabled; enable it in the admin first.")
    if route.slug == training.VISION_ROUTE:
        raise RelabelRefused("The vision route is chosen by attached images, not learned from text.")
    text = decision.request.message.content.strip()
    if not text:
        raise RelabelRefused("This message has no text to learn from (it held only files).")
    with transaction.atomic():
        RouteExample.objects.filter(text=text, enabled=True).exclude(route=route).update(enabled=False)
        example, _ = RouteExample.objects.update_or_create(
            route=route, text=text, defaults={"enabled": True, "source": RELABEL_SOURCE}
        )
        decision.corrected_route = route.slug
        decision.corrected_by = operator[:150]
        decision.corrected_at = timezone.now()
        decision.save(update_fields=["corrected_route", "corrected_by", "corrected_at"])
        training.schedule_retrain()
    return example
