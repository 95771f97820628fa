from __future__ import annotations

from django.db import models
from django.utils import timezone


class Maintenance(models.Model):
    """Maintenance mode: one row, read from the database at every intake.

    Because every process reads the row rather than a setting, switching the
    mode takes effect at once everywhere, with no restart. Change it only
    through ``ops.maintenance.set_maintenance``, which also releases held
    requests and tells listeners.
    """

    SINGLETON_ID = 1

    class Mode(models.TextChoices):
        OFF = "off", "Off: answering normally"
        SOFT = "soft", "Soft: accept and hold new requests"
        HARD = "hard", "Hard: refuse new requests"

    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.OFF)
    message = models.CharField(
        max_length=500, blank=True, help_text="Shown to users. Empty: a standard message for the mode."
    )
    changed_by = models.CharField(max_length=150, blank=True, help_text="Who switched it last.")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "maintenance mode"
        verbose_name_plural = "maintenance mode"

    def __str__(self) -> str:
        return f"Maintenance {self.mode}"

    @property
    def is_on(self) -> bool:
        return self.mode != self.Mode.OFF

    @property
    def user_message(self) -> str:
        """What users are told, in the operator's words when there are some."""
        if self.message:
            return self.message
        if self.mode == self.Mode.HARD:
            return "Trollama is down for maintenance and is not taking new messages. Please try again later."
        if self.mode == self.Mode.SOFT:
            return "Trollama is under maintenance."
        return ""


class MetricCounter(models.Model):
    """A Prometheus counter kept in the database: one row per metric name and label set.

    Counters must never go down, so they cannot be sums over rows that are
    later deleted (a console Close deletes a thread's requests). They are
    incremented where the thing they count happens, through
    ``trollama.counters.increment``, and only ever grow.
    """

    name = models.CharField(max_length=100)
    # The labels, canonical (sorted keys, compact JSON): what the unique constraint compares.
    key = models.CharField(max_length=1000)
    labels = models.JSONField(default=dict)
    value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "key"], name="unique_metric_counter_labels")]

    def __str__(self) -> str:
        return f"{self.name}{self.key} = {self.value}"
