from __future__ import annotations

from django.conf import settings

from routing.models import Route


class NoRouteAvailable(Exception):
    """No enabled route exists, so nothing can be answered."""


def enabled_routes() -> list[Route]:
    return list(Route.objects.filter(enabled=True))


def find_route(slug: str) -> Route | None:
    return Route.objects.filter(slug=slug, enabled=True).first()


def default_route() -> Route:
    """The route for a message nothing else claims: DEFAULT_ROUTE, else the first enabled one."""
    route = find_route(settings.DEFAULT_ROUTE) or Route.objects.filter(enabled=True).first()
    if route is None:
        raise NoRouteAvailable("No route is enabled. An operator can enable one in the admin under Routing → Routes.")
    return route
