from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Server knowledge"
    default_auto_field = "django.db.models.BigAutoField"
