from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from bots.models import AccessRule, DiscordAccess


@admin.register(AccessRule)
class AccessRuleAdmin(admin.ModelAdmin):
    list_display = ["kind", "action", "discord_id", "note", "created_at"]
    list_filter = ["kind", "action"]
    search_fields = ["discord_id", "note"]


@admin.register(DiscordAccess)
class DiscordAccessAdmin(admin.ModelAdmin):
    list_display = ["direct_messages", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not DiscordAccess.objects.exists()
