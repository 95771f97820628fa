from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from budgets.admin import ChatUserBudgetMixin
from conversations.models import ChatUser, Message, Request, Thread, TokenCalibration
from pipeline import services


@admin.register(ChatUser)
class ChatUserAdmin(ChatUserBudgetMixin, admin.ModelAdmin):
    list_display = [
        "username",
        "display_name",
        "platform",
        "external_id",
        *ChatUserBudgetMixin.budget_columns,
        "last_seen_at",
        "created_at",
    ]
    list_filter = ["platform", *ChatUserBudgetMixin.budget_filters]
    search_fields = ["username", "display_name", "external_id"]
    readonly_fields = ["created_at", "last_seen_at"]
    actions = [*ChatUserBudgetMixin.budget_actions]
    inlines = [*ChatUserBudgetMixin.budget_inlines]


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("created_at", "role", "author", "content", "model", "token_count")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "platform", "external_id", "owner", "updated_at", "created_at"]
    list_filter = ["platform"]
    search_fields = ["title", "external_id", "owner__username"]
    # summary_until and branched_from as raw ids: a select would list every message there is.
    raw_id_fields = ["owner", "summary_until", "branched_from"]
    readonly_fields = ["summary_token_count", "summarized_at"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["pk", "thread", "role", "author", "short_content", "model", "token_count", "created_at"]
    list_filter = ["role", "model"]
    search_fields = ["content", "thread__title", "author__username"]
    raw_id_fields = ["thread", "author", "route"]
    date_hierarchy = "created_at"

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]


@admin.register(Request)
class RequestAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "user",
        "thread",
        "status",
        "phase",
        "route",
        "model",
        "queued_at",
        "prompt_tokens",
        "completion_tokens",
        "attempts",
    ]
    list_filter = ["status", "route", "model", "cancel_requested"]
    search_fields = ["user__username", "user__display_name", "thread__title", "message__content", "error"]
    raw_id_fields = ["user", "thread", "message", "reply", "route"]
    date_hierarchy = "queued_at"
    readonly_fields = [
        "queued_at",
        "started_at",
        "first_token_at",
        "finished_at",
        "lease_expires_at",
        "attempts",
        "prompt_tokens",
        "completion_tokens",
        "notices",
        "prompt_estimate",
        "budget_cap",
        "budget_warning",
    ]
    actions = ["cancel_selected"]

    @admin.action(description="Cancel selected requests")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Request]) -> None:
        cancelled = 0
        for chat_request in queryset.exclude(status__in=Request.FINISHED):
            services.cancel_request(request=chat_request)
            cancelled += 1
        self.message_user(request, f"Asked {cancelled} request(s) to stop.", messages.SUCCESS)


@admin.register(TokenCalibration)
class TokenCalibrationAdmin(admin.ModelAdmin):
    """Learned per model from Ollama's counts; delete a row to start that model over at 1.0."""

    list_display = ["model", "ratio", "samples", "updated_at"]
    search_fields = ["model"]
    readonly_fields = ["model", "samples", "updated_at"]
