from django.apps import AppConfig


class TrollamaConfig(AppConfig):
    name = "trollama"
    verbose_name = "Trollama"
