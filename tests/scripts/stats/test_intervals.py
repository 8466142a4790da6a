"""scripts.stats.intervals: the Wilson interval (small and extreme samples) and the bootstrap's threshold."""

import numpy as np
import pytest

from scripts.bench.intervals import all_agree_probability, simulate
from scripts.stats.agreement import percent_agreement_sums, task_sums_ci
from scripts.stats.intervals import MIN_CLIPS_FOR_BOOTSTRAP, bootstrap_allowed, wilson, wilson_percent, z_value


def test_eight_of_eight_does_not_collapse():
    low, high = wilson_percent(8, 8)
    assert high == 100.0 and low == pytest.approx(100 * 8 / (8 + 1.959964**2), abs=1e-4)  # 67.6 %
    assert low < 70
    # the percentile bootstrap of the same 8 clips: every resample agrees, a point
    clips = [c for c in range(8) for _ in range(3)]
    stat = percent_agreement_sums(np.array(clips), np.zeros(24, dtype=np.int64), 8, 1, "all")
    assert task_sums_ci([stat], 200, 0)[0] == (100.0, 100.0)


def test_wilson_by_hand_and_bounds():
    # 5 of 10 at 95 %: centre (0.5 + 1.92/10) / (1 + 3.84/10) = 0.5, half = 1.96/1.384 * sqrt(0.025 + 0.0096)
    low, high = wilson(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 3)[0] == 0.0 and 0 < wilson(0, 3)[1] < 1
    assert wilson(3, 3)[1] == 1.0 and 0 < wilson(3, 3)[0] < 1
    assert wilson(0, 0) == (None, None) and wilson_percent(0, 0) == [None, None]
    for n in (1, 2, 7, 30, 1000):
        for x in range(0, n + 1, max(1, n // 7)):
            lo, hi = wilson(x, n)
            assert 0 <= lo <= x / n <= hi <= 1 and lo < hi
    assert wilson(50, 100, 0.99)[0] < wilson(50, 100, 0.9)[0]
    with pytest.raises(ValueError):
        wilson(4, 3)
    with pytest.raises(ValueError):
        z_value(1.0)


def test_bootstrap_threshold():
    assert not bootstrap_allowed(8) and not bootstrap_allowed(MIN_CLIPS_FOR_BOOTSTRAP - 1)
    assert bootstrap_allowed(MIN_CLIPS_FOR_BOOTSTRAP) and MIN_CLIPS_FOR_BOOTSTRAP == 30


def test_the_benchmarks_model_is_exact():
    rng = np.random.default_rng(0)
    clip, label = simulate(100_000, 0.8, rng)
    observed = percent_agreement_sums(clip, label, 100_000, 4, "all").estimate()
    assert observed == pytest.approx(100 * all_agree_probability(0.8), abs=0.5)
