from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from trollama import consumers, views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/", admin.site.urls),
    path("console/", include("console.urls")),
    path("health", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("internal/events", views.relay_event, name="relay-event"),
    path("", include("artifacts.urls")),
]

websocket_urlpatterns = [
    path("ws/events/", consumers.EventsConsumer.as_asgi(), name="ws-events"),
    path("ws/requests/<int:request_id>/", consumers.EventsConsumer.as_asgi(), name="ws-request"),
]
