"""Which Ollama host serves a model, and the per-host circuit breaker.

The breaker state is on ``OllamaHost`` rows so every worker shares it. Each
transition is one conditional UPDATE, so concurrent workers agree without
locks: only one of them wins the half-open probe of a cooled-down host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from routing.models import OllamaHost, OllamaModel, Route

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostChoice:
    host_id: int
    url: str


def canonical_model_name(name: str) -> str:
    """``"all-minilm"`` -> ``"all-minilm:latest"``: Ollama's tags list names with their tag."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def default_host() -> OllamaHost:
    """The host seeded for OLLAMA_HOST; recreated if an operator deleted every host."""
    host = OllamaHost.objects.order_by("pk").first()
    return host or OllamaHost.objects.create(name="default")


def _try_probe(host: OllamaHost) -> bool:
    """Claim the half-open probe: re-arm the cool-down for everyone else, and go."""
    now = timezone.now()
    expired = now - timedelta(seconds=settings.OLLAMA_BREAKER_COOLDOWN)
    return bool(OllamaHost.objects.filter(pk=host.pk, breaker_opened_at__lte=expired).update(breaker_opened_at=now))


def choose_host(
    model: str, *, exclude: set[int] | frozenset[int] = frozenset(), prefer: int | None = None
) -> HostChoice | None:
    """An enabled host whose breaker lets requests through, preferring hosts that have ``model``.

    Hosts the last sync saw with the model come first, and of those ``prefer``
    (the host the scheduler judged the request against, when it named one),
    then the ones that hold it loaded (as the scheduler last read ``/api/ps``). When none has it (never
    synced, or the sync is stale), any usable host is tried: Ollama's own 404
    then says the model is missing, which moves the request to a fallback.
    None means every enabled host is skipped by its breaker (or disabled).
    """
    hosts = list(OllamaHost.objects.filter(enabled=True).exclude(pk__in=exclude).order_by("pk"))
    if not hosts and not OllamaHost.objects.exists():
        hosts = [default_host()]
    having = set(
        OllamaModel.objects.filter(host__in=hosts, name=canonical_model_name(model), available=True).values_list(
            "host_id", flat=True
        )
    )
    return choose_among(hosts, having, model, prefer=prefer)


def choose_among(
    hosts: list[OllamaHost], having: set[int], model: str, *, prefer: int | None = None
) -> HostChoice | None:
    """``choose_host`` on hosts already read: ``having`` are the ids of those that have ``model``.

    The router calls this with the hosts it caches per process; a half-open
    probe is still claimed with one conditional UPDATE, so workers agree.
    """
    loaded = _hosts_holding(canonical_model_name(model), hosts)
    # The scheduler's host goes before one that merely holds the model: it chose it knowing each host's
    # memory and free slots (a second host with room, rather than the first host's busy slots).
    hosts = sorted(
        hosts,
        key=lambda host: (
            host.pk not in having,
            host.pk != prefer,
            host.pk not in loaded,
            host.consecutive_failures,
            host.pk,
        ),
    )
    now = timezone.now()
    for host in hosts:
        state = host.breaker_state(now)
        if state == "closed" or (state == "half-open" and _try_probe(host)):
            return HostChoice(host.pk, host.base_url)
    return None


def _hosts_holding(model: str, hosts: list[OllamaHost]) -> set[int]:
    """The hosts whose last ``/api/ps`` (as the scheduler read it, never read again here) showed ``model`` loaded.

    Of several hosts that have a model, the one that holds it saves a load; the
    scheduler ranked the request on that assumption.
    """
    if settings.REQUEST_SCHEDULER != "gpu" or len(hosts) < 2:
        return set()
    from routing import gpu  # gpu builds on this module's names

    return {host.pk for host in hosts if model in gpu.cached_loaded(host.base_url)}


def record_success(host_id: int) -> None:
    OllamaHost.objects.filter(pk=host_id).filter(
        Q(consecutive_failures__gt=0) | Q(breaker_opened_at__isnull=False)
    ).update(consecutive_failures=0, breaker_opened_at=None, last_error="", last_failed_request_id=None)


def record_failure(host_id: int, error: str, *, request_id: int | None = None) -> bool:
    """Count a failure that says the host is unwell; True when this opened the breaker.

    A failure counts only when it comes from a different request than the
    failure before it: one request whose prompt makes the host fail on every
    retry must not take the host away from everyone else. It takes failures
    of ``OLLAMA_BREAKER_FAILURES`` requests in a row to open the breaker.
    """
    OllamaHost.objects.filter(pk=host_id).update(last_error=error[:300])
    hosts = OllamaHost.objects.filter(pk=host_id)
    if request_id is not None:
        # exclude() also matches a NULL last_failed_request_id.
        hosts = hosts.exclude(last_failed_request_id=request_id)
    hosts.update(consecutive_failures=F("consecutive_failures") + 1, last_failed_request_id=request_id)
    opened = OllamaHost.objects.filter(
        pk=host_id, consecutive_failures__gte=settings.OLLAMA_BREAKER_FAILURES, breaker_opened_at__isnull=True
    ).update(breaker_opened_at=timezone.now())
    if opened:
        logger.warning("Circuit breaker opened for Ollama host %s: %s", host_id, error)
    else:
        # A failed half-open probe: keep the breaker open for another cool-down.
        OllamaHost.objects.filter(pk=host_id, breaker_opened_at__isnull=False).update(breaker_opened_at=timezone.now())
    return bool(opened)


def model_capabilities(model: str) -> dict[str, bool] | None:
    """What the synced table knows about ``model`` across enabled hosts; None when no host lists it."""
    rows = list(
        OllamaModel.objects.filter(name=canonical_model_name(model), host__enabled=True, available=True).values(
            *OllamaModel.CAPABILITIES
        )
    )
    if not rows:
        return None
    return {capability: any(row[capability] for row in rows) for capability in OllamaModel.CAPABILITIES}


def known_model_names() -> set[str]:
    return set(OllamaModel.objects.filter(available=True, host__enabled=True).values_list("name", flat=True))


def context_for_model(model: str) -> int | None:
    """The ``num_ctx`` the enabled routes run ``model`` with (a keep-warm route's first, else the largest).

    Ollama reloads a loaded model asked for with another ``num_ctx``, so every
    call that is not a route's own answer (the warm-up, the classifier) asks
    with this one to find the model as the answers will want it. None when no
    enabled route uses ``model``.
    """
    name = canonical_model_name(model)
    rows = [
        (keep_warm, size)
        for route_model, keep_warm, size in Route.objects.filter(enabled=True).values_list(
            "model", "keep_warm", "context_size"
        )
        if canonical_model_name(route_model) == name
    ]
    return max(rows)[1] if rows else None
