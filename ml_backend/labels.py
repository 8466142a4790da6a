"""Rules that turn `Measures` into pace, pitch, volume and voice-word labels with calibrated scores, and their fit.

Each attribute is one rule over two measures: a *level* that places the clip on the attribute's
low..high scale and a *change* that says how much it moves between the parts of the clip:

- pace: log2 of the syllable rate over a reference rate (the speaker's, when the project knows
  the speaker, else the calibration's); change: `pace_change`, the tempo ratio of the parts;
- pitch: semitones from a voice reference: the speaker's own (`speaker_references`: the median F0 of
  the project's clips of that speaker, task data `speaker`, no labels needed), else a reference that
  glides smoothly from the low-voice to the high-voice one with F0 (`pitch_level`): slow enough that
  raising a voice always raises its level (at least half a semitone per semitone), so no voice class
  boundary can flip a raised voice to "low"; change: `pitch_change_st`;
- volume: the active speech level in dBFS (the raw LUFS stay in meta.measures); change:
  `volume_change_db`, the level step between the parts.

Against a speaker's reference the level thresholds are the `speaker_*` ones (a speaker's clips sit
around 0 there), otherwise the general ones.
The change is checked first: above its threshold the label is "variable"; otherwise the level
picks low, middle or high between two thresholds. The attribute values come from
`label_config.schema.ATTRIBUTES`, whose order is the contract used here: (low, middle, high, "variable").

Scores are calibrated: each rule's margin (distance of the deciding measure to the nearest threshold
that would change the label, in units of the rule's scale) goes through a logistic curve fitted on
the development part of the real-speech corpus (`scripts/bench/features.py --tune`), so a score is
the share of such pre-fills that were right there. The backend leaves an attribute empty below
CLESC_ML_MIN_SCORE. The defaults below were fitted on that development part (never on the held-out part).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from statistics import median
from typing import Callable, Iterable

from label_config.schema import ATTRIBUTES
from ml_backend.measures import Measures, semitones

CALIBRATION_VERSION = 3
"""Bump when a measure or a rule changes meaning: older calibrations are then refused (defaults used)."""

VARIABLE = "variable"
MIN_EXAMPLES = 2
"""`fit` moves a threshold only when both classes next to it have at least this many examples."""
MIN_SPEAKER_CLIPS = 3
"""A speaker's own reference (median F0 and rate of its clips in the project) needs this many clips."""

if any(len(a.values) != 4 or a.values[3] != VARIABLE for a in ATTRIBUTES.values()):
    raise ImportError("label_config.schema.ATTRIBUTES no longer lists (low, middle, high, 'variable') values")

DEFAULT_SCORE_CURVES: dict[str, tuple[float, float]] = {
    "pace": (0.08, 0.68), "pitch": (3.36, 0.02), "volume": (3.05, 2.05)}
"""(slope, offset) of score = logistic(slope * margin + offset), per attribute (fitted on the dev corpus)."""


@dataclass(frozen=True)
class Calibration:
    """Thresholds of the rules and their score curves. Units: log2 ratios, Hz, semitones (st), dBFS, dB."""

    name: str = "real-speech-dev"
    # pace: log2(syllable rate / reference) and the parts' rate ratio (Measures.pace_change)
    pace_reference_rate: float = 4.3
    pace_slow_below: float = -0.414
    pace_fast_above: float = 0.331
    pace_variable_above: float = 2.355
    # pitch: semitones from the voice reference and the step between the parts (Measures.pitch_change_st)
    low_voice_reference_hz: float = 110.0
    high_voice_reference_hz: float = 200.0
    voice_glide_st: float = 6.0
    pitch_low_below_st: float = -5.876
    pitch_high_above_st: float = 4.148
    pitch_variable_above_st: float = 12.723
    # pace and pitch relative to the speaker's own reference (its clips in the project, task data `speaker`)
    speaker_pace_slow_below: float = -0.15
    speaker_pace_fast_above: float = 0.218
    speaker_pitch_low_below_st: float = -1.767
    speaker_pitch_high_above_st: float = 2.231
    # volume: active speech level (Measures.active_level_dbfs) and the parts' level step (volume_change_db)
    volume_quiet_below_dbfs: float = -40.67
    volume_loud_above_dbfs: float = -28.671
    volume_variable_above_db: float = 12.747
    # per-speaker references (`speaker_references`): speaker -> {"f0_hz": ..., "rate": ..., "clips": n}
    speakers: dict[str, dict[str, float]] = field(default_factory=dict)
    score_curves: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SCORE_CURVES))

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
        kwargs = {k: v for k, v in data.items() if k in known}
        if "score_curves" in kwargs:
            kwargs["score_curves"] = {k: tuple(v) for k, v in kwargs["score_curves"].items()}
        return cls(**kwargs)

    def speaker(self, speaker: str | None) -> dict[str, float]:
        return self.speakers.get(speaker, {}) if speaker else {}


DEFAULT_CALIBRATION = Calibration()


def model_version(calibration: Calibration) -> str:
    """The model_version string for predictions made with this calibration.

    >>> model_version(DEFAULT_CALIBRATION)
    'audio-rules-v3-real-speech-dev'
    """
    return f"audio-rules-v{CALIBRATION_VERSION}-{calibration.name}"


def glide_reference_st(f0_hz: float, c: Calibration) -> float:
    """The voice reference (in semitones above 100 Hz) for a clip of median F0 `f0_hz`, when the speaker is unknown.

    It glides from the low-voice to the high-voice reference along a logistic curve of width
    `voice_glide_st`; its slope never exceeds gap / (4 * width), which the defaults keep at 0.5, so
    `pitch_level` rises at least half a semitone for every semitone the voice rises.
    """
    low, high = semitones(c.low_voice_reference_hz, 100.0), semitones(c.high_voice_reference_hz, 100.0)
    x = semitones(f0_hz, 100.0)
    return low + (high - low) / (1.0 + math.exp(-(x - (low + high) / 2) / c.voice_glide_st))


def pitch_level(m: Measures, c: Calibration, speaker: str | None = None) -> float:
    """Median F0 in semitones above (+) or below (-) the voice reference; NaN if unvoiced."""
    if math.isnan(m.f0_median_hz):
        return math.nan
    own = c.speaker(speaker).get("f0_hz")
    if own:
        return semitones(m.f0_median_hz, own)
    return semitones(m.f0_median_hz, 100.0) - glide_reference_st(m.f0_median_hz, c)


def speaker_references(clips: Iterable[tuple[str | None, Measures]],
                       min_clips: int = MIN_SPEAKER_CLIPS) -> dict[str, dict[str, float]]:
    """{speaker: {"f0_hz", "rate", "clips"}}: the median F0 and syllable rate of each speaker's clips
    (no labels needed), for the speakers with at least `min_clips` clips. A speaker's clips are mostly
    at its usual height and pace, so its median is its reference: a raised voice is raised from it."""
    by_speaker: dict[str, list[Measures]] = {}
    for speaker, m in clips:
        if speaker:
            by_speaker.setdefault(str(speaker), []).append(m)
    out = {}
    for speaker, items in by_speaker.items():
        if len(items) < min_clips:
            continue
        f0 = [m.f0_median_hz for m in items if m.f0_median_hz > 0]
        rate = [m.syllable_rate for m in items if m.syllable_rate > 0]
        ref: dict[str, float] = {"clips": len(items)}
        if len(f0) >= min_clips:
            ref["f0_hz"] = float(median(f0))
        if len(rate) >= min_clips:
            ref["rate"] = float(median(rate))
        out[speaker] = ref
    return out


def pace_level(m: Measures, c: Calibration, speaker: str | None = None) -> float:
    """log2 of the syllable rate over the speaker's reference rate (or the calibration's)."""
    reference = c.speaker(speaker).get("rate") or c.pace_reference_rate
    return math.log2(m.syllable_rate / reference) if m.syllable_rate > 0 else math.nan


@dataclass(frozen=True)
class Rule:
    """How one attribute is labelled: its level and change measures and the Calibration fields used."""

    attribute: str
    level: Callable[[Measures, Calibration, str | None], float]
    change: Callable[[Measures], float]
    low_field: str
    high_field: str
    variable_field: str
    change_scale: float
    """Margins on the change measure are divided by this (its typical spread on steady clips)."""
    reference_key: str | None = None
    """The key of the speaker's reference this rule's level uses (`Calibration.speakers`), if any."""
    speaker_low_field: str | None = None
    speaker_high_field: str | None = None

    @property
    def values(self) -> tuple[str, ...]:
        return ATTRIBUTES[self.attribute].values

    def uses_speaker(self, c: Calibration, speaker: str | None) -> bool:
        """Whether the level is taken against the speaker's own reference (then the speaker thresholds apply)."""
        return bool(self.reference_key and c.speaker(speaker).get(self.reference_key))

    def level_fields(self, with_speaker: bool) -> tuple[str, str]:
        if with_speaker and self.speaker_low_field:
            return self.speaker_low_field, self.speaker_high_field
        return self.low_field, self.high_field

    def thresholds(self, c: Calibration, speaker: str | None = None) -> tuple[float, float, float]:
        """(low, high, variable) thresholds of this rule in `c` (the speaker ones when `speaker` has a reference)."""
        low, high = self.level_fields(self.uses_speaker(c, speaker))
        return getattr(c, low), getattr(c, high), getattr(c, self.variable_field)


RULES: dict[str, Rule] = {
    r.attribute: r
    for r in (
        Rule("pace", pace_level, lambda m: math.log2(m.pace_change) if m.pace_change > 0 else math.nan,
             "pace_slow_below", "pace_fast_above", "pace_variable_above", 0.4,
             "rate", "speaker_pace_slow_below", "speaker_pace_fast_above"),
        Rule("pitch", pitch_level, lambda m: m.pitch_change_st,
             "pitch_low_below_st", "pitch_high_above_st", "pitch_variable_above_st", 3.0,
             "f0_hz", "speaker_pitch_low_below_st", "speaker_pitch_high_above_st"),
        Rule("volume", lambda m, c, s=None: m.active_level_dbfs, lambda m: m.volume_change_db,
             "volume_quiet_below_dbfs", "volume_loud_above_dbfs", "volume_variable_above_db", 3.0),
    )
}
if set(RULES) != set(ATTRIBUTES):
    raise ImportError(f"labels.RULES covers {sorted(RULES)}, the schema has {sorted(ATTRIBUTES)}")


def _change_threshold(rule: Rule, c: Calibration) -> float:
    t = getattr(c, rule.variable_field)
    return math.log2(t) if rule.attribute == "pace" else t


# --- labelling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """One attribute's label: the value, its calibrated score and the margin the score came from."""

    value: str
    score: float
    margin: float


def decide(m: Measures, calibration: Calibration = DEFAULT_CALIBRATION,
           speaker: str | None = None) -> dict[str, Decision]:
    """{attribute: Decision} for the attributes that could be measured (pitch needs voiced frames)."""
    out = {}
    for rule in RULES.values():
        decided = _decide_one(rule, m, calibration, speaker)
        if decided is not None:
            out[rule.attribute] = decided
    return out


def label(m: Measures, calibration: Calibration = DEFAULT_CALIBRATION,
          speaker: str | None = None) -> dict[str, tuple[str, float]]:
    """{attribute: (value, score)}: `decide` without the margins. Scores in [0, 1]."""
    return {a: (d.value, d.score) for a, d in decide(m, calibration, speaker).items()}


def margin_of(rule: Rule, m: Measures, c: Calibration, speaker: str | None = None) -> tuple[str, float] | None:
    """(value, margin): the rule's label and how far its deciding measure lies from the nearest
    threshold that would change it, in units of the rule's scale (0 on a threshold)."""
    low_t, high_t, _ = rule.thresholds(c, speaker)
    variable_t = _change_threshold(rule, c)
    level, change = rule.level(m, c, speaker), rule.change(m)
    if math.isnan(level) or math.isnan(change):
        return None
    change_margin = abs(change - variable_t) / rule.change_scale
    if change > variable_t:
        return rule.values[3], change_margin
    level_scale = (high_t - low_t) / 2
    index = _level_index(level, low_t, high_t)
    if index == 1:
        level_margin = min(level - low_t, high_t - level) / level_scale
    else:
        level_margin = (low_t - level if index == 0 else level - high_t) / level_scale
    return rule.values[index], min(level_margin, change_margin)


def _decide_one(rule: Rule, m: Measures, c: Calibration, speaker: str | None) -> Decision | None:
    decided = margin_of(rule, m, c, speaker)
    if decided is None:
        return None
    value, margin = decided
    slope, offset = c.score_curves.get(rule.attribute, DEFAULT_SCORE_CURVES[rule.attribute])
    return Decision(value, round(_logistic(slope * margin + offset), 4), margin)


def _level_index(level: float, low_t: float, high_t: float) -> int:
    """0 below the low threshold, 2 above the high one, 1 in between."""
    return 0 if level < low_t else 2 if level > high_t else 1


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def fit_score_curve(margins: list[float], correct: list[bool], iterations: int = 200) -> tuple[float, float]:
    """(slope, offset) of the logistic curve P(correct | margin), by Newton's method on the log-likelihood.

    A slope is kept >= 0 (a pre-fill further from every threshold is never less likely right).
    """
    import numpy as np

    x = np.asarray(margins, dtype=float)
    y = np.asarray(correct, dtype=float)
    w = np.zeros(2)
    features = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(features @ w, -50, 50)))
        gradient = features.T @ (y - p) - 1e-3 * w
        hessian = -(features.T * (p * (1 - p))) @ features - 1e-3 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w = w - step
        if np.abs(step).max() < 1e-8:
            break
    return max(0.0, float(w[0])), float(w[1])


# --- voice words -------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoiceRule:
    """A voice word the audio can show: the measure that shows it, the side and the threshold."""

    word: str
    measure: Callable[[Measures], float]
    below: bool
    threshold: float
    scale: float
    curve: tuple[float, float]


CROAKY_JITTER_ST = 0.72
CROAKY_HNR_DB = 6.7
"""A voice is croaky above this jitter AND below this HNR (`python -m scripts.bench features --tune`, on
the dev part: espeak-ng's +croak in 8 languages against every dev clip of real speech). Jitter alone
(the first rule, over 1.0 st) found none of the +croak clips: a fast real voice steps as far between
frames, but stays harmonic."""


def croaky_margin(m: Measures) -> float:
    """How far past both croaky thresholds the voice is (> 0: croaky), in units of 0.3 st jitter and 3 dB HNR."""
    if math.isnan(m.jitter_st) or math.isnan(m.hnr_db):
        return math.nan
    return min((m.jitter_st - CROAKY_JITTER_ST) / 0.3, (CROAKY_HNR_DB - m.hnr_db) / 3.0)


VOICE_RULES: tuple[VoiceRule, ...] = (
    # whispering: speech the VAD hears, almost none of it voiced
    VoiceRule("whispering", lambda m: m.voiced_ratio, True, 0.25, 0.1, (3.0, 1.5)),
    # monotonous: a flat intonation (p10-p90 F0 range), natural speech spans 8-12 st
    VoiceRule("monotonous", lambda m: m.f0_range_st, True, 3.0, 1.0, (3.0, 1.0)),
    # croaky: a rough voice, both irregular (large frame-to-frame F0 steps) and noisy (a low HNR)
    VoiceRule("croaky", croaky_margin, False, 0.0, 1.0, (3.0, 1.0)),
)


def voice_words(m: Measures) -> list[tuple[str, float]]:
    """[(word, score)] for the voice words the measures show, best first; a word only past its threshold."""
    out = []
    for rule in VOICE_RULES:
        value = rule.measure(m)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        margin = (rule.threshold - value if rule.below else value - rule.threshold) / rule.scale
        if margin > 0:
            out.append((rule.word, round(_logistic(rule.curve[0] * margin + rule.curve[1]), 4)))
    return sorted(out, key=lambda ws: -ws[1])


# --- fitting -----------------------------------------------------------------------------------

Pair = tuple[Measures, dict[str, str]]
"""(measures, {attribute: consensus value}); a pair may carry the speaker as labels['speaker']."""


def fit(pairs: Iterable[Pair], base: Calibration = DEFAULT_CALIBRATION,
        speakers: dict[str, dict[str, float]] | None = None) -> Calibration:
    """Refit the calibration from a project's clips and their consensus labels; deterministic.

    `pairs` are (measures, {attribute: consensus value, optionally "speaker": id}); attributes may be
    missing and values outside the schema are ignored. `speakers` are the project's speaker
    references (`speaker_references` over all its clips, labelled or not; default: `base.speakers`).

    1. each low/high threshold is set where it labels the most of the clips of the two classes it
       separates right (slow|normal, normal|fast, ...): the speaker thresholds from the clips whose
       speaker has a reference, the others from the rest;
    2. each variable threshold likewise, between the change of the clips labelled "variable" and of
       those labelled anything else.

    A threshold is a stump (`_best_threshold`): among `base`'s value and the midpoints between the
    labelled clips' measures, the one with the fewest errors, the nearest to `base`'s on a tie, so a
    project's few clips of a rare class move it only as far as they need to (the midpoint of the
    classes' medians, the first rule, moved it far past a class of one or two clips and labelled many
    steady clips "variable"). A value moves only when both groups have >= MIN_EXAMPLES clips;
    otherwise, and when the two level thresholds would cross, `base` is kept.
    The result is named "fit-<8 hex digits of its thresholds>".
    """
    pairs = list(pairs)
    fitted = replace(base, speakers=dict(base.speakers if speakers is None else speakers))
    changes: dict[str, float] = {}
    for rule in RULES.values():
        changes |= _fit_rule(rule, pairs, fitted, base)
    fitted = replace(fitted, **changes)
    return replace(fitted, name=_fit_name(fitted))


def _labelled(pairs: list[Pair], attribute: str, value: str) -> list[Pair]:
    return [(m, labels) for m, labels in pairs if labels.get(attribute) == value]


def _fit_rule(rule: Rule, pairs: list[Pair], c: Calibration, base: Calibration) -> dict[str, float]:
    """New values for the rule's Calibration fields (only those that move)."""
    low, mid, high, variable = rule.values
    changes = {}
    for with_speaker in ((False, True) if rule.speaker_low_field else (False,)):
        group = [(m, labels) for m, labels in pairs
                 if rule.uses_speaker(c, labels.get("speaker")) == with_speaker]
        levels = {v: _finite(rule.level(m, c, labels.get("speaker")) for m, labels in _labelled(group, rule.attribute, v))
                  for v in (low, mid, high)}
        low_field, high_field = rule.level_fields(with_speaker)
        low_t = _best_threshold(levels[low], levels[mid], getattr(base, low_field))
        high_t = _best_threshold(levels[mid], levels[high], getattr(base, high_field))
        new_low = low_t if low_t is not None else getattr(base, low_field)
        new_high = high_t if high_t is not None else getattr(base, high_field)
        if new_low < new_high:
            if low_t is not None:
                changes[low_field] = low_t
            if high_t is not None:
                changes[high_field] = high_t
    spreads_variable = _finite(rule.change(m) for m, _ in _labelled(pairs, rule.attribute, variable))
    spreads_steady = _finite(rule.change(m) for m, labels in pairs if labels.get(rule.attribute) in (low, mid, high))
    variable_t = _best_threshold(spreads_steady, spreads_variable, _change_threshold(rule, base))
    if variable_t is not None:
        changes[rule.variable_field] = 2 ** variable_t if rule.attribute == "pace" else variable_t
    return changes


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _best_threshold(lower: list[float], upper: list[float], current: float) -> float | None:
    """The threshold between two labelled groups (`lower` should fall below it, `upper` above) with the
    fewest errors, the nearest to `current` among equals (`current` itself is a candidate); None when a
    group has fewer than MIN_EXAMPLES clips."""
    if len(lower) < MIN_EXAMPLES or len(upper) < MIN_EXAMPLES:
        return None
    values = sorted(set(lower) | set(upper))
    candidates = [current] + [(a + b) / 2 for a, b in zip(values, values[1:])]

    def cost(t: float) -> tuple[int, float]:
        return sum(v > t for v in lower) + sum(v <= t for v in upper), abs(t - current)

    return float(min(candidates, key=cost))


def _fit_name(c: Calibration) -> str:
    thresholds = {k: v for k, v in asdict(c).items() if k != "name"}
    digest = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()
    return f"fit-{digest[:8]}"
