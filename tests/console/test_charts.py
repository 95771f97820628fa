"""The SVG chart helper and the percentile helper, without Django."""

from __future__ import annotations

import re

import pytest

from console.charts import OTHER, Series, bars, format_count, limit_series, nice_ceiling, stacked_bars
from console.stats import percentile


class StackedBarsTests:
    def test_it_draws_one_rect_per_non_zero_value_with_a_tooltip(self):
        svg = stacked_bars(
            ["Mon", "Tue"], [Series("general", [10, 0]), Series("code", [5, 20])], title="Tokens", unit="tokens"
        )

        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert svg.count("<rect") == 3
        assert "<title>Tue · code: 20 tokens</title>" in svg
        assert 'class="bar series-1"' in svg

    def test_bars_stack_and_the_tallest_fills_the_plot(self):
        svg = stacked_bars(["a", "b"], [Series("x", [10, 5]), Series("y", [10, 0])], title="t")

        heights = [float(h) for h in re.findall(r'<rect[^>]*height="([\d.]+)"', svg)]
        # a totals 20 (the axis top), b totals 5: a quarter of the plot.
        assert heights[0] + heights[1] == pytest.approx(2 * 2 * heights[2])

    def test_it_escapes_names_and_titles(self):
        svg = bars(["<b>"], [1], title='"quoted" & <tag>')

        assert "<b>" not in svg
        assert "&lt;b&gt;" in svg and "&quot;quoted&quot; &amp; &lt;tag&gt;" in svg

    def test_it_draws_an_empty_chart_with_axes(self):
        svg = stacked_bars(["a", "b"], [], title="nothing yet")

        assert "<rect" not in svg and 'class="grid"' in svg

    def test_a_series_of_the_wrong_length_is_refused(self):
        with pytest.raises(ValueError, match="has 1 values for 2 labels"):
            stacked_bars(["a", "b"], [Series("x", [1])], title="t")


class SeriesTests:
    def test_small_series_are_summed_as_other(self):
        series = [Series(f"s{i}", [i, 1]) for i in range(8)]

        limited = limit_series(series, keep=3)

        assert [s.name for s in limited] == ["s7", "s6", OTHER]
        assert limited[-1].values == [sum(range(6)), 6]

    def test_few_series_are_kept_largest_first(self):
        limited = limit_series([Series("a", [1]), Series("b", [5])])

        assert [s.name for s in limited] == ["b", "a"]


class AxisTests:
    @pytest.mark.parametrize(
        ("value", "expected"), [(0, 1), (0.4, 1), (1, 1), (7, 10), (150, 200), (1000, 1000), (4001, 5000)]
    )
    def test_the_axis_top_is_a_round_number(self, value, expected):
        assert nice_ceiling(value) == expected

    @pytest.mark.parametrize(("value", "text"), [(0, "0"), (950, "950"), (1200, "1.2k"), (2_000_000, "2M")])
    def test_counts_are_short(self, value, text):
        assert format_count(value) == text


class PercentileTests:
    def test_it_interpolates_between_values(self):
        assert percentile([1, 2, 3, 4], 0.5) == 2.5
        assert percentile([0, 10], 0.95) == pytest.approx(9.5)

    def test_one_value_is_every_percentile(self):
        assert percentile([3.0], 0.5) == percentile([3.0], 0.95) == 3.0

    def test_no_values_have_no_percentile(self):
        assert percentile([], 0.5) is None

    def test_a_fraction_outside_zero_to_one_is_refused(self):
        with pytest.raises(ValueError):
            percentile([1], 95)
