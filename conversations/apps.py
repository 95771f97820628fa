from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from conversations.workers import install_stop_handlers

        # Each django-q2 worker sends post_spawn from its main thread as it starts.
        post_spawn.connect(install_stop_handlers, dispatch_uid="conversations.install_stop_handlers")
