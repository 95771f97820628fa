from __future__ import annotations

from django.db import models
from django.utils import timezone


class Tier(models.Model):
    """A level of weekly token allowance; every chat user belongs to one."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    weekly_allowance = models.PositiveBigIntegerField(help_text="Tokens a user may spend each week.")
    is_default = models.BooleanField(default=False, help_text="New users get this tier.")
    rate_limit_exempt = models.BooleanField(default=False, help_text="Exempt from the requests-per-minute limit.")

    class Meta:
        ordering = ["weekly_allowance", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_tier"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.weekly_allowance:,} tokens/week)"


class UsageEntry(models.Model):
    """One Ollama call's token counts, charged to the user it was made for.

    The week's usage is a sum over these by timestamp, so there is no reset
    job that could fail to run.
    """

    class Kind(models.TextChoices):
        ANSWER = "answer", "Answer"
        ROUTER = "router", "Router classification"
        EMBEDDING = "embedding", "Router embedding"
        TOOL = "tool", "Tool round"
        SUMMARY = "summary", "Summary"

    user = models.ForeignKey("conversations.ChatUser", on_delete=models.CASCADE, related_name="usage_entries")
    request = models.ForeignKey(
        "conversations.Request", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_entries"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    route = models.ForeignKey("routing.Route", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "usage entries"
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.total_tokens:,} tokens on {self.model}"
