"""Acoustic measures behind the pace, pitch and volume pre-annotations.

One call, `measure(clip)`, gives a frozen `Measures`; `labels.py` turns it into labels. Each stage is
timed (`Measures.timings_ms`) so `scripts/bench/features.py` can report milliseconds per measure.

- speaking time: webrtcvad (aggressiveness 2, 30 ms frames) on 16-bit PCM resampled to 16 kHz;
- pace: syllable nuclei after de Jong & Wempe (2009): peaks of a Praat intensity contour that stand
  above a threshold set from the contour's 0.99 quantile and its median, are followed by a dip of at
  least 2 dB, and are voiced; rate = nuclei per second of speaking time, and its spread over windows;
- pitch: Praat autocorrelation (`to_pitch_ac`, floor 75 Hz, ceiling 600 Hz): median, p10, p90 and the
  p10-p90 range in semitones;
- volume: integrated loudness (ITU-R BS.1770, pyloudnorm), the active speech level over VAD frames,
  and the p10-p90 spread of 300 ms window levels over speech.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from math import gcd

import numpy as np
import parselmouth
import pyloudnorm
import webrtcvad
from scipy.signal import find_peaks, resample_poly

from ml_backend.audio import AudioError, DecodedAudio

VAD_RATE = 16_000
VAD_FRAME_S = 0.030
VAD_AGGRESSIVENESS = 2
MIN_SPEAKING_S = 0.3
"""Less speech than this (ten VAD frames) cannot be measured: `measure` raises AudioError."""

PITCH_FLOOR_HZ = 75.0
PITCH_CEILING_HZ = 600.0
PITCH_TIME_STEP_S = 0.01

INTENSITY_MIN_PITCH_HZ = 50.0
INTENSITY_TIME_STEP_S = 0.01
SILENCE_DB = -25.0
"""Nuclei must stand above the 0.99 quantile of intensity plus this (de Jong & Wempe's silence threshold)."""
IGNORANCE_DB = 0.0
"""... and above the median intensity plus this (version 3 of their script)."""
MIN_DIP_DB = 2.0
"""Intensity must fall at least this far after a peak, before the next one, for the peak to count."""

MIN_INTERVALS_PER_PART = 4
"""`rate_spread` splits the clip in two parts of at least this many inter-syllable intervals each."""

LEVEL_WINDOW_S = 0.300
LOUDNESS_BLOCK_S = 0.400
"""pyloudnorm's gating block: shorter clips fall back to the active speech level."""

FLOOR_DB = -120.0
"""Level reported for digital silence instead of -inf, so every measure is a finite float."""


@dataclass(frozen=True)
class Measures:
    """What `measure` found in one clip. Hz, semitones (st), dBFS/LUFS, seconds; NaN when not measurable."""

    duration_s: float
    speaking_time_s: float
    speech_ratio: float
    syllable_count: int
    syllable_rate: float
    rate_spread: float
    f0_median_hz: float
    f0_p10_hz: float
    f0_p90_hz: float
    f0_range_st: float
    loudness_lufs: float
    loudness_is_fallback: bool
    active_level_dbfs: float
    level_spread_db: float
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self, timings: bool = False) -> dict:
        """The measures as a flat JSON-ready dict (NaN becomes None); `timings=True` adds `timings_ms`."""
        out = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}
        if not timings:
            out.pop("timings_ms")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Measures:
        """Inverse of `to_dict` (None becomes NaN again); unknown keys are ignored."""
        kwargs = {}
        for f in fields(cls):
            if f.name in data:
                value = data[f.name]
                kwargs[f.name] = math.nan if value is None else value
        return cls(**kwargs)


class _Stopwatch:
    """Collects milliseconds per named stage."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000


def measure(clip: DecodedAudio) -> Measures:
    """All measures of one decoded clip. Raises `AudioError` when it holds under MIN_SPEAKING_S of speech."""
    watch = _Stopwatch()
    with watch.stage("prepare"):
        pcm16k = _resample(clip.samples, clip.sample_rate, VAD_RATE)
        sound = parselmouth.Sound(clip.samples.astype(np.float64), sampling_frequency=clip.sample_rate)
    with watch.stage("vad"):
        speech = speech_frames(pcm16k)
    speaking_time = float(speech.sum()) * VAD_FRAME_S
    if speaking_time < MIN_SPEAKING_S:
        raise AudioError(f"no speech found in the audio: the voice activity detector heard {speaking_time:.2f} s,"
                         f" at least {MIN_SPEAKING_S:g} s are needed")
    with watch.stage("pitch"):
        pitch = sound.to_pitch_ac(time_step=PITCH_TIME_STEP_S, pitch_floor=PITCH_FLOOR_HZ,
                                  pitch_ceiling=PITCH_CEILING_HZ)
        f0 = _f0_stats(pitch.selected_array["frequency"])
    with watch.stage("syllables"):
        nuclei = syllable_nuclei(sound, pitch)
        count, rate, spread = _syllable_rates(nuclei, speech)
    with watch.stage("loudness"):
        active, spread_db = _active_level(pcm16k, speech)
        lufs, fallback = _integrated_loudness(clip, active)
    return Measures(
        duration_s=clip.duration_s,
        speaking_time_s=speaking_time,
        speech_ratio=min(1.0, speaking_time / clip.duration_s),
        syllable_count=count,
        syllable_rate=rate,
        rate_spread=spread,
        **f0,
        loudness_lufs=lufs,
        loudness_is_fallback=fallback,
        active_level_dbfs=active,
        level_spread_db=spread_db,
        timings_ms=watch.ms,
    )


# --- speaking time -----------------------------------------------------------------------------

def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling to `target` Hz (scipy), as float32."""
    if rate == target:
        return samples
    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def speech_frames(signal16k: np.ndarray) -> np.ndarray:
    """Boolean mask, one entry per whole 30 ms frame of a 16 kHz signal: does webrtcvad hear speech?"""
    vad = webrtcvad.Vad(VAD_AGGRESSIVENESS)
    pcm = _to_pcm16(signal16k)
    n = int(round(VAD_RATE * VAD_FRAME_S))
    frames = len(pcm) // n
    return np.fromiter((vad.is_speech(pcm[i * n:(i + 1) * n].tobytes(), VAD_RATE) for i in range(frames)),
                       dtype=bool, count=frames)


def _to_pcm16(signal: np.ndarray) -> np.ndarray:
    return (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2")


# --- pace --------------------------------------------------------------------------------------

def syllable_nuclei(sound: parselmouth.Sound, pitch: parselmouth.Pitch) -> np.ndarray:
    """Times (s) of syllable nuclei: voiced intensity peaks above threshold with a dip after them."""
    intensity = sound.to_intensity(minimum_pitch=INTENSITY_MIN_PITCH_HZ, time_step=INTENSITY_TIME_STEP_S,
                                   subtract_mean=True)
    db = intensity.values[0]
    times = intensity.xs()
    if len(db) < 3:
        return np.empty(0)
    threshold = max(np.quantile(db, 0.99) + SILENCE_DB, np.median(db) + IGNORANCE_DB, db.min())
    peaks, _ = find_peaks(db)  # local maxima; a flat top counts once
    peaks = peaks[db[peaks] > threshold]
    peaks = _with_dip_after(peaks, db)
    voiced = [_is_voiced(pitch, times[p]) for p in peaks]
    return times[peaks[np.asarray(voiced, dtype=bool)]] if len(peaks) else np.empty(0)


def _with_dip_after(peaks: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Keep peaks whose intensity falls at least MIN_DIP_DB before the next peak (or the clip's end)."""
    kept = []
    for k, p in enumerate(peaks):
        end = peaks[k + 1] if k + 1 < len(peaks) else len(db) - 1
        if db[p] - db[p:end + 1].min() >= MIN_DIP_DB:
            kept.append(p)
    return np.asarray(kept, dtype=int)


def _is_voiced(pitch: parselmouth.Pitch, t: float) -> bool:
    return not math.isnan(pitch.get_value_at_time(t))


def _syllable_rates(nuclei: np.ndarray, speech: np.ndarray) -> tuple[int, float, float]:
    """(count, syllable rate, rate spread) from nucleus times and the VAD mask.

    Nuclei outside VAD speech are dropped. The rate is syllables per second of speaking time,
    counted nucleus to nucleus: (n - 1) intervals over the speaking time from the first nucleus to
    the last (pauses cut out), which leaves out the VAD's margins before the first and after the
    last syllable (they weigh heavily in 2-5 s clips). With fewer than 3 nuclei it is n over all
    speaking time.
    """
    positions = _on_speaking_axis(nuclei, speech)
    n = len(positions)
    span = positions[-1] - positions[0] if n >= 3 else 0.0
    rate = (n - 1) / span if span > 0 else n / (float(speech.sum()) * VAD_FRAME_S)
    return n, rate, rate_spread(positions)


def _on_speaking_axis(times: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Times (s) inside VAD speech, re-expressed as seconds of speaking time (pauses cut out)."""
    if len(times) == 0:
        return times
    frame = np.minimum((times / VAD_FRAME_S).astype(int), len(speech) - 1)
    inside = speech[frame]
    speech_before = np.concatenate([[0], np.cumsum(speech)])
    return speech_before[frame[inside]] * VAD_FRAME_S + (times[inside] - frame[inside] * VAD_FRAME_S)


def rate_spread(positions: np.ndarray) -> float:
    """How much the syllable rate changes within the clip: >= 1, 1 when steady or too short to tell.

    For every split of the nucleus sequence into an earlier and a later part, each with at least
    MIN_INTERVALS_PER_PART inter-syllable intervals, take the ratio of the two parts' median
    intervals (slower over faster); the spread is the largest such ratio. Medians keep one missed
    or doubled nucleus from counting as a change of pace.
    """
    intervals = np.diff(positions)
    m = MIN_INTERVALS_PER_PART
    ratios = [_slower_over_faster(np.median(intervals[:k]), np.median(intervals[k:]))
              for k in range(m, len(intervals) - m + 1)]
    return float(max(ratios, default=1.0))


def _slower_over_faster(a: float, b: float) -> float:
    low, high = sorted((a, b))
    return high / low if low > 0 else 1.0


# --- pitch -------------------------------------------------------------------------------------

def _f0_stats(frequencies: np.ndarray) -> dict[str, float]:
    """Median, p10, p90 (Hz) of the voiced frames and the p10-p90 range in semitones; NaN if unvoiced."""
    voiced = frequencies[frequencies > 0]
    if len(voiced) == 0:
        nan = math.nan
        return {"f0_median_hz": nan, "f0_p10_hz": nan, "f0_p90_hz": nan, "f0_range_st": nan}
    p10, median, p90 = (float(v) for v in np.percentile(voiced, [10, 50, 90]))
    return {"f0_median_hz": median, "f0_p10_hz": p10, "f0_p90_hz": p90, "f0_range_st": semitones(p90, p10)}


def semitones(f: float, reference: float) -> float:
    """Distance from `reference` to `f` in semitones (12 per octave)."""
    return 12.0 * math.log2(f / reference)


# --- volume ------------------------------------------------------------------------------------

def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else FLOOR_DB


def _active_level(signal16k: np.ndarray, speech: np.ndarray) -> tuple[float, float]:
    """(RMS level of the VAD speech frames in dBFS, spread of the level over the clip in dB).

    The spread is p90 - p10 of the levels of consecutive 300 ms windows of speech (pauses cut out,
    so no window is diluted by silence); 0 when there are fewer than two windows. A last, partial
    window counts when it holds at least half a window of speech.
    """
    n = int(round(VAD_RATE * VAD_FRAME_S))
    frames = signal16k[:len(speech) * n].astype(np.float64).reshape(len(speech), n)
    speech_power = (frames ** 2).mean(axis=1)[speech]
    active = _db(float(speech_power.mean()))
    per_window = int(round(LEVEL_WINDOW_S / VAD_FRAME_S))
    windows = [speech_power[i:i + per_window] for i in range(0, len(speech_power), per_window)]
    levels = [_db(float(w.mean())) for w in windows if len(w) * 2 >= per_window]
    if len(levels) < 2:
        return active, 0.0
    p10, p90 = np.percentile(levels, [10, 90])
    return active, float(p90 - p10)


def _integrated_loudness(clip: DecodedAudio, active_level: float) -> tuple[float, bool]:
    """(integrated loudness in LUFS, False), or (active speech level, True) for clips under 400 ms."""
    if clip.duration_s < LOUDNESS_BLOCK_S:
        return active_level, True
    meter = pyloudnorm.Meter(clip.sample_rate, block_size=LOUDNESS_BLOCK_S)
    lufs = float(meter.integrated_loudness(clip.samples.astype(np.float64)))
    if not math.isfinite(lufs):
        return active_level, True
    return lufs, False
