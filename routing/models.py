from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.utils import timezone


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class RouterStateVersion(models.Model):
    """One row whose token changes whenever anything the router caches per process changes.

    The router keeps routes, rules, settings, the trained classifier and the hosts
    in memory and reads only this token on each decision (inside the one query it
    makes anyway); a new token makes every process rebuild on its next decision.
    A random token rather than a counter: a rolled-back edit cannot bring an old
    number back for a different state.
    """

    token = models.CharField(max_length=32, default="initial")

    def __str__(self) -> str:
        return f"router state {self.token}"


def bump_router_state() -> None:
    """A new token, so every process's router reloads what it caches (in the caller's transaction)."""
    token = uuid.uuid4().hex
    if RouterStateVersion.objects.filter(pk=1).update(token=token):
        return
    try:
        with transaction.atomic():
            RouterStateVersion.objects.create(pk=1, token=token)
    except IntegrityError:  # another process created it meanwhile
        RouterStateVersion.objects.filter(pk=1).update(token=token)


class RouterStateQuerySet(models.QuerySet):
    """For the models the router caches: bulk writes, which send no signals, bump the state token too.

    Saves and deletes bump it through ``routing.state``'s signal receivers.
    """

    def update(self, **kwargs: Any) -> int:
        changed = super().update(**kwargs)
        if changed:
            bump_router_state()
        return changed

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        created = super().bulk_create(objs, *args, **kwargs)
        if created:
            bump_router_state()
        return created

    def bulk_update(self, objs: Any, *args: Any, **kwargs: Any) -> int:
        changed = super().bulk_update(objs, *args, **kwargs)
        if changed:
            bump_router_state()
        return changed


RouterStateManager = models.Manager.from_queryset(RouterStateQuerySet)


class OllamaHost(models.Model):
    """An Ollama server workers may send requests to.

    The circuit breaker lives on the row, so every worker process sees the
    same state: after ``OLLAMA_BREAKER_FAILURES`` consecutive failures the host
    is skipped for ``OLLAMA_BREAKER_COOLDOWN`` seconds, then one request is let
    through as a probe (half-open); success closes the breaker again.
    """

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(
        max_length=200,
        blank=True,
        help_text="e.g. http://gpu-box:11434. Empty: the OLLAMA_HOST setting (the default host).",
    )
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Failures in a row, each from a different request than the one before."
    )
    last_failed_request_id = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The request that failed last, so its own retries count once."
    )
    breaker_opened_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while the circuit breaker is open (the host is being skipped)."
    )
    last_error = models.CharField(max_length=300, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    reachable = models.BooleanField(default=True, help_text="Whether the last model sync reached the host.")
    vram_budget_gb = models.FloatField(
        null=True,
        blank=True,
        help_text=(
            "GPU memory (GB, as nvidia-smi counts them: GiB) the scheduler may fill with models on this host. "
            "Empty: it learns from the most Ollama has held at once, and never holds a request back for memory."
        ),
    )
    num_parallel = models.PositiveSmallIntegerField(
        default=1,
        help_text="Requests one model answers at once on this host: set it to the host's OLLAMA_NUM_PARALLEL.",
    )
    vram_seen = models.PositiveBigIntegerField(
        default=0, help_text="The most memory (bytes) /api/ps showed in use at once; the scheduler's learned budget."
    )
    # Learned by the scheduler when no budget is set (see conversations.scheduling.HostState.fit).
    vram_too_much = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="The least memory (bytes) whose loading made Ollama evict a model it still used; learned.",
    )
    models_too_many = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The fewest models whose loading made Ollama evict one; learned."
    )
    parallel_seen = models.PositiveSmallIntegerField(
        default=0, help_text="The most answers one model was seen generating at once here; learned."
    )

    objects = RouterStateManager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url})"

    @property
    def base_url(self) -> str:
        return self.url or settings.OLLAMA_HOST

    def breaker_state(self, now: datetime | None = None) -> str:
        """``closed`` (in use), ``open`` (skipped) or ``half-open`` (the cool-down is over: probe it)."""
        if self.breaker_opened_at is None:
            return "closed"
        now = now or timezone.now()
        cooldown = timedelta(seconds=settings.OLLAMA_BREAKER_COOLDOWN)
        return "open" if now < self.breaker_opened_at + cooldown else "half-open"


class OllamaModel(models.Model):
    """A model as one host reported it at the last sync. Rows are never deleted by a sync."""

    CAPABILITIES = ("completion", "tools", "thinking", "vision", "embedding")

    host = models.ForeignKey(OllamaHost, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    size = models.BigIntegerField(default=0, help_text="Bytes on disk.")
    family = models.CharField(max_length=100, blank=True)
    parameter_size = models.CharField(max_length=32, blank=True)
    completion = models.BooleanField(default=False)
    tools = models.BooleanField(default=False)
    thinking = models.BooleanField(default=False)
    vision = models.BooleanField(default=False)
    embedding = models.BooleanField(default=False)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    available = models.BooleanField(default=True, help_text="Listed by the host at the last sync that reached it.")
    synced_at = models.DateTimeField()

    objects = RouterStateManager()

    class Meta:
        ordering = ["host", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="unique_model_per_host")]

    def __str__(self) -> str:
        return f"{self.name} on {self.host.name}"

    @property
    def sync_state(self) -> str:
        """What the last sync knows: ``available``, ``no longer listed``, or ``host unreachable`` (state kept)."""
        if not self.host.reachable:
            return "host unreachable"
        return "available" if self.available else "no longer listed"

    @property
    def capabilities(self) -> list[str]:
        return [capability for capability in self.CAPABILITIES if getattr(self, capability)]


class Route(models.Model):
    """A kind of message and the model that answers it.

    Each process keeps the routes until one is edited (``routing.state``), so an
    edit in the admin takes effect on the next message without a restart.
    """

    class Think(models.TextChoices):
        OFF = "off", "Off"
        ON = "on", "On"
        LOW = "low", "Low effort"
        MEDIUM = "medium", "Medium effort"
        HIGH = "high", "High effort"

    slug = models.SlugField(unique=True, help_text="Short name used by /route and manage.py chat --route.")
    name = models.CharField(max_length=100)
    description = models.TextField(
        blank=True, help_text="What belongs on this route, in a sentence or two. The classifier reads it."
    )
    examples = models.TextField(
        blank=True,
        help_text="Example messages, one per line. The classifier reads them and the pre-router compares with them.",
    )
    model = models.CharField(max_length=200, help_text="Ollama model name, e.g. gpt-oss:20b.")
    fallback_models = models.TextField(
        blank=True, help_text="Models to try, in order, when the model is missing or keeps failing. One per line."
    )
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
    think = models.CharField(
        max_length=8,
        choices=Think.choices,
        default=Think.OFF,
        help_text="Let the model think before answering. Only for models that support thinking.",
    )
    web_search = models.BooleanField(default=False, help_text="Offer the web_search tool (models with tools only).")
    web_fetch = models.BooleanField(default=False, help_text="Offer the web_fetch tool (models with tools only).")
    keep_alive = models.CharField(
        max_length=20,
        blank=True,
        help_text="How long Ollama keeps the model loaded, e.g. 5m or -1. Empty: Ollama's default.",
    )
    keep_warm = models.BooleanField(
        default=False, help_text="Load the model ahead of time (at every model sync) so the first answer is quick."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RouterStateManager()

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

    @property
    def example_list(self) -> list[str]:
        return _lines(self.examples)

    @property
    def fallback_list(self) -> list[str]:
        return [name for name in _lines(self.fallback_models) if name != self.model]

    @property
    def models_in_order(self) -> list[str]:
        return [self.model, *self.fallback_list]

    @property
    def tool_names(self) -> list[str]:
        return [name for name in ("web_search", "web_fetch") if getattr(self, name)]


class RouterRule(models.Model):
    """A pre-router rule: a message matching it goes straight to its route."""

    class Kind(models.TextChoices):
        KEYWORD = "keyword", "Keyword (whole word, any case)"
        REGEX = "regex", "Regular expression"

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.KEYWORD)
    pattern = models.CharField(max_length=300)
    priority = models.IntegerField(default=100, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)

    objects = RouterStateManager()

    class Meta:
        ordering = ["priority", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.pattern!r} → {self.route.slug}"


class RouterSettings(models.Model):
    """How the router decides. One row (pk=1); kept by each process until edited, so edits apply at once."""

    router_model = models.CharField(
        max_length=200, default="gpt-oss:20b", help_text="The model that classifies messages the pre-router leaves."
    )
    router_keep_alive = models.CharField(
        max_length=20, blank=True, default="30m", help_text="Keep the router model loaded this long (e.g. 30m, -1)."
    )
    classifier_enabled = models.BooleanField(default=True)
    history_turns = models.PositiveIntegerField(
        default=4, help_text="Earlier turns of the thread the classifier sees, so follow-ups stay on their route."
    )
    embedding_model = models.CharField(
        max_length=200,
        blank=True,
        default="all-minilm",
        help_text="The Ollama embedding model the fast path scores messages with (ollama pull all-minilm). "
        "Empty: no fast path beyond rules, every other message goes to the router model.",
    )
    calibration_precision = models.FloatField(
        default=0.97,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Retraining picks each route's threshold so that this share of held-out examples above it "
        "is right. Higher: fewer messages decided without the router model, fewer mistakes.",
    )
    follow_up_lean = models.FloatField(
        default=4.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(100.0)],
        help_text="How many times likelier a follow-up is taken to stay on the previous turn's route.",
    )
    # Used only while no classifier is trained for the embedding model (see RouteClassifier).
    # Defaults measured with all-minilm on bench/routing_messages.jsonl (python -m bench.routing --sweep).
    similarity_threshold = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Similarity (cosine) the best route's score must reach.",
    )
    similarity_margin = models.FloatField(
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="How far the best route must be ahead of the runner-up.",
    )
    similarity_top_k = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="A route scores the mean similarity of its this many closest examples.",
    )

    objects = RouterStateManager()

    class Meta:
        verbose_name = "router settings"
        verbose_name_plural = "router settings"

    def __str__(self) -> str:
        return "Router settings"

    @classmethod
    def current(cls) -> RouterSettings:
        found, _ = cls.objects.get_or_create(pk=1)
        return found


class RouteExample(models.Model):
    """A labelled message the fast path's classifier is trained on, with where it came from."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="training_examples")
    text = models.TextField()
    source = models.CharField(
        max_length=100, default="operator", help_text="Where it came from, e.g. trollama, operator, a corpus name."
    )
    licence = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["route", "pk"]
        constraints = [models.UniqueConstraint(fields=["route", "text"], name="unique_example_per_route")]

    def __str__(self) -> str:
        return f"{self.route.slug}: {self.text[:60]}"


class RouteClassifier(models.Model):
    """The fast path's trained classifier for one embedding model, rebuilt by ``manage.py retrainrouter``.

    Saving it replaces the router's state token (``routing.state``), so every
    worker reloads the weights on its next decision: a retrain applies without a restart.
    """

    embedding_model = models.CharField(max_length=200, unique=True)
    labels = models.JSONField(help_text="Route slugs, in the order of the weight rows.")
    weights = models.JSONField()
    bias = models.JSONField()
    thresholds = models.JSONField(help_text="The probability each route needs to be decided without the LLM.")
    report = models.JSONField(default=dict, blank=True, help_text="Out-of-fold figures per route at the thresholds.")
    examples = models.PositiveIntegerField(default=0)
    examples_digest = models.CharField(max_length=64, blank=True, help_text="Which examples it was trained on.")
    trained_at = models.DateTimeField()

    objects = RouterStateManager()

    def __str__(self) -> str:
        return f"classifier for {self.embedding_model} ({self.examples} examples)"


class RoutingDecision(models.Model):
    """How one request was routed, with the classifier's scores, so low-confidence calls can be reviewed."""

    request = models.ForeignKey("conversations.Request", on_delete=models.CASCADE, related_name="routing_decisions")
    route = models.CharField(max_length=50)
    method = models.CharField(max_length=16)
    detail = models.CharField(max_length=300, blank=True)
    confidence = models.FloatField(null=True, blank=True, help_text="The classifier's probability for its best route.")
    scores = models.JSONField(default=dict, blank=True, help_text="The classifier's probability for every route.")
    previous_route = models.CharField(max_length=50, blank=True, help_text="The thread's previous turn's route.")
    ms = models.FloatField(default=0.0)
    model_ms = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when an operator relabels the message from the console (routing.review.relabel).
    corrected_route = models.CharField(max_length=50, blank=True, help_text="The route an operator said was right.")
    corrected_by = models.CharField(max_length=150, blank=True)
    corrected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.request_id} → {self.route} ({self.method})"

    @property
    def top_scores(self) -> list[tuple[str, float]]:
        """The classifier's three likeliest routes, best first."""
        ranked = sorted((self.scores or {}).items(), key=lambda item: item[1], reverse=True)
        return [(slug, float(score)) for slug, score in ranked[:3]]


class ExampleEmbedding(models.Model):
    """A cached embedding of one text, so route examples are embedded once per model, not per request."""

    model = models.CharField(max_length=200)
    text_hash = models.CharField(max_length=64)
    vector = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "text_hash"], name="unique_embedding_per_model")]

    def __str__(self) -> str:
        return f"{self.model} {self.text_hash[:12]}"


class RoutingPreference(models.Model):
    """A user's standing choices: a pinned route and whether models think."""

    class Thinking(models.TextChoices):
        AUTO = "auto", "As the route says"
        ON = "on", "Always when the model can"
        OFF = "off", "Never"

    user = models.OneToOneField("conversations.ChatUser", on_delete=models.CASCADE, related_name="routing_preference")
    pinned_route = models.ForeignKey(Route, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    thinking = models.CharField(max_length=8, choices=Thinking.choices, default=Thinking.AUTO)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.user}"


class NextMessageRoute(models.Model):
    """A route forced for one user's next message in one thread (``/route … next``); used once."""

    user = models.ForeignKey("conversations.ChatUser", on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey("conversations.Thread", on_delete=models.CASCADE, related_name="+")
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "thread"], name="one_next_route_per_user_thread")]

    def __str__(self) -> str:
        return f"{self.route} next in {self.thread}"


class ServerInstructions(models.Model):
    """Extra system-prompt text for a Discord server, or one channel or thread in it."""

    guild_id = models.CharField(max_length=32, help_text="The Discord server id.")
    channel_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="A channel (or thread) id in that server. Empty: the whole server.",
    )
    instructions = models.TextField()
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "server instructions"
        ordering = ["guild_id", "channel_id"]
        constraints = [models.UniqueConstraint(fields=["guild_id", "channel_id"], name="one_instruction_per_place")]

    def __str__(self) -> str:
        return f"server {self.guild_id}" + (f", channel {self.channel_id}" if self.channel_id else "")
