"""Statistics maths on samples with known answers."""

import numpy as np
import pytest

from arena.results.stats import caveats, summarize


def test_known_values():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.n == 5
    assert s.median_ms == 3.0
    assert s.mean_ms == pytest.approx(22.0)
    assert s.std_ms == pytest.approx(np.sqrt(((np.array([1, 2, 3, 4, 100]) - 22.0) ** 2).sum() / 4))
    assert s.p10_ms == pytest.approx(1.4)  # linear interpolation between the 1st and 2nd value
    assert s.p90_ms == pytest.approx(61.6)
    assert (s.min_ms, s.max_ms) == (1.0, 100.0)
    assert s.cv == pytest.approx(s.std_ms / 22.0)
    assert not s.low_sample and s.ci95_low_ms <= s.median_ms <= s.ci95_high_ms
    assert s.samples_ms == [1.0, 2.0, 3.0, 4.0, 100.0]


def test_single_sample_has_no_spread_and_no_interval():
    s = summarize([7.5])
    assert (s.median_ms, s.std_ms, s.cv, s.ci95_low_ms, s.ci95_high_ms) == (7.5, 0.0, 0.0, None, None)
    assert s.low_sample and caveats(s) == ["single call"]


def test_under_five_calls_the_median_has_no_interval():
    four, five = summarize([10.0, 10.2, 9.9, 10.1]), summarize([10.0, 10.2, 9.9, 10.1, 10.0])
    assert four.low_sample and (four.ci95_low_ms, four.ci95_high_ms) == (None, None)
    assert caveats(four) == ["n=4, low sample"]
    assert not five.low_sample and five.ci95_low_ms is not None and caveats(five) == []


def test_a_cv_over_ten_percent_is_flagged():
    under, over = summarize([100.0, 88.0, 112.0, 100.0, 100.0]), summarize([100.0, 80.0, 120.0, 100.0, 100.0])
    assert under.cv == pytest.approx(0.0849, abs=1e-4) and caveats(under) == []  # std sqrt(288 / 4)
    assert over.cv == pytest.approx(0.1414, abs=1e-4) and caveats(over) == ["CV 14%"]  # std sqrt(800 / 4)
    assert caveats(summarize([100.0, 80.0, 120.0])) == ["n=3, low sample", "CV 20%"]


def test_median_interval_is_reproducible_and_narrows_with_more_samples():
    rng = np.random.default_rng(3)
    few, many = list(rng.normal(10, 1, 10)), list(rng.normal(10, 1, 400))
    assert summarize(few).ci95_low_ms == summarize(few).ci95_low_ms
    width = lambda s: s.ci95_high_ms - s.ci95_low_ms  # noqa: E731
    assert width(summarize(many)) < width(summarize(few))


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
