from django.contrib.auth import views as auth_views
from django.urls import path

from console import views

app_name = "console"

urlpatterns = [
    path("", views.requests_list, name="requests"),
    path("requests/<int:request_id>/", views.request_detail, name="request"),
    path("requests/<int:request_id>/facts/", views.request_facts, name="request-facts"),
    path("requests/<int:request_id>/cancel/", views.request_cancel, name="request-cancel"),
    path("health/", views.health, name="health"),
    path("health/panel/", views.health_panel, name="health-panel"),
    path("maintenance/", views.maintenance, name="maintenance"),
    path("usage/", views.usage, name="usage"),
    path("conversations/", views.conversations, name="conversations"),
    path("conversations/<int:thread_id>/", views.conversation, name="conversation"),
    path("conversations/<int:thread_id>/reset/", views.conversation_reset, name="conversation-reset"),
    path("conversations/<int:thread_id>/close/", views.conversation_close, name="conversation-close"),
    path("artifacts/", views.artifacts, name="artifacts"),
    path("routing/", views.routing_review, name="routing"),
    path("routing/<int:decision_id>/relabel/", views.routing_relabel, name="routing-relabel"),
    path("knowledge/", views.knowledge, name="knowledge"),
    path("knowledge/<int:channel_pk>/remove/", views.knowledge_remove, name="knowledge-remove"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True, next_page="console:requests"
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
]
