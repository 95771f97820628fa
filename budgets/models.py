from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

# Tiers whose allowance may follow an environment setting instead of a number
# stored in the row, so an operator can change it with a restart.
ALLOWANCE_SETTINGS = {"free": "FREE_TIER_WEEKLY_BUDGET", "admin": "ADMIN_TIER_WEEKLY_BUDGET"}


class Tier(models.Model):
    """A level of weekly token allowance; every chat user belongs to one."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    weekly_allowance = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Tokens a user may spend each week. Empty for the free and admin tiers means: follow "
            "FREE_TIER_WEEKLY_BUDGET / ADMIN_TIER_WEEKLY_BUDGET."
        ),
    )
    is_default = models.BooleanField(default=False, help_text="New users get this tier.")
    rate_limit_exempt = models.BooleanField(default=False, help_text="Exempt from the requests-per-minute limit.")

    class Meta:
        ordering = ["weekly_allowance", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_tier",
                violation_error_message="Another tier is already the default: untick it there first.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.allowance:,} tokens/week)"

    @property
    def allowance(self) -> int:
        """The weekly allowance in force: the stored number, else the tier's setting."""
        if self.weekly_allowance is not None:
            return self.weekly_allowance
        setting = ALLOWANCE_SETTINGS.get(self.slug)
        return int(getattr(settings, setting)) if setting else 0

    def clean(self) -> None:
        if self.weekly_allowance is None and self.slug not in ALLOWANCE_SETTINGS:
            raise ValidationError(
                {"weekly_allowance": "Set a number: only the free and admin tiers can follow a setting."}
            )


class RoleTier(models.Model):
    """A Discord role whose members get a tier (the highest of their roles' tiers applies)."""

    role_id = models.CharField(max_length=32, unique=True, help_text="The Discord role id (Developer Mode → Copy ID).")
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="roles")
    note = models.CharField(max_length=100, blank=True, help_text="E.g. the role's name, for your own reference.")

    class Meta:
        ordering = ["tier", "role_id"]
        verbose_name = "Discord role tier"

    def __str__(self) -> str:
        return f"Role {self.note or self.role_id} → {self.tier.name}"


class UserRoleTier(models.Model):
    """The tier a Discord user gets from their roles, as seen at their latest message.

    Kept because the budget is also needed where no roles are at hand (``/usage``
    in a DM, the admin, a worker).
    """

    user = models.OneToOneField(
        "conversations.ChatUser", on_delete=models.CASCADE, primary_key=True, related_name="role_tier"
    )
    tier = models.ForeignKey(Tier, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} → {self.tier.name} (from roles)"


class Grant(models.Model):
    """Extra tokens given to one user, added to their weekly allowance while active."""

    user = models.ForeignKey("conversations.ChatUser", on_delete=models.CASCADE, related_name="grants")
    amount = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=200)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty when granted from the command line without --by.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the grant never expires.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "expires_at"], name="grant_user_expires")]

    def __str__(self) -> str:
        return f"{self.amount:,} tokens for {self.user}"

    def is_active(self, at: datetime | None = None) -> bool:
        return self.expires_at is None or self.expires_at > (at or timezone.now())


class UsageEntry(models.Model):
    """One Ollama call's token counts, charged to the user it was made for.

    The week's usage is a sum over these by timestamp, so there is no reset
    job that could fail to run.
    """

    class Kind(models.TextChoices):
        ANSWER = "answer", "Answer"
        ROUTER = "router", "Router classification"
        EMBEDDING = "embedding", "Router embedding"
        KNOWLEDGE = "knowledge", "Server knowledge question"
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
    estimated = models.BooleanField(
        default=False,
        help_text="Counted by the characters/4 estimate: the call was cut off before Ollama reported its counts.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "usage entries"
        # On PostgreSQL migration 0003 rebuilds this index to also INCLUDE
        # total_tokens, so a week's sum is an index-only scan (see README, "Budgets").
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.total_tokens:,} tokens on {self.model}"
