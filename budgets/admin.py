"""Admin pages for tiers, role tiers, grants and usage, and the budget parts of the chat-user admin.

``ChatUserBudgetMixin`` is mixed into ``pipeline.admin.ChatUserAdmin``:
every figure it shows comes from ``budgets.selectors.annotate_budget``, so
the whole user list costs one query however many users it shows.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from budgets import selectors, services
from budgets.models import ALLOWANCE_SETTINGS, Grant, RoleTier, Tier, UsageEntry
from conversations.models import ChatUser


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "allowance_display", "is_default", "rate_limit_exempt"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(description="Weekly allowance")
    def allowance_display(self, tier: Tier) -> str:
        if tier.weekly_allowance is None and tier.slug in ALLOWANCE_SETTINGS:
            return f"{tier.allowance:,} (from {ALLOWANCE_SETTINGS[tier.slug]})"
        return f"{tier.allowance:,}"


@admin.register(RoleTier)
class RoleTierAdmin(admin.ModelAdmin):
    list_display = ["role_id", "note", "tier"]
    list_filter = ["tier"]
    search_fields = ["role_id", "note"]


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = ["user", "amount", "reason", "granted_by", "created_at", "expires_at", "active"]
    list_filter = ["created_at", "expires_at"]
    search_fields = ["user__username", "user__external_id", "reason"]
    raw_id_fields = ["user"]
    readonly_fields = ["granted_by", "created_at"]
    list_select_related = ["user", "granted_by"]

    @admin.display(boolean=True)
    def active(self, grant: Grant) -> bool:
        return grant.is_active()

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        if not change:
            obj.granted_by = request.user  # type: ignore[assignment]  # the admin requires a signed-in user
        super().save_model(request, obj, form, change)


@admin.register(UsageEntry)
class UsageEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "route", "model", "prompt_tokens", "completion_tokens", "estimated"]
    list_filter = ["kind", "estimated", "model", "route"]
    search_fields = ["user__username", "user__external_id", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "route"]
    raw_id_fields = ["user", "request", "route"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # usage is recorded by the workers, never typed in

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class GrantInline(admin.TabularInline):
    """Grant history on the user's page; new grants come from the "Grant tokens" action."""

    model = Grant
    fields = ["created_at", "amount", "reason", "granted_by", "expires_at"]
    readonly_fields = ["created_at", "amount", "reason", "granted_by", "expires_at"]
    extra = 0
    can_delete = False
    verbose_name_plural = "token grants"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class EffectiveTierFilter(admin.SimpleListFilter):
    title = "tier"
    parameter_name = "tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(tier.pk), tier.name) for tier in Tier.objects.all()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(effective_tier=self.value()) if self.value() else queryset


class BudgetFilter(admin.SimpleListFilter):
    title = "budget this week"
    parameter_name = "budget"
    CHOICES = {
        "spent": ("Spent", Q(remaining__lte=0)),
        "low": ("Under 10% left", Q(remaining__gt=0, remaining__lt=(F("allowance") + F("granted")) / 10)),
        "unused": ("Nothing used", Q(used_this_week=0)),
        "granted": ("Has an active grant", Q(granted__gt=0)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.CHOICES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        choice = self.CHOICES.get(self.value() or "")
        return queryset.filter(choice[1]) if choice else queryset


class GrantForm(forms.Form):
    amount = forms.IntegerField(min_value=1, help_text="Tokens added to each selected user's weekly allowance.")
    reason = forms.CharField(max_length=200, help_text="Kept in the user's grant history.")
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Empty: the grant never expires and adds to every week. Prefilled with the next reset.",
    )

    def clean_expires_at(self) -> Any:
        expires = self.cleaned_data["expires_at"]
        if expires is not None and expires <= timezone.now():
            raise forms.ValidationError("The expiry is in the past; the grant would never count.")
        return expires


@admin.action(description="Grant tokens", permissions=["change"])
def grant_tokens_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ChatUser]) -> Any:
    """Ask for amount, reason and expiry on an intermediate page, then grant to every selected user."""
    users = list(queryset.order_by("username"))
    if "apply" in request.POST:
        form = GrantForm(request.POST)
        if form.is_valid():
            for user in users:
                services.grant_tokens(user=user, granted_by=request.user, **form.cleaned_data)  # type: ignore[arg-type]  # admin users are User
            amount = form.cleaned_data["amount"]
            modeladmin.message_user(request, f"Granted {amount:,} tokens to {len(users)} user(s).", messages.SUCCESS)
            return None
    else:
        form = GrantForm(initial={"expires_at": timezone.localtime(selectors.next_week_start())})
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Grant tokens",
        "opts": modeladmin.model._meta,
        "users": users,
        "form": form,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/budgets/grant_tokens.html", context)


class ChatUserBudgetMixin:
    """Budget columns, filters, the grant action and grant history for the chat-user admin."""

    budget_columns = ["tier_column", "used_column", "remaining_column"]
    budget_filters: list[Any] = [EffectiveTierFilter, BudgetFilter, "banned"]
    budget_actions = [grant_tokens_action]
    budget_inlines = [GrantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatUser]:
        return selectors.annotate_budget(super().get_queryset(request))  # type: ignore[misc]  # mixed into a ModelAdmin

    @admin.display(description="Tier", ordering="tier_name")
    def tier_column(self, user: ChatUser) -> str:
        return user.tier_name or "—"  # type: ignore[attr-defined]  # annotated

    @admin.display(description="Used this week", ordering="used_this_week")
    def used_column(self, user: ChatUser) -> str:
        return f"{user.used_this_week:,}"  # type: ignore[attr-defined]

    @admin.display(description="Remaining", ordering="remaining")
    def remaining_column(self, user: ChatUser) -> str:
        limit = user.allowance + user.granted  # type: ignore[attr-defined]
        return f"{max(user.remaining, 0):,} of {limit:,}"  # type: ignore[attr-defined]
