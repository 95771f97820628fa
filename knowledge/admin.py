from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from knowledge.models import Ask, ForgottenUser, IndexedChannel, IndexedMessage


@admin.register(IndexedChannel)
class IndexedChannelAdmin(admin.ModelAdmin):
    """Opt channels in (add a row) or remove them with every message indexed from them (delete the row)."""

    list_display = (
        "__str__",
        "guild_id",
        "channel_id",
        "message_count",
        "backlog",
        "backfill_done",
        "last_indexed_at",
        "last_error",
    )
    list_filter = ("backfill_done",)
    search_fields = ("name", "channel_id", "guild_id")
    readonly_fields = ("backfill_before", "backfilled", "last_indexed_at", "last_error", "last_error_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[IndexedChannel]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _messages=Count("messages", filter=Q(messages__deleted=False)),
                _backlog=Count("messages", filter=Q(messages__deleted=False, messages__needs_embedding=True)),
            )
        )

    @admin.display(description="messages", ordering="_messages")
    def message_count(self, obj: IndexedChannel) -> int:
        return obj._messages  # type: ignore[attr-defined]  # annotated in get_queryset

    @admin.display(description="waiting to be embedded", ordering="_backlog")
    def backlog(self, obj: IndexedChannel) -> int:
        return obj._backlog  # type: ignore[attr-defined]  # annotated in get_queryset


@admin.register(IndexedMessage)
class IndexedMessageAdmin(admin.ModelAdmin):
    list_display = ("message_id", "channel", "author_name", "created_at", "needs_embedding", "deleted")
    list_filter = ("needs_embedding", "deleted")
    search_fields = ("text", "author_name", "message_id")
    exclude = ("embedding",)
    readonly_fields = (
        "message_id",
        "channel",
        "posted_in",
        "guild_id",
        "author_id",
        "author_name",
        "created_at",
        "edited_at",
        "text",
        "embedding_model",
        "needs_embedding",
        "deleted",
        "changed_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # messages come from Discord only


@admin.register(ForgottenUser)
class ForgottenUserAdmin(admin.ModelAdmin):
    list_display = ("user_id", "created_at")
    search_fields = ("user_id",)


@admin.register(Ask)
class AskAdmin(admin.ModelAdmin):
    list_display = ("request", "guild_id")
    readonly_fields = ("request", "guild_id", "sources")
