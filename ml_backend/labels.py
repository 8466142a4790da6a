"""Rules that turn `Measures` into pace, pitch and volume labels, and their calibration.

Each attribute is one rule over two measures: a *level* that places the clip on the attribute's
low..high scale (pace: syllable rate; pitch: semitones from a voice reference; volume: active speech
level) and a *spread* that says how much it changes within the clip (rate_spread, f0_range_st,
level_spread_db). The spread is checked first: above its threshold the label is "variable";
otherwise the level picks low, middle or high between two thresholds.

The attribute values come from `label_config.schema.ATTRIBUTES`, whose order is the contract used
here: (low, middle, high, "variable").

The default thresholds were set on the shipped samples (samples/manifest.csv, our ground truth) and
checked against a sweep of 1,050 espeak-ng clips (10 sentences, 4 voices, rate, pitch and amplitude
swept; see `scripts/bench/features.py` for the sample check). A project refits them from its own
consensus labels with `fit`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from statistics import median
from typing import Callable, Iterable

from label_config.schema import ATTRIBUTES
from ml_backend.measures import Measures, semitones

CALIBRATION_VERSION = 1
"""Bump when a measure or a rule changes meaning: older calibrations are then refused."""

VARIABLE = "variable"
MIN_EXAMPLES = 2
"""`fit` moves a threshold only when both classes next to it have at least this many examples."""

if any(len(a.values) != 4 or a.values[3] != VARIABLE for a in ATTRIBUTES.values()):
    raise ImportError("label_config.schema.ATTRIBUTES no longer lists (low, middle, high, 'variable') values")


@dataclass(frozen=True)
class Calibration:
    """Thresholds of the three rules. Units: syllables/s, Hz, semitones (st), dBFS, dB."""

    name: str = "espeak-samples"
    # pace: syllable rate (Measures.syllable_rate) and its within-clip ratio (rate_spread)
    pace_slow_below: float = 3.8
    pace_fast_above: float = 6.1
    pace_variable_above: float = 2.5
    # pitch: median f0 in semitones from the reference of its voice class
    voice_split_hz: float = 165.0
    low_voice_reference_hz: float = 104.0
    high_voice_reference_hz: float = 210.0
    pitch_low_below_st: float = -2.0
    pitch_high_above_st: float = 2.5
    pitch_variable_above_st: float = 9.0
    # volume: active speech level (Measures.active_level_dbfs) and its p10-p90 spread
    volume_quiet_below_dbfs: float = -24.0
    volume_loud_above_dbfs: float = -19.0
    volume_variable_above_db: float = 13.0

    def to_dict(self) -> dict:
        """JSON-ready dict, with the `version` of the rules it belongs to."""
        return {"version": CALIBRATION_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """Inverse of `to_dict`. Missing fields take the defaults; another `version` is a ValueError."""
        version = data.get("version", CALIBRATION_VERSION)
        if version != CALIBRATION_VERSION:
            raise ValueError(f"calibration version {version} does not match the rules' version {CALIBRATION_VERSION}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def reference_hz(self, f0_median_hz: float) -> float:
        """The voice reference for a clip: the low-voice one below `voice_split_hz`, else the high-voice one."""
        if f0_median_hz < self.voice_split_hz:
            return self.low_voice_reference_hz
        return self.high_voice_reference_hz


DEFAULT_CALIBRATION = Calibration()


def model_version(calibration: Calibration) -> str:
    """The model_version string for predictions made with this calibration, e.g. 'audio-rules-v1-espeak-samples'."""
    return f"audio-rules-v{CALIBRATION_VERSION}-{calibration.name}"


def pitch_st(m: Measures, calibration: Calibration) -> float:
    """Median f0 in semitones above (+) or below (-) the reference of its voice class; NaN if unvoiced."""
    if math.isnan(m.f0_median_hz):
        return math.nan
    return semitones(m.f0_median_hz, calibration.reference_hz(m.f0_median_hz))


@dataclass(frozen=True)
class Rule:
    """How one attribute is labelled: its level and spread measures and the Calibration fields used."""

    attribute: str
    level: Callable[[Measures, Calibration], float]
    spread: Callable[[Measures], float]
    low_field: str
    high_field: str
    variable_field: str

    @property
    def values(self) -> tuple[str, ...]:
        return ATTRIBUTES[self.attribute].values

    def thresholds(self, c: Calibration) -> tuple[float, float, float]:
        """(low, high, variable) thresholds of this rule in `c`."""
        return getattr(c, self.low_field), getattr(c, self.high_field), getattr(c, self.variable_field)


RULES: dict[str, Rule] = {
    r.attribute: r
    for r in (
        Rule("pace", lambda m, c: m.syllable_rate, lambda m: m.rate_spread,
             "pace_slow_below", "pace_fast_above", "pace_variable_above"),
        Rule("pitch", pitch_st, lambda m: m.f0_range_st,
             "pitch_low_below_st", "pitch_high_above_st", "pitch_variable_above_st"),
        Rule("volume", lambda m, c: m.active_level_dbfs, lambda m: m.level_spread_db,
             "volume_quiet_below_dbfs", "volume_loud_above_dbfs", "volume_variable_above_db"),
    )
}
if set(RULES) != set(ATTRIBUTES):
    raise ImportError(f"labels.RULES covers {sorted(RULES)}, the schema has {sorted(ATTRIBUTES)}")


# --- labelling ---------------------------------------------------------------------------------

VARIABLE_SCORE_FRACTION = 0.25
"""Spread distances are scored in units of this fraction of the variable threshold."""


def label(m: Measures, calibration: Calibration = DEFAULT_CALIBRATION) -> dict[str, tuple[str, float]]:
    """{attribute: (value, score)} for the attributes that could be measured (pitch needs voiced frames).

    The score in [0, 1] is how far the deciding measure lies from the nearest threshold that would
    change the label, squashed: tanh(distance / scale), 0 on a threshold. Scales: half the gap
    between the low and high thresholds for the level; a quarter of the variable threshold for the spread.
    """
    out = {}
    for rule in RULES.values():
        decided = _label_one(rule, m, calibration)
        if decided is not None:
            out[rule.attribute] = decided
    return out


def _label_one(rule: Rule, m: Measures, c: Calibration) -> tuple[str, float] | None:
    low_t, high_t, variable_t = rule.thresholds(c)
    level, spread = rule.level(m, c), rule.spread(m)
    if math.isnan(level) or math.isnan(spread):
        return None
    spread_margin = abs(spread - variable_t) / (variable_t * VARIABLE_SCORE_FRACTION)
    if spread > variable_t:
        return rule.values[3], _squash(spread_margin)
    level_margin = min(abs(level - low_t), abs(level - high_t)) / ((high_t - low_t) / 2)
    return rule.values[_level_index(level, low_t, high_t)], _squash(min(level_margin, spread_margin))


def _level_index(level: float, low_t: float, high_t: float) -> int:
    """0 below the low threshold, 2 above the high one, 1 in between."""
    return 0 if level < low_t else 2 if level > high_t else 1


def _squash(distance: float) -> float:
    return round(math.tanh(distance), 4)


# --- fitting -----------------------------------------------------------------------------------

Pair = tuple[Measures, dict[str, str]]


def fit(pairs: Iterable[Pair], base: Calibration = DEFAULT_CALIBRATION) -> Calibration:
    """Refit the thresholds from a project's clips and their consensus labels; deterministic.

    `pairs` are (measures, {attribute: consensus value}); attributes may be missing and values
    outside the schema are ignored. In this order:

    1. pitch references: each voice class's reference becomes the median f0 of its clips labelled
       "medium" (class by `base.voice_split_hz`);
    2. each low/high threshold becomes the midpoint between the median level of the two classes
       it separates (slow|normal, normal|fast, ...), using the references from step 1;
    3. each variable threshold becomes the midpoint between the median spread of the clips labelled
       "variable" and of those labelled anything else.

    A value moves only when both groups have >= MIN_EXAMPLES clips and their medians are in the
    expected order; otherwise, and when the two level thresholds would cross, `base` is kept.
    The result is named "fit-<8 hex digits of its thresholds>".
    """
    pairs = list(pairs)
    fitted = _fit_references(pairs, base)
    changes: dict[str, float] = {}
    for rule in RULES.values():
        changes |= _fit_rule(rule, pairs, fitted, base)
    fitted = replace(fitted, **changes)
    return replace(fitted, name=_fit_name(fitted))


def _labelled(pairs: list[Pair], attribute: str, value: str) -> list[Measures]:
    return [m for m, labels in pairs if labels.get(attribute) == value]


def _fit_references(pairs: list[Pair], base: Calibration) -> Calibration:
    medium = ATTRIBUTES["pitch"].values[1]
    f0s = [m.f0_median_hz for m in _labelled(pairs, "pitch", medium) if not math.isnan(m.f0_median_hz)]
    low_voices = [f for f in f0s if f < base.voice_split_hz]
    high_voices = [f for f in f0s if f >= base.voice_split_hz]
    changes = {}
    if len(low_voices) >= MIN_EXAMPLES:
        changes["low_voice_reference_hz"] = float(median(low_voices))
    if len(high_voices) >= MIN_EXAMPLES:
        changes["high_voice_reference_hz"] = float(median(high_voices))
    return replace(base, **changes)


def _fit_rule(rule: Rule, pairs: list[Pair], c: Calibration, base: Calibration) -> dict[str, float]:
    """New values for the rule's Calibration fields (only those that move)."""
    low, mid, high, variable = rule.values
    levels = {v: _finite(rule.level(m, c) for m in _labelled(pairs, rule.attribute, v)) for v in (low, mid, high)}
    changes = {}
    low_t = _midpoint(levels[low], levels[mid])
    high_t = _midpoint(levels[mid], levels[high])
    new_low = low_t if low_t is not None else getattr(base, rule.low_field)
    new_high = high_t if high_t is not None else getattr(base, rule.high_field)
    if new_low < new_high:
        if low_t is not None:
            changes[rule.low_field] = low_t
        if high_t is not None:
            changes[rule.high_field] = high_t
    spreads_variable = _finite(rule.spread(m) for m in _labelled(pairs, rule.attribute, variable))
    spreads_steady = _finite(rule.spread(m) for m, labels in pairs if labels.get(rule.attribute) in (low, mid, high))
    variable_t = _midpoint(spreads_steady, spreads_variable)
    if variable_t is not None:
        changes[rule.variable_field] = variable_t
    return changes


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _midpoint(lower: list[float], upper: list[float]) -> float | None:
    """Midpoint of the two groups' medians, or None when a group is too small or they are out of order."""
    if len(lower) < MIN_EXAMPLES or len(upper) < MIN_EXAMPLES:
        return None
    a, b = median(lower), median(upper)
    return float((a + b) / 2) if a < b else None


def _fit_name(c: Calibration) -> str:
    thresholds = {k: v for k, v in asdict(c).items() if k != "name"}
    digest = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()
    return f"fit-{digest[:8]}"
