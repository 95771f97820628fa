from django.contrib import admin

from routing.models import Route


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "model", "context_size", "temperature", "enabled", "updated_at"]
    list_filter = ["enabled", "model"]
    search_fields = ["slug", "name", "model", "description"]
    list_editable = ["enabled"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["slug", "name", "description", "enabled"]}),
        ("Model", {"fields": ["model", "system_prompt", "temperature", "context_size", "keep_alive"]}),
    ]
