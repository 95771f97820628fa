"""The console's pages. Staff only; each view adapts the request to a selector or service.

Everything is rendered here, on the server. The browser builds only what
streams (rows of the live table, the text of an answer) from websocket
events; other live parts (a request's facts, the health panel) are
fragments of these templates that the page fetches again when they change.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from console import selectors
from console.forms import MaintenanceForm
from conversations.models import Platform, Request, Thread
from conversations.notices import count_messages
from conversations.phases import PHASE_LABELS
from conversations.selectors import RequestFilters, recent_requests_snapshot
from knowledge import selectors as knowledge_selectors
from knowledge import services as knowledge_services
from knowledge.models import IndexedChannel
from ops.health import health_report
from ops.maintenance import set_maintenance
from pipeline.queue import scheduler_overview
from pipeline.services import cancel_request, close_thread, reset_thread
from routing import review
from routing.models import Route, RoutingDecision
from trollama.maintenance import current_maintenance

View = Callable[..., HttpResponse]
THREADS_PER_PAGE = 25
ARTIFACTS_PER_PAGE = 50
DECISIONS_PER_PAGE = 50
HEALTH_REFRESH_SECONDS = 5


def staff_required(view: View) -> View:
    """Anonymous visitors go to the login page; signed-in people who are not staff get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("console:login"))
        if not (user.is_active and user.is_staff):
            return render(request, "console/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@staff_required
def requests_list(request: HttpRequest) -> HttpResponse:
    filters = RequestFilters.from_query(request.GET)
    return render(
        request,
        "console/requests.html",
        {
            "section": "requests",
            "filters": filters,
            "statuses": [(RequestFilters.ACTIVE, "In flight"), *Request.Status.choices],
            "routes": selectors.route_choices(),
            "snapshot": recent_requests_snapshot(filters=filters),
        },
    )


@require_GET
@staff_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    context = {**_request_context(request_id), "phase_labels": PHASE_LABELS}
    return render(request, "console/request_detail.html", context)


@require_GET
@never_cache
@staff_required
def request_facts(request: HttpRequest, request_id: int) -> HttpResponse:
    """The server-rendered part of the detail page, which the page refetches when the request changes."""
    return render(request, "console/_request_facts.html", _request_context(request_id))


def _request_context(request_id: int) -> dict[str, Any]:
    item = selectors.request_for_detail(request_id)
    if item is None:
        raise Http404("No such request.")
    return {"section": "requests", "item": item, "timeline": selectors.timeline(item)}


@require_POST
@staff_required
def request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    cancel_request(request=get_object_or_404(Request, pk=request_id))
    return redirect("console:request", request_id=request_id)


@require_GET
@staff_required
def health(request: HttpRequest) -> HttpResponse:
    return _render_health(request, MaintenanceForm(initial=_maintenance_initial()))


def _maintenance_initial() -> dict[str, str]:
    maintenance = current_maintenance()
    return {"mode": maintenance.mode, "message": maintenance.message}


def _render_health(request: HttpRequest, form: MaintenanceForm, *, status: int = 200) -> HttpResponse:
    context = {
        "section": "health",
        "report": async_to_sync(health_report)(),
        "scheduler": scheduler_overview(),
        "refresh_seconds": HEALTH_REFRESH_SECONDS,
        "maintenance": current_maintenance(),
        "maintenance_form": form,
    }
    return render(request, "console/health.html", context, status=status)


@require_POST
@staff_required
def maintenance(request: HttpRequest) -> HttpResponse:
    """Switch maintenance mode; every process obeys from its next intake (see ``ops.maintenance``)."""
    form = MaintenanceForm(request.POST)
    if not form.is_valid():
        return _render_health(request, form, status=400)
    set_maintenance(
        mode=form.cleaned_data["mode"], message=form.cleaned_data["message"], changed_by=request.user.get_username()
    )
    return redirect("console:health")


@require_GET
@never_cache
@staff_required
def health_panel(request: HttpRequest) -> HttpResponse:
    context = {"report": async_to_sync(health_report)(), "scheduler": scheduler_overview()}
    return render(request, "console/_health_panel.html", context)


@require_GET
@staff_required
def usage(request: HttpRequest) -> HttpResponse:
    days = selectors.USAGE_DAYS
    context = {
        "section": "usage",
        "days": days,
        "token_charts": [
            selectors.tokens_per_day_chart(by="route", title=f"Tokens per day by route, last {days} days"),
            selectors.tokens_per_day_chart(by="model", title=f"Tokens per day by model, last {days} days"),
            selectors.tokens_per_day_chart(by="user", title=f"Tokens per day by user, last {days} days"),
        ],
        "hourly": selectors.requests_per_hour_chart(),
        "top_users": selectors.top_users(),
        "latencies": selectors.latencies(),
    }
    return render(request, "console/usage.html", context)


@require_GET
@staff_required
def conversations(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    page = Paginator(selectors.search_threads(query), THREADS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "console/conversations.html", {"section": "conversations", "query": query, "page": page})


@require_GET
@staff_required
def conversation(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = get_object_or_404(Thread.objects.select_related("owner"), pk=thread_id)
    return render(
        request,
        "console/conversation.html",
        {"section": "conversations", "thread": thread, "thread_messages": selectors.thread_messages(thread)},
    )


def _operator(request: HttpRequest) -> str:
    """Who did it, as the audit logs name a console user."""
    return f"console:{request.user.get_username()}"


def _told_in_discord(thread: Thread) -> str:
    return " The bot posts a notice about it in the Discord channel." if thread.platform == Platform.DISCORD else ""


def _after_close(thread: Thread) -> str:
    if thread.platform == Platform.DISCORD:
        return (
            "A new message in its channel starts a new conversation. The bot posts a notice about it in the Discord "
            "channel, and archives and locks the channel if it is a thread."
        )
    return "`manage.py chat` without --thread starts a new conversation."


@require_POST
@staff_required
def conversation_reset(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = get_object_or_404(Thread, pk=thread_id)
    forgotten = reset_thread(thread=thread, by=_operator(request), notify=True)
    messages.success(
        request,
        f"Forgot {count_messages(forgotten)} of “{thread}” and cancelled anything still running in it. "
        f"The thread stays; its next message starts afresh.{_told_in_discord(thread)}",
    )
    return redirect("console:conversation", thread_id=thread.pk)


@require_POST
@staff_required
def conversation_close(request: HttpRequest, thread_id: int) -> HttpResponse:
    thread = get_object_or_404(Thread, pk=thread_id)
    deleted = close_thread(thread=thread, by=_operator(request), notify=True)
    messages.success(
        request,
        f"Closed “{thread}”: deleted it with its {count_messages(deleted)} and cancelled anything still running "
        f"in it. {_after_close(thread)}",
    )
    return redirect("console:conversations")


@require_GET
@staff_required
def artifacts(request: HttpRequest) -> HttpResponse:
    filters = selectors.ArtifactFilters.from_query(request.GET)
    page = Paginator(selectors.search_artifacts(filters), ARTIFACTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "section": "artifacts",
        "filters": filters,
        "states": selectors.ArtifactFilters.STATES,
        "content_types": selectors.artifact_content_types(),
        "page": page,
        "ttl_hours": settings.ARTIFACT_TTL_HOURS,
    }
    return render(request, "console/artifacts.html", context)


@require_GET
@staff_required
def routing_review(request: HttpRequest) -> HttpResponse:
    view = request.GET.get("show", review.DEFAULT_VIEW)
    view = view if view in review.VIEWS else review.DEFAULT_VIEW
    page = Paginator(review.decisions_to_review(view), DECISIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "section": "routing",
        "view": view,
        "views": review.VIEWS,
        "page": page,
        "routes": review.relabel_targets(),
    }
    return render(request, "console/routing.html", context)


@require_GET
@staff_required
def knowledge(request: HttpRequest) -> HttpResponse:
    context = {
        "section": "knowledge",
        "channels": knowledge_selectors.channel_stats(),
        "embedding": knowledge_selectors.embedding_state(),
        "model": knowledge_services.embedding_model(),
        "retention_days": settings.KNOWLEDGE_RETENTION_DAYS,
    }
    return render(request, "console/knowledge.html", context)


@require_POST
@staff_required
def routing_relabel(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = get_object_or_404(RoutingDecision.objects.select_related("request__message"), pk=decision_id)
    route = Route.objects.filter(slug=request.POST.get("route", "")).first()
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("console:routing")
    if route is None:
        messages.error(request, "Pick one of the listed routes to relabel the message.")
        return redirect(back)
    try:
        review.relabel(decision, route, operator=_operator(request))
    except review.RelabelRefused as refused:
        messages.error(request, str(refused))
        return redirect(back)
    messages.success(
        request,
        f"Saved as a training example of {route.slug}. The fast path retrains in a worker and uses it from its next "
        "message on.",
    )
    return redirect(back)


@require_POST
@staff_required
def knowledge_remove(request: HttpRequest, channel_pk: int) -> HttpResponse:
    channel = get_object_or_404(IndexedChannel, pk=channel_pk)
    knowledge_services.set_indexing(
        guild_id=channel.guild_id, channel_id=channel.channel_id, name=channel.name, on=False, by=str(request.user)
    )
    messages.success(request, f"{channel} is no longer indexed; its entries are deleted.")
    return redirect("console:knowledge")
