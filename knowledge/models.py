"""What is indexed (channels opted in), what was said there (messages with embeddings), and who opted out.

Ids are Discord snowflakes (64-bit). A message row is kept as a tombstone
(text and vector cleared, ``deleted``) for a while after Discord deletes it,
so every process's in-memory index learns of the deletion from its next
incremental refresh (``knowledge.index``); ``cleanup`` purges tombstones later.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from conversations.models import Request


class IndexedChannel(models.Model):
    """A Discord channel whose messages are indexed. Nothing is indexed unless a row says so."""

    guild_id = models.BigIntegerField(db_index=True, help_text="The Discord server's id.")
    channel_id = models.BigIntegerField(unique=True, help_text="The Discord channel's id (right-click → Copy ID).")
    name = models.CharField(max_length=100, blank=True)
    added_by = models.CharField(max_length=150, blank=True, help_text="Who opted the channel in.")
    created_at = models.DateTimeField(default=timezone.now)
    # Backfill walks history newest to oldest: the next page is the messages before this id.
    backfill_before = models.BigIntegerField(null=True, blank=True, editable=False)
    backfill_done = models.BooleanField(default=False, help_text="Untick to read the channel's history again.")
    backfilled = models.PositiveIntegerField(default=0, editable=False)
    last_indexed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["guild_id", "name", "channel_id"]

    def __str__(self) -> str:
        return f"#{self.name}" if self.name else str(self.channel_id)


class IndexedThread(models.Model):
    """A public thread of an indexed channel whose history the bot reads: where that reading stands, so a restart
    resumes it (and does not read a finished thread's whole history again)."""

    channel = models.ForeignKey(IndexedChannel, on_delete=models.CASCADE, related_name="threads")
    thread_id = models.BigIntegerField(unique=True)
    # Its history is read newest to oldest: the next page is the messages before this id.
    backfill_before = models.BigIntegerField(null=True, blank=True)
    backfill_done = models.BooleanField(default=False)
    # When the bot last read it through (its history, or forward after a restart); None: never.
    read_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"thread {self.thread_id} of {self.channel}"


class IndexedMessage(models.Model):
    message_id = models.BigIntegerField(primary_key=True)
    channel = models.ForeignKey(IndexedChannel, on_delete=models.CASCADE, related_name="messages")
    posted_in = models.BigIntegerField(help_text="The channel or thread it was posted in (for its jump link).")
    guild_id = models.BigIntegerField()
    author_id = models.BigIntegerField(db_index=True)
    author_name = models.CharField(max_length=100)
    created_at = models.DateTimeField(db_index=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    text = models.TextField()
    reply_to = models.BigIntegerField(
        null=True, blank=True, help_text="The message this one replies to; its start is embedded with it."
    )
    embedding = models.BinaryField(null=True, blank=True, help_text="Unit float32 vector, little-endian.")
    pieces = models.BinaryField(
        null=True,
        blank=True,
        help_text="Unit float32 vectors of its clauses, one after another, when it has more than one.",
    )
    embedding_model = models.CharField(max_length=200, blank=True)
    needs_embedding = models.BooleanField(default=True, db_index=True)
    deleted = models.BooleanField(default=False)
    # Set on every write (by hand: QuerySet.update skips auto_now); indexes refresh from it.
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["guild_id", "changed_at"], name="knowledge_msg_guild_changed"),
            # A channel's or thread's messages by id: where a restarted bot reads it from, what it no longer returned.
            models.Index(fields=["posted_in", "message_id"], name="knowledge_msg_posted_in"),
        ]

    def __str__(self) -> str:
        return f"{self.author_name}: {self.text[:60]}"

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id}/{self.posted_in}/{self.message_id}"


class ForgottenUser(models.Model):
    """Someone who ran ``/forget-me``: their messages are deleted from the index and never indexed again."""

    user_id = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return str(self.user_id)


class Ask(models.Model):
    """A ``/ask`` question's request and the messages retrieved for it, which the model is shown."""

    request = models.OneToOneField(Request, on_delete=models.CASCADE, related_name="knowledge_ask")
    guild_id = models.BigIntegerField()
    sources = models.JSONField(
        default=list, help_text="[{n, message_id, url, author, created_at, channel, text, similarity}], best first."
    )

    def __str__(self) -> str:
        return f"ask for request {self.request_id}"


class EmbeddingState(models.Model):
    """One row (pk=1): the embedding queue's debounce and its last outcome, for the console."""

    queued_until = models.DateTimeField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, help_text="The model the index was last embedded with.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return "Embedding queue"

    @classmethod
    def current(cls) -> EmbeddingState:
        found, _ = cls.objects.get_or_create(pk=1)
        return found
