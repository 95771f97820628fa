from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from ops.maintenance import set_maintenance
from trollama.maintenance import current_maintenance
from trollama.models import Maintenance


@admin.register(Maintenance)
class MaintenanceAdmin(admin.ModelAdmin):
    """One row, edited in place: the list goes straight to its change form.

    Saving goes through ``set_maintenance``, so held requests are released and
    listeners are told, exactly as with ``manage.py maintenance``.
    """

    fields = ["mode", "message", "changed_by", "changed_at"]
    readonly_fields = ["changed_by", "changed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        maintenance = current_maintenance()
        if maintenance._state.adding:
            maintenance.save()
        return HttpResponseRedirect(reverse("admin:trollama_maintenance_change", args=[maintenance.pk]))

    def save_model(self, request: HttpRequest, obj: Maintenance, form: Any, change: bool) -> None:
        saved = set_maintenance(mode=obj.mode, message=obj.message, changed_by=request.user.get_username())
        obj.changed_by, obj.changed_at = saved.changed_by, saved.changed_at
        if saved.mode == Maintenance.Mode.OFF:
            self.message_user(request, "Maintenance is off; held requests were released in order.", messages.INFO)
