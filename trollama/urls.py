from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/", admin.site.urls),
    path("console/", include("console.urls")),
    path("", include("ops.urls")),
    path("", include("artifacts.urls")),
]
