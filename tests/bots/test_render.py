"""Splitting answers into Discord messages: limits, code fences, and getting the text back."""

from __future__ import annotations

import random

import pytest

from bots.render import Part, join_parts, split_message, split_with_spans

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧: one glyph, five code points
THUMBS = "\U0001f44d\U0001f3fd"  # 👍🏽
HEART = "\u2764\ufe0f"  # ❤️
FLAG = "\U0001f1eb\U0001f1f7"  # 🇫🇷
ACCENT = "e\u0301"  # é as e + combining acute


def assert_recovers(text: str, limit: int) -> list[Part]:
    """The invariant every split keeps: removing the added fence lines gives the text back."""
    parts = split_with_spans(text, limit)
    assert join_parts(parts) == text
    position = 0
    for index, part in enumerate(parts):
        assert (part.start, part.body) == (position, text[part.start : part.end])
        assert part.content == part.prefix + part.body + part.suffix
        assert len(part.content) <= limit
        position = part.end
        if part.prefix:
            assert part.prefix.endswith("\n") and part.prefix.lstrip(" ")[:3] in ("```", "~~~")
            assert part.prefix[:-1] + "\n" in text[: part.start] + "\n"  # a real opening line, reused
            assert parts[index - 1].suffix
        if part.suffix:
            assert part.suffix.strip() and set(part.suffix.strip()) <= {"`", "~"}
            assert part.suffix.strip() == part.suffix.lstrip("\n")
            assert parts[index + 1].prefix
    assert position == len(text)
    assert split_message(text, limit) == [p.content for p in parts if p.content.strip()]
    return parts


class SplitMessageTests:
    def test_it_keeps_a_short_text_whole(self):
        assert split_message("Hello there.\n") == ["Hello there.\n"]

    def test_it_sends_nothing_for_empty_or_whitespace_only_text(self):
        assert split_message("") == []
        assert split_message(" \n\t\n") == []

    def test_it_keeps_exactly_two_thousand_characters_in_one_message(self):
        text = "a" * 2000

        assert split_message(text) == [text]

    def test_it_splits_two_thousand_and_one_characters_in_two(self):
        text = "a" * 2001

        assert split_message(text) == ["a" * 2000, "a"]

    def test_it_prefers_a_blank_line_to_a_line_end(self):
        first = "First paragraph line.\nSecond line of it.\n\n"
        second = "Another paragraph.\nWith two lines that go on for a while.\n"

        parts = split_message(first + second, limit=len(first) + 20)

        assert parts == [first, second]

    def test_it_splits_on_a_line_end_when_a_paragraph_is_too_long(self):
        lines = [f"line number {i}\n" for i in range(30)]
        text = "".join(lines)

        parts = split_message(text, limit=100)

        assert all(part.endswith("\n") for part in parts)
        assert "".join(parts) == text

    def test_it_cuts_an_over_long_line_after_the_last_space_near_the_limit(self):
        text = "word " * 500

        parts = split_message(text)

        assert len(parts[0]) == 2000 and parts[0].endswith(" ")
        assert "".join(parts) == text

    def test_it_cuts_an_over_long_line_without_spaces_exactly_at_the_limit(self):
        text = "x" * 1000 + " " + "y" * 4000

        parts = split_message(text)

        assert [len(p) for p in parts] == [2000, 2000, 1001]
        assert "".join(parts) == text

    def test_it_preserves_whitespace_indentation_and_the_trailing_newline(self):
        text = "".join(f"\t{'    ' * (i % 3)}item({i}, [{{'k': ({i},)}}])  \n" for i in range(200)) + "\n"

        parts = split_message(text)

        assert len(parts) > 1
        assert "".join(parts) == text
        assert parts[-1].endswith("\n\n")

    def test_it_keeps_trailing_whitespace_with_the_last_visible_part(self):
        text = "a" * 1999 + "b" + "\n\n   \n"

        parts = split_message(text)

        assert all(part.strip() for part in parts)
        assert "".join(parts) == text
        assert all(len(part) <= 2000 for part in parts)

    def test_it_keeps_leading_whitespace_of_an_over_long_first_line(self):
        text = "\n\n   " + "z" * 2500

        assert "".join(split_message(text)) == text

    @pytest.mark.parametrize("glyph", [FAMILY, THUMBS, HEART, FLAG, ACCENT])
    def test_it_never_cuts_inside_an_emoji_or_accented_letter(self, glyph):
        for offset in range(len(glyph) + 1):
            text = "x" * offset + glyph * 800

            parts = split_message(text, limit=2000)

            assert "".join(parts) == text
            for part in parts[:-1]:
                assert part.endswith(glyph) or part == "x" * offset
            for part in parts[1:]:
                assert part.startswith(glyph)

    def test_it_splits_cjk_text_by_characters(self):
        text = "漢字かな交じり文。" * 500

        parts = split_message(text)

        assert [len(p) for p in parts] == [2000, 2000, 500]
        assert "".join(parts) == text

    def test_it_rejects_a_limit_below_one(self):
        with pytest.raises(ValueError):
            split_message("text", limit=0)


def code_block(opening: str, lines: int) -> str:
    body = "".join(f"    value_{i} = compute({i})  # step {i}\n" for i in range(lines))
    closing = opening.rstrip("abcdefghijklmnopqrstuvwxyz ")
    return f"{opening}\n{body}{closing}\n"


class FenceTests:
    def test_it_closes_and_reopens_a_code_block_with_its_language(self):
        text = "Here you go:\n\n" + code_block("```python", 120) + "\nDone.\n"

        parts = split_message(text)

        assert len(parts) > 1
        assert parts[0] == "Here you go:\n\n"
        for part in parts[1:-1]:
            assert part.startswith("```python\n") and part.endswith("\n```")
        assert parts[-1].startswith("```python\n") and parts[-1].endswith("```\n\nDone.\n")
        assert_recovers(text, 2000)

    def test_it_closes_and_reopens_a_code_block_without_a_language(self):
        text = code_block("```", 120)

        parts = split_message(text)

        assert len(parts) > 1
        assert all(p.startswith("```\n") for p in parts)
        assert all(p.endswith("\n```") for p in parts[:-1])
        assert_recovers(text, 2000)

    def test_it_reopens_a_four_backtick_block_that_contains_three_backtick_lines(self):
        inner = "```js\nconsole.log(1)\n```\n" * 150
        text = "````markdown\n" + inner + "````\n"

        parts = split_message(text)

        assert len(parts) > 1
        assert all(p.startswith("````markdown\n") for p in parts)
        assert all(p.endswith("\n````") for p in parts[:-1])
        assert_recovers(text, 2000)

    def test_it_reopens_a_tilde_block_with_tildes(self):
        text = code_block("~~~ruby", 120)

        parts = split_message(text)

        assert all(p.startswith("~~~ruby\n") for p in parts)
        assert all(p.endswith("\n~~~") for p in parts[:-1])
        assert_recovers(text, 2000)

    def test_it_ignores_inline_and_double_backticks(self):
        line = "Use `x = 1` or ``a ` b`` inline, and ``` `not a fence` ``` either.\n"
        text = line * 100

        parts = split_message(text)

        assert "".join(parts) == text
        assert not any(p.startswith("```") for p in parts)

    def test_it_does_not_take_a_line_indented_four_spaces_for_a_fence(self):
        text = "    ```python\n" + "    x = 1\n" * 400

        assert "".join(split_message(text)) == text

    def test_it_takes_a_line_indented_three_spaces_for_a_fence(self):
        text = "   ```python\n" + "x = 1\n" * 400 + "   ```\n"

        parts = split_message(text)

        assert all(p.startswith("   ```python\n") for p in parts)
        assert all(p.endswith("\n```") for p in parts[:-1])

    def test_it_needs_a_closing_fence_at_least_as_long_as_the_opening(self):
        text = "````\n" + "```\nstill code\n" * 200 + "`````\nafter\n"

        parts = assert_recovers(text, 2000)

        assert parts[-1].body.endswith("`````\nafter\n")
        assert all(p.prefix == "````\n" for p in parts[1:])

    def test_it_counts_the_added_fence_lines_against_the_limit(self):
        code = "```python\n" + "a" * 1984 + "\n"  # 1995 characters of a block still open
        text = code + "b\n```\n"

        parts = split_message(text)

        assert all(len(p) <= 2000 for p in parts)
        assert parts == ["```python\n" + "a" * 1984 + "\n```", "```python\nb\n```\n"]

    def test_it_never_exceeds_the_limit_when_a_fence_is_cut_mid_line(self):
        text = "```\n" + "a" * 5000 + "\n```\n"

        parts = split_message(text)

        assert [len(p) for p in parts] == [2000, 2000, 1025]
        assert parts[0] == "```\n" + "a" * 1992 + "\n```"
        assert_recovers(text, 2000)

    def test_it_does_not_leave_an_empty_block_behind_an_opening_line(self):
        text = "Intro line\n```python\n" + "x" * 1995 + "\n```\n"

        parts = split_message(text)

        assert parts[0] == "Intro line\n"

    def test_it_leaves_a_block_the_model_never_closed_open_at_the_end(self):
        text = "```python\n" + "print(1)\n" * 300

        parts = split_with_spans(text)

        assert parts[-1].suffix == ""
        assert parts[-1].closer == "```"  # what a live preview may add
        assert "".join(split_message(text)).count("```python") == len(parts)

    def test_it_splits_a_block_with_a_huge_opening_line_like_plain_text(self):
        text = "```" + "x" * 1500 + "\n" + "code\n" * 300 + "```\n"

        parts = assert_recovers(text, 2000)

        assert all(not p.prefix and not p.suffix for p in parts)

    def test_it_keeps_windows_line_endings(self):
        text = "```python\r\n" + "x = 1\r\n" * 500 + "```\r\n"

        parts = assert_recovers(text, 2000)

        assert parts[1].prefix == "```python\r\n"


def random_text(rng: random.Random, size: int) -> str:
    pieces = [
        lambda: rng.choice(["word", "the", "answer", "naïve", "漢字", "テスト", FAMILY, THUMBS, HEART, FLAG, ACCENT]),
        lambda: " ",
        lambda: " ",
        lambda: "\t",
        lambda: "\n",
        lambda: "\n\n",
        lambda: "\r\n",
        lambda: "`x`",
        lambda: "``a ` b``",
        lambda: "\n" + rng.choice(["```", "```python", "````", "~~~", "~~~ sh", "   ```", "    ```", "``` `x`"]) + "\n",
        lambda: "\n" + rng.choice(["```", "````", "~~~", "`````", "~~~~"]) + "\n",
        lambda: "x" * rng.randint(1, 300),
        lambda: "    " + "y" * rng.randint(1, 40) + "\n",
        lambda: rng.choice("([{}])<>;:'\"\\"),
    ]
    weights = [30, 20, 5, 2, 10, 4, 1, 2, 1, 2, 2, 1, 3, 4]
    out: list[str] = []
    length = 0
    while length < size:
        piece = rng.choices(pieces, weights)[0]()
        out.append(piece)
        length += len(piece)
    return "".join(out)


SIZES = [(300, 40), (1200, 90), (6000, 2000)]
SEEDS = range(150)


class RecoveryTests:
    @pytest.mark.parametrize(("size", "limit"), SIZES)
    def test_it_gives_back_the_original_text_for_generated_answers(self, size, limit):
        for seed in SEEDS:
            text = random_text(random.Random(seed), size)

            parts = assert_recovers(text, limit)

            assert all(p.content.strip() for p in parts), seed

    @pytest.mark.parametrize(("size", "limit"), SIZES)
    def test_each_message_of_a_generated_answer_renders_on_its_own(self, size, limit):
        for seed in SEEDS:
            text = random_text(random.Random(seed), size)

            parts = split_with_spans(text, limit)

            for part in parts[:-1]:
                if part.start == 0 or text[part.start - 1] == "\n":
                    # The message alone leaves no code block open.
                    assert split_with_spans(part.content + "\n", 10**6)[0].closer == "", (seed, part)

    @pytest.mark.parametrize(("size", "limit"), SIZES)
    def test_its_settled_parts_do_not_change_as_the_text_grows(self, size, limit):
        for seed in SEEDS[::3]:
            rng = random.Random(seed)
            text = random_text(rng, size)
            full = split_with_spans(text, limit)

            for _ in range(20):
                prefix = split_with_spans(text[: rng.randint(0, len(text))], limit)
                settled = [p for p in prefix if p.settled]
                assert settled == full[: len(settled)], seed
                if settled:
                    assert split_with_spans(text, limit, after=settled[-1]) == full[len(settled) :], seed

    def test_it_settles_every_part_but_the_last_once_the_text_runs_past_them(self):
        text = "line\n" * 2000

        parts = split_with_spans(text)

        assert [p.settled for p in parts] == [True] * (len(parts) - 1) + [False]
