from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from trollama.fields import NulSafeTextField


class Platform(models.TextChoices):
    DISCORD = "discord", "Discord"
    LOCAL = "local", "Local terminal"


class ChatUser(models.Model):
    """Someone who talks to the assistant, on Discord or from a local terminal."""

    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=64, help_text="Discord user id, or the local username.")
    username = models.CharField(max_length=100)
    display_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    tier = models.ForeignKey(
        "budgets.Tier",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="users",
        help_text="Empty means the default tier.",
    )
    banned = models.BooleanField(default=False, help_text="Banned users are refused at intake.")
    ban_reason = models.CharField(max_length=200, blank=True, help_text="Shown to the user when refused.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "external_id"], name="unique_chat_user_per_platform"),
        ]
        ordering = ["username"]

    def __str__(self) -> str:
        return f"{self.display_name or self.username} ({self.get_platform_display()})"


class Thread(models.Model):
    """A conversation: a Discord thread or DM channel, or a named local thread."""

    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=100, help_text="Discord channel id, or the local thread name.")
    title = models.CharField(max_length=100, blank=True)
    owner = models.ForeignKey(ChatUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="threads")
    guild_id = models.CharField(
        max_length=32, blank=True, help_text="The Discord server, empty for DMs and local threads."
    )
    parent_channel_id = models.CharField(
        max_length=32, blank=True, help_text="For a Discord thread, the channel it was started in."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    summary = NulSafeTextField(blank=True, help_text="What was said before the turns the model still sees verbatim.")
    summary_until = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The last message the summary covers.",
    )
    summary_token_count = models.PositiveIntegerField(default=0, help_text="Ollama's count for the summary.")
    summarized_at = models.DateTimeField(null=True, blank=True)
    branched_from = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="branches",
        help_text="The message of another thread this one continues from (a reply to it), up to which it was copied.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "external_id"], name="unique_thread_per_platform"),
        ]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or self.external_id


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(ChatUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = NulSafeTextField()
    token_count = models.PositiveIntegerField(null=True, blank=True, help_text="Ollama's count, once known.")
    route = models.ForeignKey("routing.Route", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200, blank=True)
    external_id = models.CharField(max_length=64, blank=True, help_text="The Discord message id, when there is one.")
    external_channel_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="The Discord channel it was written in, when not its thread's (a reply that branched into a new one).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["thread", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class Attachment(models.Model):
    """A file a user sent with a message.

    The upload itself expires (``UPLOAD_CLEANUP_HOURS``); the text read from
    it stays in ``extracted_text`` so later turns still see the file.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        TEXT = "text", "Text or code"
        PDF = "pdf", "PDF"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(help_text="Bytes, as uploaded.")
    file = models.FileField(upload_to="uploads/%Y/%m/%d/", blank=True, help_text="Empty once the upload has expired.")
    extracted_text = NulSafeTextField(blank=True, help_text="What the model reads; kept after the file expires.")
    note = models.CharField(max_length=300, blank=True, help_text="E.g. that the text was truncated.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the uploaded file is deleted.")

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return self.filename


class Request(models.Model):
    """One message being answered, from intake to a stored reply.

    The row is the source of truth that every process resyncs from; events only
    announce that it changed. While a worker runs it, ``attempts`` doubles as a
    fencing token and ``lease_expires_at`` says until when the worker is
    presumed alive (see ``pipeline.processing``).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        HELD = "held", "Held (maintenance)"
        ROUTING = "routing", "Routing"
        GENERATING = "generating", "Generating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    WAITING = (Status.QUEUED, Status.HELD)
    RUNNING = (Status.ROUTING, Status.GENERATING)
    FINISHED = (Status.DONE, Status.FAILED, Status.CANCELLED)

    user = models.ForeignKey(ChatUser, on_delete=models.CASCADE, related_name="requests")
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="requests")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="request")
    reply = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="answered_request"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=32, blank=True, help_text="What the worker is doing right now.")
    route_override = models.CharField(max_length=50, blank=True, help_text="Route slug the user asked for.")
    route = models.ForeignKey("routing.Route", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=200, blank=True)
    expected_model = models.CharField(
        max_length=200,
        blank=True,
        help_text="The model the scheduler expects before routing (empty when only routing can tell).",
    )
    queue_position = models.PositiveIntegerField(
        null=True, blank=True, help_text="Its place in the scheduler's order while it waits (1 starts next)."
    )
    wait_estimate = models.FloatField(null=True, blank=True, help_text="Rough seconds until it starts, while waiting.")
    host = models.CharField(max_length=200, blank=True, help_text="The Ollama host that answered.")
    route_method = models.CharField(
        max_length=16,
        blank=True,
        help_text="How the route was chosen: override, pinned, vision, rule, embedding, classifier or default.",
    )
    route_detail = models.CharField(
        max_length=300, blank=True, help_text="Why, in a few words (rule, score, classifier answer)."
    )
    route_ms = models.FloatField(null=True, blank=True, help_text="Milliseconds the routing decision took.")
    system_prompt = NulSafeTextField(blank=True, help_text="The exact system prompt sent to the model.")
    dropped_turns = models.PositiveIntegerField(default=0, help_text="Earlier turns left out to fit the context.")
    reserved_tokens = models.PositiveIntegerField(default=0, help_text="Budget held back while the request runs.")
    notices = models.JSONField(
        default=list,
        blank=True,
        help_text="What the user is told under the answer: [{code, ...parameters}] (conversations.footnotes).",  # now pipeline.footnotes; kept: help_text is in migrations
    )
    prompt_estimate = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Our uncalibrated estimate of the prompt as sent (none with images); calibrates the model.",
    )
    budget_cap = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The answer's num_predict when the budget made it shorter than the route allows.",
    )
    budget_warning = models.PositiveSmallIntegerField(
        default=0, help_text="The share of the weekly budget (80 or 95 %) this answer warned about, or 0."
    )

    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    handbacks = models.PositiveSmallIntegerField(
        default=0, help_text="Attempts a stopping worker handed back; they do not count against MAX_ATTEMPTS."
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(
        max_length=120, blank=True, help_text="The worker process running it now: host:cluster pid/worker pid."
    )
    error = NulSafeTextField(blank=True, help_text="Why it failed, written for the user.")
    cancel_requested = models.BooleanField(default=False)
    partial_content = NulSafeTextField(blank=True, help_text="The answer so far, saved every few seconds.")
    thinking = NulSafeTextField(blank=True, help_text="The model's reasoning, never shown in the answer.")
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the final answer (or failure) reached Discord."
    )
    discord_message_ids = models.JSONField(
        default=list,
        blank=True,
        help_text="The bot's Discord messages that show this answer, in order, so a restarted bot finishes it there.",
    )

    class Meta:
        ordering = ["-queued_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "queued_at"]),
            models.Index(fields=["thread", "queued_at"]),
        ]

    def __str__(self) -> str:
        return f"Request {self.pk} ({self.status})"

    @property
    def attempts_left(self) -> int:
        return settings.MAX_ATTEMPTS + self.handbacks - self.attempts

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    @property
    def queue_wait(self) -> timedelta | None:
        return self.started_at - self.queued_at if self.started_at else None

    @property
    def elapsed(self) -> timedelta:
        return (self.finished_at or timezone.now()) - self.queued_at


class TokenCalibration(models.Model):
    """How a model's tokenizer compares with our estimate (``conversations.calibration``)."""

    model = models.CharField(max_length=200, unique=True)
    ratio = models.FloatField(default=1.0, help_text="Ollama's prompt_eval_count divided by our estimate.")
    samples = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.model}: ratio {self.ratio:.2f} ({self.samples} samples)"
