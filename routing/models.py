from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Route(models.Model):
    """A kind of message and the model that answers it.

    Routes are read on every request, so an edit in the admin takes effect on
    the next message without a restart.
    """

    slug = models.SlugField(unique=True, help_text="Short name used by /route and manage.py chat --route.")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, help_text="What belongs on this route, in a sentence or two.")
    model = models.CharField(max_length=200, help_text="Ollama model name, e.g. gpt-oss:20b.")
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="Leave empty to use the model's own default.",
    )
    context_size = models.PositiveIntegerField(
        default=8192,
        validators=[MinValueValidator(512)],
        help_text="Context window in tokens (Ollama's num_ctx).",
    )
    keep_alive = models.CharField(
        max_length=20,
        blank=True,
        help_text="How long Ollama keeps the model loaded, e.g. 5m or -1. Empty: Ollama's default.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def chat_options(self) -> dict[str, float | int]:
        """The Ollama ``options`` this route asks for."""
        options: dict[str, float | int] = {"num_ctx": self.context_size}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return options
