"""Pure routing helpers: the classifier's messy answers, similarity margins, rules, think values."""

from __future__ import annotations

import pytest

from routing.decisions import (
    RouteCard,
    RuleSpec,
    classifier_messages,
    classifier_schema,
    first_matching_rule,
    most_similar,
    parse_classifier_answer,
    think_value,
)

SLUGS = ["math", "simple_code", "complex_code", "reasoning", "research", "general", "vision"]


class ParseClassifierAnswerTests:
    @pytest.mark.parametrize(
        ("raw", "route"),
        [
            ('{"route": "math", "wants_file": false}', "math"),
            ("**MATH**", "math"),
            ("route: math", "math"),
            ("Route: Simple code", "simple_code"),
            ("complex-code", "complex_code"),
            ('{"route": "**Research**"}', "research"),
            ("I think this is `reasoning`, not general.", "reasoning"),
        ],
    )
    def test_it_finds_the_route_in_messy_answers(self, raw, route):
        assert parse_classifier_answer(raw, SLUGS).route == route

    @pytest.mark.parametrize("raw", ["", "   ", "junk", "mathematics!", '{"route": "poetry"}', "{not json", "null"])
    def test_junk_and_empty_answers_give_no_route(self, raw):
        assert parse_classifier_answer(raw, SLUGS).route is None

    def test_it_reads_the_wants_file_flag_from_json_and_from_text(self):
        assert parse_classifier_answer('{"route": "general", "wants_file": true}', SLUGS).wants_file is True
        assert parse_classifier_answer("route=general, wants_file: true", SLUGS).wants_file is True
        assert parse_classifier_answer('{"route": "general", "wants_file": "yes"}', SLUGS).wants_file is False


class ClassifierPromptTests:
    def test_the_schema_only_allows_known_routes_and_carries_wants_file(self):
        schema = classifier_schema(["math", "general"])

        assert schema["properties"]["route"]["enum"] == ["math", "general"]
        assert schema["required"] == ["route", "wants_file"]

    def test_the_prompt_has_descriptions_examples_and_the_recent_turns(self):
        cards = [RouteCard("math", "Numbers.", ("What is 2+2?",)), RouteCard("general", "Chat.")]

        system, user = classifier_messages(cards, [("user", "integrate x^2"), ("assistant", "x^3/3")], "and x^3?")

        assert "- math: Numbers." in system["content"] and '"What is 2+2?"' in system["content"]
        assert "user: integrate x^2\nassistant: x^3/3" in user["content"]
        assert user["content"].endswith("Latest message:\nand x^3?")


class MostSimilarTests:
    EXAMPLES = {
        "math": [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0]],
        "general": [[0.0, 1.0, 0.0]],
    }

    def test_it_decides_when_the_best_route_clears_threshold_and_margin(self):
        result = most_similar([0.9, 0.1, 0.0], self.EXAMPLES, threshold=0.8, margin=0.2)

        assert result is not None and result.route == "math"

    def test_it_abstains_when_two_routes_are_close(self):
        result = most_similar([0.4, 0.9, 0.0], self.EXAMPLES, threshold=0.5, margin=0.2)

        assert result is not None and result.route is None and result.best_route == "general"

    def test_with_top_k_a_route_needs_several_close_examples(self):
        examples = {"math": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], "general": [[0.6, 0.8, 0.0], [0.6, 0.8, 0.0]]}

        one = most_similar([1.0, 0.0, 0.0], examples, threshold=0.5, margin=0.3, top_k=1)
        two = most_similar([1.0, 0.0, 0.0], examples, threshold=0.5, margin=0.3, top_k=2)

        assert one is not None and one.route == "math"
        assert two is not None and two.route is None

    def test_it_abstains_below_the_threshold(self):
        result = most_similar([0.2, 0.0, 1.0], self.EXAMPLES, threshold=0.5, margin=0.0)

        assert result is not None and result.route is None


class RuleTests:
    def test_keywords_match_whole_words_in_any_case(self):
        spec = RuleSpec("research", "keyword", "news")
        rules = [(spec, spec.compiled())]

        assert first_matching_rule("Any NEWS today?", rules) == spec
        assert first_matching_rule("newsletter ideas", rules) is None


class ThinkValueTests:
    @pytest.mark.parametrize(
        ("route_think", "model_thinks", "preference", "expected"),
        [
            ("on", True, "auto", True),
            ("high", True, "auto", "high"),
            ("off", True, "auto", False),
            ("on", False, "auto", None),  # never ask a model that cannot think
            ("high", None, "on", None),  # capabilities unknown: leave think out
            ("off", True, "on", True),
            ("medium", True, "on", "medium"),
            ("high", True, "off", False),
        ],
    )
    def test_think_follows_route_capability_and_preference(self, route_think, model_thinks, preference, expected):
        assert think_value(route_think, model_thinks=model_thinks, preference=preference) == expected


class ThreadDecisionTests:
    """Follow-ups keep the previous turn's route unless the message clearly belongs elsewhere."""

    THRESHOLDS = {"simple_code": 0.8, "general": 0.7, "math": 0.8}
    ALLOWED = ["simple_code", "general", "math"]

    def decide(self, alone, in_context, words=4, previous="simple_code", new_topic=False):
        from routing.decisions import decide_in_thread

        return decide_in_thread(
            alone=alone,
            in_context=in_context,
            previous=previous,
            words=words,
            thresholds=self.THRESHOLDS,
            allowed=self.ALLOWED,
            lean=4.0,
            new_topic=new_topic,
        )

    def test_a_message_opening_a_new_topic_leaves_even_when_read_with_the_code_it_still_looks_like_code(self):
        # "thanks! now write me a poem about autumn" after a coding task: joined to that task, code wins.
        alone = {"general": 0.92, "simple_code": 0.05, "math": 0.03}
        in_context = {"simple_code": 0.7, "general": 0.3}

        assert self.decide(alone, in_context, new_topic=False).kept is True
        decided = self.decide(alone, in_context, new_topic=True)
        assert (decided.scored.route, decided.kept) == ("general", False)

    def test_a_new_topic_message_that_is_unsure_on_its_own_still_keeps_the_route(self):
        # "thanks, now make it faster": nothing confident alone, so it is a follow-up after all.
        decided = self.decide({"general": 0.5, "simple_code": 0.4, "math": 0.1}, {"simple_code": 0.8}, new_topic=True)

        assert (decided.scored.route, decided.kept) == ("simple_code", True)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("thanks! now write me a poem", True),
            ("Great, thanks. Can you tell me a joke?", True),
            ("unrelated: what is 17% of 240?", True),
            ("By the way, who wrote Hamlet?", True),
            ("now make it async", False),
            ("and what if n is 10?", False),
            ("thanksgiving dinner ideas", False),  # a word that merely starts the same
        ],
    )
    def test_which_messages_open_a_new_topic(self, text, expected):
        from routing.decisions import opens_a_new_topic

        assert opens_a_new_topic(text) is expected

    def test_a_short_unsure_follow_up_keeps_the_previous_route(self):
        # "and what if n is 10?" alone looks like math, unsure.
        decided = self.decide({"math": 0.6, "simple_code": 0.2, "general": 0.2}, {"math": 0.5, "simple_code": 0.4})

        assert (decided.scored.route, decided.kept) == ("simple_code", True)

    def test_a_message_that_clearly_belongs_elsewhere_leaves_the_route(self):
        # "thanks! now write me a poem"
        decided = self.decide(
            {"general": 0.95, "simple_code": 0.03, "math": 0.02}, {"general": 0.7, "simple_code": 0.3}
        )

        assert (decided.scored.route, decided.kept) == ("general", False)

    def test_confident_alone_but_not_in_context_still_keeps_the_route(self):
        decided = self.decide({"math": 0.9, "simple_code": 0.05, "general": 0.05}, {"simple_code": 0.6, "math": 0.4})

        assert (decided.scored.route, decided.kept) == ("simple_code", True)

    def test_a_long_unrelated_unsure_message_goes_to_the_classifier(self):
        assert (
            self.decide(
                {"math": 0.5, "general": 0.45, "simple_code": 0.05},
                {"math": 0.5, "general": 0.45, "simple_code": 0.05},
                words=40,
            )
            is None
        )

    def test_a_disabled_previous_route_is_not_kept(self):
        decided = self.decide({"math": 0.5, "general": 0.5}, {"math": 0.5, "general": 0.5}, previous="research")

        assert decided is None


class LinearClassifierTests:
    def test_probabilities_are_a_softmax_of_the_unit_vector(self):
        from routing.decisions import LinearClassifier, pick

        classifier = LinearClassifier(
            labels=("a", "b"), weights=((10.0, 0.0), (0.0, 10.0)), bias=(0.0, 0.0), thresholds={"a": 0.9, "b": 2.0}
        )

        scores = classifier.probabilities([3.0, 0.0])  # scaled: only the direction counts

        assert scores["a"] == pytest.approx(1 / (1 + 2.718281828**-10), rel=1e-6)
        assert pick(scores, classifier.thresholds, ["a", "b"]).route == "a"
        assert pick(classifier.probabilities([0.0, 1.0]), classifier.thresholds, ["a", "b"]).route is None
        assert pick(scores, classifier.thresholds, ["b"]).route is None  # a disabled route is never chosen
