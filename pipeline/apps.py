from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "pipeline"
    verbose_name = "Request pipeline"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from pipeline.workers import install_stop_handlers

        # Each django-q2 worker sends post_spawn from its main thread as it starts.
        post_spawn.connect(install_stop_handlers, dispatch_uid="conversations.install_stop_handlers")
