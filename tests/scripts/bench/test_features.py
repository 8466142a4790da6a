"""The ML backend bench's tuning helpers (no corpus needed)."""

from __future__ import annotations

import math

from scripts.bench.features import _change_threshold


def test_a_variable_threshold_sits_in_the_widest_gap_not_on_a_splice():
    calm = [1.0, 2.0, 8.5, 3.0]
    splice = [16.5, 17.0, 20.0, 0.0, math.nan]  # one splice not measurable: it cannot be found
    assert _change_threshold(calm, splice) == 12.5
    # a steady clip above the splices costs more than the splices it would let through
    assert _change_threshold(calm + [18.0], splice) == 19.0
