from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from artifacts import services
from artifacts.models import Artifact


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("live", "Live"), ("expired", "Expired, not yet deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Artifact]) -> QuerySet[Artifact]:
        if self.value() == "live":
            return queryset.filter(expires_at__gt=timezone.now())
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=timezone.now())
        return queryset


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    """Artifacts are made by the worker only: the admin lists, downloads and deletes them."""

    list_display = [
        "filename",
        "owner",
        "thread",
        "request_link",
        "human_size",
        "content_type",
        "download_count",
        "created_at",
        "expires_at",
        "download",
    ]
    list_filter = [ExpiryFilter, "content_type", "owner__platform", "created_at"]
    search_fields = ["filename", "owner__username", "owner__display_name", "thread__title", "sha256"]
    list_select_related = ["owner", "thread"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "owner",
        "thread",
        "request",
        "filename",
        "content_type",
        "size",
        "file",
        "sha256",
        "created_at",
        "expires_at",
        "download_count",
        "download",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Request", ordering="request")
    def request_link(self, obj: Artifact) -> str:
        url = reverse("admin:conversations_request_change", args=[obj.request_id])
        return format_html('<a href="{}">{}</a>', url, obj.request_id)

    @admin.display(description="Size", ordering="size")
    def human_size(self, obj: Artifact) -> str:
        return filesizeformat(obj.size)

    @admin.display(description="Download")
    def download(self, obj: Artifact) -> str:
        if obj.is_expired:
            return "expired"
        return format_html('<a href="{}">Download</a>', reverse("artifacts:download", args=[obj.pk]))

    def delete_model(self, request: HttpRequest, obj: Artifact) -> None:
        services.delete_artifact(artifact=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Artifact]) -> None:
        # The bulk delete would leave the files behind.
        for artifact in queryset:
            services.delete_artifact(artifact=artifact)
