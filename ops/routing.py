"""The websocket routes (``settings.WEBSOCKET_URLCONF``), served by ``trollama.asgi``."""

from django.urls import path

from ops import consumers

websocket_urlpatterns = [
    path("ws/events/", consumers.EventsConsumer.as_asgi(), name="ws-events"),
    path("ws/requests/<int:request_id>/", consumers.EventsConsumer.as_asgi(), name="ws-request"),
]
