from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from ops.health import cached_health_report, public_health
from ops.metrics import CONTENT_TYPE, render_metrics
from trollama import events
from trollama.auth import bearer_token, is_internal_token, is_metrics_token


@require_GET
async def health(request: HttpRequest) -> JsonResponse:
    """The status and maintenance mode for anyone; every check's details for staff and the metrics token.

    503 only when unhealthy, so a load balancer keeps sending traffic to a degraded web.
    """
    report = await cached_health_report()
    status = 503 if report["status"] == "unhealthy" else 200
    if is_metrics_token(bearer_token(request.headers.get("Authorization"))) or (await request.auser()).is_staff:
        response = JsonResponse(report, status=status)
    else:
        response = JsonResponse(public_health(report), status=status)
    # Django logs every 5xx as an ERROR ("Service Unavailable: /health"), at each probe of a load balancer;
    # ops.health logs a host's failure once instead. This is the flag Django itself sets to log once.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@csrf_exempt  # authenticated by the internal token, never by a browser session
@require_POST
async def relay_event(request: HttpRequest) -> HttpResponse:
    """Receive an event from a worker and send it on this process's channel layer.

    Only meaningful on the embedded default, where web holds the in-memory
    layer that every listener is attached to.
    """
    if not is_internal_token(bearer_token(request.headers.get("Authorization"))):
        return JsonResponse({"error": "a valid internal token is required"}, status=403)
    try:
        body = json.loads(request.body)
        event, groups = body["event"], body["groups"]
    except RecursionError:  # the C decoder's answer to deeply nested arrays or objects
        return JsonResponse({"error": "the JSON is nested too deeply"}, status=400)
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "expected JSON with 'event' and 'groups'"}, status=400)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return JsonResponse({"error": "'event' must be an object with a 'type'"}, status=400)
    if not events.nests_within(event):
        return JsonResponse({"error": f"'event' nests deeper than {events.MAX_EVENT_DEPTH} levels"}, status=400)
    if (
        not isinstance(groups, list)
        or not groups
        or not all(isinstance(g, str) and events.is_valid_group(g) for g in groups)
    ):
        return JsonResponse({"error": "'groups' must list known groups"}, status=400)
    await events.group_send(event, groups)
    return HttpResponse(status=204)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for ``Authorization: Bearer <METRICS_TOKEN>`` or a staff session."""
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None:
        if not is_metrics_token(token):
            return JsonResponse({"error": "the metrics token is wrong"}, status=403)
    elif not request.user.is_authenticated:
        response = JsonResponse(
            {"error": "send Authorization: Bearer <METRICS_TOKEN>, or sign in as staff"}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    elif not request.user.is_staff:
        return JsonResponse({"error": "metrics are for staff only"}, status=403)
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)
