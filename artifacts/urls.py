from django.urls import path

from artifacts import views

app_name = "artifacts"

urlpatterns = [
    path("a/<str:token>/", views.public_download, name="public-download"),
    path("artifacts/<int:artifact_id>/download/", views.staff_download, name="download"),
]
