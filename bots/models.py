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


class DiscordAccess(models.Model):
    """Whether the bot answers direct messages: one row, edited in the admin (``bots.selectors.access_policy``).

    Without the row, or set to "as DISCORD_ALLOW_DMS", the setting decides. The
    admin offers "add" only while there is none; with several, the first counts.
    """

    class DirectMessages(models.TextChoices):
        SETTING = "setting", "As DISCORD_ALLOW_DMS says"
        ON = "on", "Answered"
        OFF = "off", "Refused"

    direct_messages = models.CharField(
        max_length=8,
        choices=DirectMessages.choices,
        default=DirectMessages.SETTING,
        help_text="Refused DMs are told, once per message, to mention the bot in a server instead.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "Discord direct messages"

    def __str__(self) -> str:
        return f"Direct messages: {self.get_direct_messages_display()}"


class AccessRule(models.Model):
    """One entry of the bot's allow and block lists, beside the DISCORD_ALLOWED_*/DISCORD_BLOCKED_* settings.

    The bot applies the settings' ids and these rows together, re-read within
    ``bots.selectors.ACCESS_TTL`` seconds of a change, without a restart.
    See ``bots.intake.AccessPolicy`` for what each list does.
    """

    class Kind(models.TextChoices):
        GUILD = "guild", "Server"
        CHANNEL = "channel", "Channel"
        ROLE = "role", "Role"
        USER = "user", "User"

    class Action(models.TextChoices):
        ALLOW = "allow", "Allow"
        BLOCK = "block", "Block"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    action = models.CharField(
        max_length=8,
        choices=Action.choices,
        default=Action.ALLOW,
        help_text="Servers and channels can only be allowed: outside an allow list the bot stays silent.",
    )
    discord_id = models.PositiveBigIntegerField(
        help_text="The server, channel, role or user id (Discord: Developer Mode, then right-click → Copy ID)."
    )
    note = models.CharField(max_length=200, blank=True, help_text="Who or what this is, for the next admin.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "action", "discord_id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "action", "discord_id"], name="unique_access_rule"),
            models.CheckConstraint(
                condition=models.Q(action="allow") | models.Q(kind__in=["role", "user"]),
                name="access_block_only_roles_and_users",
            ),
        ]

    def __str__(self) -> str:
        label = f"{self.get_action_display()} {self.get_kind_display().lower()} {self.discord_id}"
        return f"{label} ({self.note})" if self.note else label
