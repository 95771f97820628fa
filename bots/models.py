from __future__ import annotations

from django.db import models
from django.utils import timezone


class BotHeartbeat(models.Model):
    """The bot process's last sign of life, one row per bot (one per Discord token).

    The bot rewrites it every ``BOT_HEARTBEAT_INTERVAL`` seconds; health checks
    and the console read its age. A row older than three intervals means the
    bot is gone, whatever ``connected`` last said.
    """

    name = models.CharField(max_length=100, unique=True, help_text="The bot's Discord user name.")
    connected = models.BooleanField(default=False, help_text="Connected to Discord's gateway at the last beat.")
    latency_ms = models.FloatField(null=True, blank=True, help_text="Gateway round trip at the last beat.")
    guilds = models.PositiveIntegerField(default=0)
    events_connected = models.BooleanField(default=False, help_text="Following web's event stream at the last beat.")
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def age_seconds(self) -> float:
        return (timezone.now() - self.beat_at).total_seconds()

    def is_alive(self, interval: float) -> bool:
        return self.age_seconds <= 3 * interval


class CommandSync(models.Model):
    """The slash commands last synced to Discord, for one application, globally or in one guild.

    ``runbot`` compares ``tree_hash`` with its own command tree at start and
    syncs only when they differ (Discord rate-limits syncing hard, and a sync
    on every start is what it asks bots not to do).
    """

    application_id = models.CharField(max_length=32, help_text="The bot's Discord application id.")
    guild_id = models.CharField(max_length=32, blank=True, help_text="Empty: the global commands.")
    tree_hash = models.CharField(max_length=64, help_text="SHA-256 of the commands as they were synced.")
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application_id", "guild_id"], name="one_command_sync_per_scope")
        ]

    def __str__(self) -> str:
        return f"commands of {self.application_id} in {self.guild_id or 'every guild'}"
