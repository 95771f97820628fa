"""Per-model correction of the token estimate, learned from Ollama's own counts.

Every answered request without images stores our uncalibrated estimate of its
prompt (``Request.prompt_estimate``); Ollama reports what the model's own
tokenizer made of it (``prompt_eval_count``). Their quotient, per model, is a
moving average that multiplies the estimate for that model from then on.

Ollama leaves out of ``prompt_eval_count`` the part of a prompt it reuses from
its KV cache (the system prompt and earlier turns of a conversation it just
answered), so a sample is a lower bound of the truth, never more. The ratio
therefore rises quickly and falls slowly, samples far below it are ignored as
cache hits, and it stays within ``MIN_RATIO``..``MAX_RATIO``: the estimate is
never trusted to less than four fifths of its own table (what English prose needs), which keeps every
script measured in ``bench/tokens.py`` within the context window.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from conversations.models import TokenCalibration

MIN_RATIO = 0.8
MAX_RATIO = 2.0
# Prompts smaller than this are mostly chat-template markup, which says little about the tokenizer.
MIN_SAMPLE_TOKENS = 64
RISE = 0.5  # weight of a sample above the ratio
FALL = 0.1  # weight of a sample below it
CACHE_HIT_BELOW = 0.6  # a sample under this share of the ratio is taken for a cache hit


def ratio_for(model: str) -> float:
    """The estimate's multiplier for ``model``: 1.0 until it has been calibrated."""
    if not model:
        return 1.0
    ratio = TokenCalibration.objects.filter(model=model).values_list("ratio", flat=True).first()
    return ratio if ratio is not None else 1.0


def next_ratio(current: float, sample: float, *, samples: int) -> float | None:
    """The ratio after ``sample``, or None when the sample is ignored. Pure."""
    if samples and sample < current * CACHE_HIT_BELOW:
        return None
    if not samples:
        updated = sample
    else:
        weight = RISE if sample > current else FALL
        updated = current + weight * (sample - current)
    return min(MAX_RATIO, max(MIN_RATIO, updated))


def calibrate(*, model: str, estimate: int | None, prompt_tokens: int | None) -> float | None:
    """Fold one answered request into ``model``'s ratio; the new ratio, or None when nothing was learned.

    Workers calibrate concurrently: the row is locked while it is updated.
    """
    if not model or not estimate or not prompt_tokens or estimate < MIN_SAMPLE_TOKENS:
        return None
    try:
        with transaction.atomic():
            TokenCalibration.objects.get_or_create(model=model)
    except IntegrityError:  # created by another worker meanwhile
        pass
    with transaction.atomic():
        row = TokenCalibration.objects.select_for_update().get(model=model)
        updated = next_ratio(row.ratio, prompt_tokens / estimate, samples=row.samples)
        if updated is None:
            return None
        row.ratio = updated
        row.samples += 1
        row.save(update_fields=["ratio", "samples", "updated_at"])
    return updated
