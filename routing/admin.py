import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from routing import hosts, training
from routing.models import (
    OllamaHost,
    OllamaModel,
    Route,
    RouteClassifier,
    RouteExample,
    RouterRule,
    RouterSettings,
    RoutingDecision,
    RoutingPreference,
    ServerInstructions,
)
from routing.sync import sync_models


def capability_problems(
    *, model: str, think: str, tools: list[str], vision: bool, capabilities: dict[str, bool] | None
) -> list[str]:
    """Why ``model`` cannot do what a route asks of it; empty when it can, or when no host has synced it."""
    if capabilities is None:
        return []
    problems = []
    if think != Route.Think.OFF and not capabilities["thinking"]:
        problems.append(f"{model} does not support thinking: set Think to Off or pick a thinking model.")
    if tools and not capabilities["tools"]:
        problems.append(f"{model} does not support tools: turn off {' and '.join(tools)} or pick another model.")
    if vision and not capabilities["vision"]:
        problems.append(f"{model} cannot read images, and this route answers messages with images.")
    return problems


class RouteForm(forms.ModelForm):
    class Meta:
        model = Route
        fields = [
            "slug", "name", "description", "examples", "enabled", "model", "fallback_models", "system_prompt",
            "temperature", "context_size", "think", "web_search", "web_fetch", "keep_alive", "keep_warm",
        ]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        model = cleaned.get("model")
        if not model:
            return cleaned
        tools = [name for name in ("web_search", "web_fetch") if cleaned.get(name)]
        problems = capability_problems(
            model=model,
            think=cleaned.get("think") or Route.Think.OFF,
            tools=tools,
            vision=cleaned.get("slug") == "vision",
            capabilities=hosts.model_capabilities(model),
        )
        if problems:
            raise forms.ValidationError(problems)
        return cleaned


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    form = RouteForm
    list_display = ["slug", "name", "model", "think", "web_search", "context_size", "enabled", "updated_at"]
    list_filter = ["enabled", "model", "think"]
    search_fields = ["slug", "name", "model", "description"]
    list_editable = ["enabled"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["slug", "name", "description", "examples", "enabled"]}),
        ("Model", {"fields": ["model", "fallback_models", "system_prompt", "temperature", "context_size"]}),
        ("Thinking and tools", {"fields": ["think", "web_search", "web_fetch"]}),
        ("Loading", {"fields": ["keep_alive", "keep_warm"]}),
    ]

    def save_model(self, request: HttpRequest, obj: Route, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change or {"examples", "enabled"} & set(form.changed_data):
            training.schedule_retrain()  # the route's examples are training examples too
        known = hosts.known_model_names()
        missing = [name for name in obj.models_in_order if hosts.canonical_model_name(name) not in known]
        if missing:
            messages.warning(
                request,
                f"No enabled host has {', '.join(missing)} (as of the last model sync). Requests will fall back "
                "or fail until it is pulled (`ollama pull …`) and the models are synced.",
            )


@admin.action(description="Sync models from the selected hosts")
def sync_selected_hosts(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[OllamaHost]) -> None:
    for report in sync_models(hosts=list(queryset)):
        if report.reachable:
            messages.success(request, f"{report.host}: {len(report.models)} models, {len(report.gone)} gone.")
        else:
            messages.error(
                request,
                f"{report.host}: unreachable ({report.error}); its models are left as they were, marked "
                "'host unreachable'. Check its URL (OLLAMA_HOST in .env for the default host).",
            )


@admin.register(OllamaHost)
class OllamaHostAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "base_url",
        "enabled",
        "vram_budget_gb",
        "num_parallel",
        "reachable",
        "breaker",
        "consecutive_failures",
        "synced_at",
    ]
    list_editable = ["enabled", "vram_budget_gb", "num_parallel"]
    readonly_fields = [
        "consecutive_failures",
        "breaker_opened_at",
        "last_error",
        "synced_at",
        "reachable",
        "vram_seen",
        "vram_too_much",
        "models_too_many",
        "parallel_seen",
    ]
    actions = [sync_selected_hosts]

    @admin.display(description="circuit breaker")
    def breaker(self, host: OllamaHost) -> str:
        return host.breaker_state()


@admin.register(OllamaModel)
class OllamaModelAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "state", "capability_list", "context_length", "size", "synced_at"]
    list_filter = ["available", "host", "tools", "thinking", "vision", "embedding"]
    search_fields = ["name"]

    @admin.display(description="state", ordering="available")
    def state(self, model: OllamaModel) -> str:
        return model.sync_state

    @admin.display(description="capabilities")
    def capability_list(self, model: OllamaModel) -> str:
        return ", ".join(model.capabilities)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from the hosts; the sync fills them

    def has_change_permission(self, request: HttpRequest, obj: OllamaModel | None = None) -> bool:
        return False


class RouterRuleForm(forms.ModelForm):
    class Meta:
        model = RouterRule
        fields = ["route", "kind", "pattern", "priority", "enabled", "note"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("kind") == RouterRule.Kind.REGEX and cleaned.get("pattern"):
            try:
                re.compile(cleaned["pattern"])
            except re.error as exc:
                raise forms.ValidationError({"pattern": f"Not a valid regular expression: {exc}."}) from exc
        return cleaned


@admin.register(RouterRule)
class RouterRuleAdmin(admin.ModelAdmin):
    form = RouterRuleForm
    list_display = ["pattern", "kind", "route", "priority", "enabled", "note"]
    list_editable = ["priority", "enabled"]
    list_filter = ["route", "kind", "enabled"]


class RouterSettingsForm(forms.ModelForm):
    class Meta:
        model = RouterSettings
        fields = [
            "router_model", "router_keep_alive", "classifier_enabled", "history_turns", "embedding_model",
            "calibration_precision", "follow_up_lean", "similarity_threshold", "similarity_margin", "similarity_top_k",
        ]  # fmt: skip

    def clean_embedding_model(self) -> str:
        name: str = self.cleaned_data["embedding_model"]
        capabilities = hosts.model_capabilities(name) if name else None
        if capabilities is not None and not capabilities["embedding"]:
            raise forms.ValidationError(f"{name} is not an embedding model.")
        return name


@admin.register(RouterSettings)
class RouterSettingsAdmin(admin.ModelAdmin):
    form = RouterSettingsForm

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RouterSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: RouterSettings | None = None) -> bool:
        return False


@admin.register(RoutingPreference)
class RoutingPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "pinned_route", "thinking", "updated_at"]
    list_filter = ["thinking", "pinned_route"]
    raw_id_fields = ["user"]


@admin.register(ServerInstructions)
class ServerInstructionsAdmin(admin.ModelAdmin):
    list_display = ["guild_id", "channel_id", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["guild_id", "channel_id", "instructions"]


class RetrainsAfterEdits(admin.ModelAdmin):
    """Every change to the training examples rebuilds the fast path's classifier in a worker."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        training.schedule_retrain()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        training.schedule_retrain()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().delete_queryset(request, queryset)
        training.schedule_retrain()


@admin.register(RouteExample)
class RouteExampleAdmin(RetrainsAfterEdits):
    list_display = ["text", "route", "source", "licence", "enabled", "created_at"]
    list_editable = ["route", "enabled"]
    list_filter = ["route", "source", "enabled"]
    search_fields = ["text"]


@admin.register(RouteClassifier)
class RouteClassifierAdmin(admin.ModelAdmin):
    """Read-only: ``manage.py retrainrouter`` (or an edit of the examples) writes it."""

    list_display = ["embedding_model", "examples", "trained_at"]
    readonly_fields = ["embedding_model", "labels", "thresholds", "report", "examples", "examples_digest", "trained_at"]
    exclude = ["weights", "bias"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RouteClassifier | None = None) -> bool:
        return False


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(admin.ModelAdmin):
    list_display = ["request", "route", "method", "confidence", "previous_route", "ms", "created_at"]
    list_filter = ["method", "route"]
    raw_id_fields = ["request"]
    search_fields = ["request__message__content"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RoutingDecision | None = None) -> bool:
        return False
