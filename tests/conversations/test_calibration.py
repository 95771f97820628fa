"""Calibrating the token estimate per model from Ollama's own prompt_eval_count."""

from __future__ import annotations

import pytest

from conversations.calibration import MAX_RATIO, MIN_RATIO, calibrate, next_ratio, ratio_for
from conversations.models import Request, TokenCalibration
from pipeline.context import build_context
from pipeline.processing import process_request
from pipeline.services import submit_request
from pipeline.streaming import Outcome
from routing.models import Route
from tests import personas
from tests.conversations.helpers import History

LONG_QUESTION = "Please explain how the scheduler picks the next request when several models wait. " * 10


class NextRatioTests:
    def test_the_first_sample_sets_the_ratio(self):
        assert next_ratio(1.0, 1.4, samples=0) == pytest.approx(1.4)

    def test_it_rises_fast_and_falls_slowly(self):
        assert next_ratio(1.0, 1.4, samples=5) == pytest.approx(1.2)
        assert next_ratio(1.0, 0.9, samples=5) == pytest.approx(0.99)

    def test_a_sample_far_below_the_ratio_is_taken_for_a_prompt_cache_hit_and_ignored(self):
        assert next_ratio(1.2, 0.3, samples=5) is None

    def test_it_stays_within_its_bounds(self):
        assert next_ratio(1.9, 5.0, samples=5) == MAX_RATIO
        assert next_ratio(0.81, 0.6, samples=5) == MIN_RATIO
        assert next_ratio(1.0, 0.1, samples=0) == MIN_RATIO


@pytest.mark.django_db
class CalibrateTests:
    def test_it_stores_a_ratio_per_model_and_counts_its_samples(self):
        assert calibrate(model="qwen3:8b", estimate=1000, prompt_tokens=1300) == pytest.approx(1.3)
        calibrate(model="qwen3:8b", estimate=1000, prompt_tokens=1500)

        row = TokenCalibration.objects.get(model="qwen3:8b")
        assert row.ratio == pytest.approx(1.4)
        assert row.samples == 2
        assert ratio_for("qwen3:8b") == pytest.approx(1.4)
        assert ratio_for("never-seen:1b") == 1.0

    def test_tiny_prompts_and_missing_counts_teach_nothing(self):
        assert calibrate(model="m", estimate=20, prompt_tokens=80) is None
        assert calibrate(model="m", estimate=None, prompt_tokens=800) is None
        assert calibrate(model="m", estimate=800, prompt_tokens=None) is None
        assert not TokenCalibration.objects.exists()

    def test_a_calibrated_model_gets_fewer_turns_in_the_same_window(self):
        history = History()
        for n in range(40):
            history.say(f"question {n} " + "word " * 40)
            history.answer(f"answer {n} " + "word " * 40)
        request = history.ask("and now?")
        request.model = "dense:7b"
        route = Route.objects.create(slug="c", name="C", model="dense:7b", context_size=2048)

        plain = build_context(request=request, route=route, system_prompt="")
        TokenCalibration.objects.create(model="dense:7b", ratio=2.0, samples=10)
        calibrated = build_context(request=request, route=route, system_prompt="")

        assert len(calibrated.messages) < len(plain.messages)
        assert calibrated.tokens <= route.context_size * 0.75


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class CalibrationAfterAnswerTests:
    def test_an_answered_request_teaches_its_model_how_its_tokenizer_counts(self, fake_ollama):
        user = personas.discord_user()
        request = submit_request(
            user=user, thread=personas.thread_of(user), content=LONG_QUESTION, enqueue=False
        ).request
        fake_ollama.script("Fine.", prompt_tokens=999, completion_tokens=2)

        assert process_request(request_id=request.pk) is Outcome.DONE

        request.refresh_from_db()
        assert request.prompt_estimate and request.prompt_estimate >= 64
        row = TokenCalibration.objects.get(model="gpt-oss:20b")
        assert row.samples == 1
        assert row.ratio == pytest.approx(min(MAX_RATIO, max(MIN_RATIO, 999 / request.prompt_estimate)))

    def test_the_next_request_is_sized_with_the_learned_ratio(self, fake_ollama):
        user = personas.discord_user()
        TokenCalibration.objects.create(model="gpt-oss:20b", ratio=1.5, samples=10)
        request = submit_request(
            user=user, thread=personas.thread_of(user), content=LONG_QUESTION, enqueue=False
        ).request
        fake_ollama.script("Fine.")

        process_request(request_id=request.pk)

        request = Request.objects.get(pk=request.pk)
        body = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].body
        # The reservation (the prompt at 1.5 times the estimate, plus the answer) leaves num_predict to the window's rest.
        assert body["options"]["num_predict"] < request.route.context_size - request.prompt_estimate
