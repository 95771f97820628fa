from django.urls import path

from ops import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("internal/events", views.relay_event, name="relay-event"),
]
