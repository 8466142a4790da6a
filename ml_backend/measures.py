"""Acoustic measures behind the pace, pitch, volume and voice-word pre-annotations.

One call, `measure(clip)`, gives a frozen `Measures`; `labels.py` turns it into labels. The clip
comes from `audio.decode` already mono at 8 kHz (one decode, one resample); here there is one Praat
Sound and one Praat pitch track, and every measure reuses them (nothing is computed twice). Each
stage is timed (`Measures.timings_ms`) so `scripts/bench/features.py` can report milliseconds per stage.

- speaking time: webrtcvad (aggressiveness 2, 30 ms frames) on the 16-bit PCM of the clip;
- pitch: Praat autocorrelation (`to_pitch_ac`, floor 60 Hz, ceiling 600 Hz, 20 ms steps), frames an
  octave away from the clip's median dropped as tracking errors; median, p10, p90, p10-p90 range;
- pace: syllable nuclei after de Jong & Wempe (2009) on a 300-3000 Hz band envelope: peaks that
  stand out by MIN_PROMINENCE_DB, above the 0.99 quantile minus 25 dB (in a much quieter part, its
  own loudest frame minus 25 dB), voiced and inside speech;
  the rate is nuclei per second of speaking time;
- volume: integrated loudness (ITU-R BS.1770, pyloudnorm) and the active speech level over VAD frames;
- change within the clip ("variable"): for cuts between 40% and 60% of the speech, the clip's two
  parts are compared: the pitch step (difference of the parts' median F0 plus the jump across the
  cut, in semitones, less the natural declination of unchanged speech), the level step (difference
  of the parts' mean power, in dB) and the tempo ratio (the mean of three log2 ratios: nuclei rate,
  mean voiced-run length, the envelope's modulation centroid, less phrase-final lengthening); the
  largest over the cuts;
- voice: the voiced share of speech (whisper has almost none), the harmonics-to-noise ratio from the
  pitch track's autocorrelation peaks (Praat's HNR definition), a jitter proxy (median frame-to-frame
  F0 change), the share of voiced frames far below the median F0 (creak), and the spectral tilt.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np
import parselmouth
import pyloudnorm
import _webrtcvad
import webrtcvad
from scipy.ndimage import maximum_filter1d
from scipy.signal import butter, find_peaks, sosfilt

from ml_backend.audio import AudioError, DecodedAudio

VAD_FRAME_S = 0.030
VAD_AGGRESSIVENESS = 2
VAD_RATES = (8000, 16000, 32000, 48000)
MIN_SPEAKING_S = 0.3
"""Less speech than this (ten VAD frames) cannot be measured: `measure` raises AudioError."""

PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 600.0
PITCH_TIME_STEP_S = 0.02
OCTAVE_ERROR_RATIO = 1.9
"""Voiced frames more than this factor above or below the clip's median F0 are taken as tracking errors."""

ENVELOPE_STEP_S = 0.010
ENVELOPE_BAND_HZ = (300.0, 3000.0)
SILENCE_DB = -25.0
"""Nuclei must stand above the 0.99 quantile of the envelope plus this (de Jong & Wempe's silence threshold)."""
QUIET_PART_S = 1.0
QUIET_PART_DB = 10.0
"""Where the loudest envelope frame within QUIET_PART_S around a peak lies more than QUIET_PART_DB below
the clip's 0.99 quantile (a part spoken much more quietly), the silence threshold is taken from that
local loudest frame instead: the clip's level then no longer decides how many of that part's syllables
count (a clip half at -24 dB lost most of them and was labelled slow)."""
MIN_PROMINENCE_DB = 2.0
MIN_NUCLEUS_GAP_S = 0.06

CUTS = tuple(q / 100 for q in range(40, 61, 5))
"""Where the clip is cut in two to look for a change: fractions of its speech span (a change half-way;
wider cuts found more natural differences between a clip's beginning and its end than changes)."""
NATURAL_PITCH_STEP_ST = -1.1
"""The median pitch step + jump across a cut of unchanged real speech (dev corpus): declination, removed."""
NATURAL_PACE_STEP = -0.11
"""The median log2 rate ratio (after / before) across a cut of unchanged real speech (dev corpus):
phrase-final lengthening, removed."""
MIN_RUN_S = 0.045
"""Voiced runs shorter than this are not counted in the mean voiced-run length."""
MIN_VOICED_PER_PART = round(0.18 / PITCH_TIME_STEP_S)
"""Pitch frames (0.18 s) each part needs for its median to count."""
LOCAL_FRAMES = round(0.3 / PITCH_TIME_STEP_S)
"""Voiced frames (~0.3 s) each side of a cut for the jump across it."""
MIN_SPEECH_PER_PART_S = 0.45
MIN_NUCLEI_PER_PART = 3

CREAK_RATIO = 0.7
"""Voiced frames below this fraction of the median F0 count as creaky."""
TILT_SPLIT_HZ = 1000.0
TILT_SEGMENT = 256
_TILT_WINDOW = np.hanning(TILT_SEGMENT + 1)[:-1]

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
    pace_change: float = 1.0
    pitch_change_st: float = 0.0
    volume_change_db: float = 0.0
    voiced_ratio: float = math.nan
    hnr_db: float = math.nan
    jitter_st: float = math.nan
    creak_ratio: float = math.nan
    spectral_tilt_db: float = math.nan
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self, timings: bool = False) -> dict:
        """The measures as a flat JSON-ready dict (NaN becomes None); `timings=True` adds `timings_ms`."""
        out = {}
        for f in _FIELDS:
            v = getattr(self, f)
            out[f] = None if isinstance(v, float) and math.isnan(v) else v
        if timings:
            out["timings_ms"] = dict(self.timings_ms)
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


_FIELDS = tuple(f.name for f in fields(Measures) if f.name != "timings_ms")


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


@dataclass(frozen=True)
class _Track:
    """The clip's pitch track: frame times, F0 (0 = unvoiced or dropped), semitones from the median, strengths."""

    times: np.ndarray
    f0: np.ndarray
    strength: np.ndarray
    raw_voiced: np.ndarray

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0


def measure(clip: DecodedAudio) -> Measures:
    """All measures of one decoded clip. Raises `AudioError` when it holds under MIN_SPEAKING_S of speech."""
    if clip.sample_rate not in VAD_RATES:
        raise AudioError(f"internal: clips are measured at {VAD_RATES} Hz, got {clip.sample_rate} Hz")
    watch = _Stopwatch()
    x, rate = clip.samples, clip.sample_rate
    with watch.stage("vad"):
        speech = speech_frames(x, rate)
    speaking_time = float(speech.sum()) * VAD_FRAME_S
    if speaking_time < MIN_SPEAKING_S:
        raise AudioError(f"no speech found in the audio: the voice activity detector heard {speaking_time:.2f} s,"
                         f" at least {MIN_SPEAKING_S:g} s are needed")
    with watch.stage("pitch"):
        sound = parselmouth.Sound(x.astype(np.float64), sampling_frequency=rate)
        track = _pitch_track(sound)
        f0 = _f0_stats(track.f0)
    with watch.stage("syllables"):
        nuclei, envelope = syllable_nuclei(x, rate, track, speech)
        count, rate_per_s, spread = _syllable_rates(nuclei, speech)
    with watch.stage("loudness"):
        frame_power = _frame_power(x, rate, len(speech))
        active, spread_db = _active_level(frame_power, speech)
        lufs, fallback = _integrated_loudness(clip, active)
    with watch.stage("change"):
        changes = _changes(track, nuclei, envelope, frame_power, speech)
    with watch.stage("voice"):
        voice = _voice(x, rate, track, speech)
    return Measures(
        duration_s=clip.duration_s,
        speaking_time_s=speaking_time,
        speech_ratio=min(1.0, speaking_time / clip.duration_s),
        syllable_count=count,
        syllable_rate=rate_per_s,
        rate_spread=spread,
        **f0,
        loudness_lufs=lufs,
        loudness_is_fallback=fallback,
        active_level_dbfs=active,
        level_spread_db=spread_db,
        **changes,
        **voice,
        timings_ms=watch.ms,
    )


# --- speaking time -----------------------------------------------------------------------------

def speech_frames(signal: np.ndarray, rate: int) -> np.ndarray:
    """Boolean mask, one entry per whole 30 ms frame: does webrtcvad hear speech?"""
    vad = webrtcvad.Vad(VAD_AGGRESSIVENESS)
    pcm = (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    n = int(round(rate * VAD_FRAME_S))
    frames = len(pcm) // (2 * n)
    # webrtcvad's C entry point on slices of one bytes object (what Vad.is_speech calls, without its
    # per-frame Python checks): the same decisions
    process, handle, size = _webrtcvad.process, vad._vad, 2 * n
    return np.fromiter((process(handle, rate, pcm[i * size:(i + 1) * size], n) for i in range(frames)),
                       dtype=bool, count=frames)


# --- pitch -------------------------------------------------------------------------------------

def _pitch_track(sound: parselmouth.Sound) -> _Track:
    pitch = sound.to_pitch_ac(time_step=PITCH_TIME_STEP_S, pitch_floor=PITCH_FLOOR_HZ,
                              pitch_ceiling=PITCH_CEILING_HZ)
    selected = pitch.selected_array
    f0 = np.array(selected["frequency"], dtype=np.float64)
    raw_voiced = f0 > 0
    if raw_voiced.any():
        middle = median(f0[raw_voiced])
        f0[(f0 > middle * OCTAVE_ERROR_RATIO) | (f0 < middle / OCTAVE_ERROR_RATIO)] = 0.0
    return _Track(np.asarray(pitch.xs()), f0, np.array(selected["strength"], dtype=np.float64), raw_voiced)


def _f0_stats(frequencies: np.ndarray) -> dict[str, float]:
    """Median, p10, p90 (Hz) of the voiced frames and the p10-p90 range in semitones; NaN if unvoiced."""
    voiced = frequencies[frequencies > 0]
    if len(voiced) == 0:
        nan = math.nan
        return {"f0_median_hz": nan, "f0_p10_hz": nan, "f0_p90_hz": nan, "f0_range_st": nan}
    p10, mid, p90 = quantiles(voiced, (0.1, 0.5, 0.9))
    return {"f0_median_hz": mid, "f0_p10_hz": p10, "f0_p90_hz": p90, "f0_range_st": semitones(p90, p10)}


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.quantile(values, qs) (its default, linear method, bit for bit) without its per-call overhead:
    one partition at the indexes the quantiles need, then numpy's own interpolation."""
    n = len(values)
    virtual = [(n - 1) * q for q in qs]
    below = [min(max(int(math.floor(v)), 0), n - 1) for v in virtual]
    above = [min(b + 1, n - 1) for b in below]
    ordered = np.partition(np.asarray(values, dtype=np.float64), sorted(set(below + above)))
    out = []
    for v, b, a in zip(virtual, below, above):
        lo, hi = float(ordered[b]), float(ordered[a])
        t = v - b
        diff = hi - lo
        out.append(hi - diff * (1 - t) if t >= 0.5 else lo + diff * t)
    return out


def median(values: np.ndarray) -> float:
    """np.median(values) bit for bit (the mean of the middle two), without its per-call overhead."""
    n = len(values)
    ordered = np.partition(values, [(n - 1) // 2, n // 2])
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)


@lru_cache(maxsize=4096)
def _hanning(n: int) -> np.ndarray:
    window = np.hanning(n)
    window.flags.writeable = False
    return window


def semitones(f: float, reference: float) -> float:
    """Distance from `reference` to `f` in semitones (12 per octave)."""
    return 12.0 * math.log2(f / reference)


# --- pace --------------------------------------------------------------------------------------

def syllable_nuclei(x: np.ndarray, rate: int, track: _Track, speech: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times (s) of syllable nuclei: prominent, voiced band-envelope peaks inside VAD speech, the
    band envelope: RMS amplitude per ENVELOPE_STEP_S frame)."""
    sos = _band_filter(rate)
    hop = int(round(rate * ENVELOPE_STEP_S))
    band = sosfilt(sos, x)
    frames = len(band) // hop
    if frames < 5:
        return np.empty(0), np.zeros(max(frames, 0))
    energy = (band[:frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    kernel = _hanning(7)[1:-1]
    db = 10 * np.log10(np.convolve(energy, kernel / kernel.sum(), mode="same") + 1e-12)
    peaks, _ = find_peaks(db, prominence=MIN_PROMINENCE_DB, distance=int(MIN_NUCLEUS_GAP_S / ENVELOPE_STEP_S))
    loudest = quantiles(db, (0.99,))[0]
    nearby = maximum_filter1d(db, size=int(QUIET_PART_S / ENVELOPE_STEP_S) | 1)[peaks]
    ceiling = np.where(nearby < loudest - QUIET_PART_DB, nearby, loudest)
    peaks = peaks[db[peaks] > ceiling + SILENCE_DB]
    times = (peaks + 0.5) * ENVELOPE_STEP_S
    voiced = np.interp(times, track.times, track.voiced.astype(float), left=0, right=0) > 0.5
    frame = np.minimum((times / VAD_FRAME_S).astype(int), len(speech) - 1)
    return times[voiced & speech[frame]], np.sqrt(energy)


@lru_cache(maxsize=8)
def _band_filter(rate: int) -> np.ndarray:
    """The envelope's band-pass (4th-order Butterworth, second-order sections), designed once per rate."""
    return butter(4, ENVELOPE_BAND_HZ, btype="band", fs=rate, output="sos")


def _row_medians(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The median of the first counts[i] values of each sorted row (as np.median computes it)."""
    i = np.arange(len(rows))
    return (rows[i, (counts - 1) // 2] + rows[i, counts // 2]) / 2


def _syllable_rates(nuclei: np.ndarray, speech: np.ndarray) -> tuple[int, float, float]:
    """(count, nuclei per second of speaking time, rate spread)."""
    speaking = float(speech.sum()) * VAD_FRAME_S
    return len(nuclei), len(nuclei) / speaking, rate_spread(_on_speaking_axis(nuclei, speech))


def _on_speaking_axis(times: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Times (s) inside VAD speech, re-expressed as seconds of speaking time (pauses cut out)."""
    if len(times) == 0:
        return times
    frame = np.minimum((times / VAD_FRAME_S).astype(int), len(speech) - 1)
    inside = speech[frame]
    speech_before = np.concatenate([[0], np.cumsum(speech)])
    return speech_before[frame[inside]] * VAD_FRAME_S + (times[inside] - frame[inside] * VAD_FRAME_S)


def rate_spread(positions: np.ndarray, min_intervals: int = 4) -> float:
    """The largest ratio of median inter-syllable intervals between an earlier and a later part (>= 1).

    Kept for meta.measures (it was the change measure of the first rules); `pace_change` decides now.
    """
    intervals = np.diff(positions)
    ks = np.arange(min_intervals, len(intervals) - min_intervals + 1)
    if len(ks) == 0:
        return 1.0
    # every split at once: row i holds the intervals before ks[i] (NaN, sorted last, after them) and
    # its complement; the median is the mean of the middle two of the sorted valid values
    earlier = np.arange(len(intervals))[None, :] < ks[:, None]
    grid = np.broadcast_to(intervals, earlier.shape)
    a = _row_medians(np.sort(np.where(earlier, grid, np.nan), axis=1), ks)
    b = _row_medians(np.sort(np.where(earlier, np.nan, grid), axis=1), len(intervals) - ks)
    low, high = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(low > 0, high / low, 1.0)
    return float(ratios.max())


# --- volume ------------------------------------------------------------------------------------

def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else FLOOR_DB


def _frame_power(x: np.ndarray, rate: int, frames: int) -> np.ndarray:
    n = int(round(rate * VAD_FRAME_S))
    return (x[:frames * n].astype(np.float64).reshape(frames, n) ** 2).mean(axis=1)


def _active_level(frame_power: np.ndarray, speech: np.ndarray, window_frames: int = 10) -> tuple[float, float]:
    """(RMS level of the VAD speech frames in dBFS, p90 - p10 of the levels of 300 ms windows of speech)."""
    speech_power = frame_power[speech]
    active = _db(float(speech_power.mean()))
    starts = np.arange(0, len(speech_power), window_frames)
    sizes = np.minimum(window_frames, len(speech_power) - starts)
    means = np.add.reduceat(speech_power, starts) / sizes
    means = means[sizes * 2 >= window_frames]
    with np.errstate(divide="ignore"):
        levels = np.where(means > 0, 10.0 * np.log10(means), FLOOR_DB)
    if len(levels) < 2:
        return active, 0.0
    p10, p90 = quantiles(levels, (0.1, 0.9))
    return active, float(p90 - p10)


def _integrated_loudness(clip: DecodedAudio, active_level: float) -> tuple[float, bool]:
    """(integrated loudness in LUFS, False), or (active speech level, True) for clips under 400 ms.

    ITU-R BS.1770-4 as pyloudnorm computes it (its K-weighting filters, 400 ms blocks with 75%
    overlap, the -70 LUFS and relative -10 LU gates), with the blocks summed at once instead of one
    Python loop per block: the same figure (tests/ml_backend/test_measures.py) in a tenth of the time."""
    if clip.duration_s < LOUDNESS_BLOCK_S:
        return active_level, True
    rate = clip.sample_rate
    y = sosfilt(_k_weighting(rate), clip.samples.astype(np.float64))
    step = 1.0 - LOUDNESS_OVERLAP
    blocks = int(np.round((len(y) / rate - LOUDNESS_BLOCK_S) / (LOUDNESS_BLOCK_S * step))) + 1
    j = np.arange(blocks)
    lower = (LOUDNESS_BLOCK_S * (j * step) * rate).astype(int)
    upper = (LOUDNESS_BLOCK_S * (j * step + 1) * rate).astype(int)
    energy = np.concatenate([[0.0], np.cumsum(y * y)])
    z = (energy[np.minimum(upper, len(y))] - energy[lower]) / (LOUDNESS_BLOCK_S * rate)
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(z)
        absolute = z[block_lufs >= -70.0]
        if not len(absolute):
            return active_level, True
        relative_gate = -0.691 + 10.0 * np.log10(absolute.mean()) - 10.0
        gated = z[(block_lufs > relative_gate) & (block_lufs > -70.0)]
        lufs = float(-0.691 + 10.0 * np.log10(gated.mean())) if len(gated) else -math.inf
    if not math.isfinite(lufs):
        return active_level, True
    return lufs, False


LOUDNESS_OVERLAP = 0.75
_K_FILTERS: dict[int, np.ndarray] = {}


def _k_weighting(rate: int) -> np.ndarray:
    """pyloudnorm's two K-weighting stages for `rate` as the sections of one filter (built once per
    rate): its two lfilter passes, each times its passband gain, in one sosfilt pass."""
    if rate not in _K_FILTERS:
        sections = []
        for stage in pyloudnorm.Meter(rate, block_size=LOUDNESS_BLOCK_S)._filters.values():
            b, a = np.asarray(stage.b, dtype=np.float64), np.asarray(stage.a, dtype=np.float64)
            sections.append(np.concatenate([stage.passband_gain * b / a[0], a / a[0]]))
        _K_FILTERS[rate] = np.array(sections)
    return _K_FILTERS[rate]


# --- change within the clip --------------------------------------------------------------------

def _changes(track: _Track, nuclei: np.ndarray, envelope: np.ndarray, frame_power: np.ndarray,
             speech: np.ndarray) -> dict[str, float]:
    """pace_change (ratio >= 1), pitch_change_st and volume_change_db (>= 0): the largest over CUTS.

    The level step is taken over the frames the VAD calls speech OR the pitch track calls voiced:
    the VAD misses speech 24 dB below the rest of the clip, the pitch track does not.
    """
    frame_t = (np.arange(len(speech)) + 0.5) * VAD_FRAME_S
    voiced_frames = np.interp(frame_t, track.times, track.raw_voiced.astype(float), left=0, right=0) > 0.5
    heard = speech | voiced_frames
    idx = np.nonzero(heard)[0]
    start, end = idx[0] * VAD_FRAME_S, (idx[-1] + 1) * VAD_FRAME_S
    voiced = track.voiced
    st = np.zeros_like(track.f0)
    if voiced.any():
        st[voiced] = 12 * np.log2(track.f0[voiced] / median(track.f0[voiced]))
    vt, vst = track.times[voiced], st[voiced]
    heard_t, heard_pow = frame_t[heard], frame_power[heard]
    sp_t = frame_t[speech]
    runs = _voiced_runs(track)
    cuts = [start + q * (end - start) for q in CUTS]
    first, last = int(start / ENVELOPE_STEP_S), int(end / ENVELOPE_STEP_S)
    edges = [int(cut / ENVELOPE_STEP_S) for cut in cuts]
    modulation = _modulation_hz(envelope, [(first, c) for c in edges] + [(c, last) for c in edges])
    # every series below is in time order, so each part of a cut is a prefix or a suffix: its size
    # is a searchsorted, its mean a difference of cumulative sums, its median one of a batch
    pitch = volume = 0.0
    k = np.searchsorted(vt, cuts)
    both = (k >= MIN_VOICED_PER_PART) & (len(vt) - k >= MIN_VOICED_PER_PART)
    if both.any():
        spans = [(0, int(c)) for c in k[both]] + [(int(c), len(vt)) for c in k[both]]
        spans += [(max(0, int(c) - LOCAL_FRAMES), int(c)) for c in k[both]]
        spans += [(int(c), int(c) + LOCAL_FRAMES) for c in k[both]]
        before, after, near_before, near_after = _span_medians(vst, spans).reshape(4, -1)
        pitch = float(np.max(np.abs((after - before) + (near_after - near_before) - NATURAL_PITCH_STEP_ST)))
    kh = np.searchsorted(heard_t, cuts)
    n_heard = len(heard_t)
    power_before = np.concatenate([[0.0], np.cumsum(heard_pow)])
    for c in kh:
        if min(c, n_heard - c) * VAD_FRAME_S >= MIN_SPEECH_PER_PART_S:
            mean_b = power_before[c] / c
            mean_a = (power_before[n_heard] - power_before[c]) / (n_heard - c)
            volume = max(volume, abs(_db(float(mean_a)) - _db(float(mean_b))))
    pace = 1.0
    parts = _PaceParts.of(sp_t, nuclei, runs)
    for i, cut in enumerate(cuts):
        pace = max(pace, _pace_step(cut, parts, modulation[i], modulation[len(cuts) + i]))
    return {"pace_change": float(pace), "pitch_change_st": float(pitch), "volume_change_db": float(volume)}


def _voiced_runs(track: _Track) -> np.ndarray:
    """(start, end) times (s) of the runs of voiced pitch frames at least MIN_RUN_S long, shape (n, 2)."""
    v = np.concatenate([[False], track.raw_voiced, [False]]).astype(np.int8)
    edges = np.diff(v)
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    if len(starts) == 0:
        return np.empty((0, 2))
    t0 = track.times[starts]
    t1 = track.times[ends - 1] + PITCH_TIME_STEP_S
    keep = (t1 - t0) >= MIN_RUN_S
    return np.stack([t0[keep], t1[keep]], axis=1)


MODULATION_FFT = 1024
_MODULATION_F = np.fft.rfftfreq(MODULATION_FFT, ENVELOPE_STEP_S)
_MODULATION_BAND = (_MODULATION_F >= 1.5) & (_MODULATION_F <= 10.0)


def _modulation_hz(envelope: np.ndarray, spans: list[tuple[int, int]]) -> list[float]:
    """The centroid (Hz) of the 1.5-10 Hz modulation spectrum of the band envelope's frames a..b, for
    each (a, b) of `spans` (NaN under 40 frames); the spans' windowed frames in one FFT."""
    out = [math.nan] * len(spans)
    rows, batch = [], []
    for i, (a, b) in enumerate(spans):
        e = envelope[a:b]
        if len(e) < 40:
            continue
        windowed = ((e - e.mean()) * _hanning(len(e)))[:MODULATION_FFT]
        row = np.zeros(MODULATION_FFT)
        row[:len(windowed)] = windowed
        rows.append(i)
        batch.append(row)
    if not rows:
        return out
    spec = (np.abs(np.fft.rfft(np.array(batch), axis=1)) ** 2)[:, _MODULATION_BAND]
    f = _MODULATION_F[_MODULATION_BAND]
    totals = spec.sum(axis=1)
    centroids = (spec * f).sum(axis=1)
    for i, total, centroid in zip(rows, totals, centroids):
        out[i] = float(centroid / total) if total > 0 else math.nan
    return out


def _span_medians(values: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """np.median of values[a:b] for each (a, b) of `spans` (b - a >= 1), all in one sort."""
    lo = np.array([a for a, _ in spans])
    counts = np.array([min(b, len(values)) - a for a, b in spans])
    index = lo[:, None] + np.arange(counts.max())[None, :]
    rows = np.where(np.arange(counts.max())[None, :] < counts[:, None],
                    values[np.minimum(index, len(values) - 1)], np.nan)
    return _row_medians(np.sort(rows, axis=1), counts)


@dataclass(frozen=True)
class _PaceParts:
    """What `_pace_step` splits at each cut, all in time order: VAD speech frame times, nuclei times,
    voiced runs' mid times and the cumulative sums of their lengths."""

    speech_t: np.ndarray
    nuclei: np.ndarray
    run_mid: np.ndarray
    run_length_before: np.ndarray

    @classmethod
    def of(cls, sp_t: np.ndarray, nuclei: np.ndarray, runs: np.ndarray) -> _PaceParts:
        mid = runs.mean(axis=1) if len(runs) else np.empty(0)
        lengths = runs[:, 1] - runs[:, 0] if len(runs) else np.empty(0)
        return cls(sp_t, nuclei, mid, np.concatenate([[0.0], np.cumsum(lengths)]))


def _pace_step(cut: float, parts: _PaceParts, mb: float, ma: float) -> float:
    """The rate ratio (>= 1) across one cut: the mean of three log2 tempo ratios (after / before) - the
    nuclei rate, the mean voiced-run length (inverted) and the envelope's modulation centroid -, less
    the natural trend; 1 when fewer than two can be measured."""
    steps = []
    k = int(np.searchsorted(parts.speech_t, cut))
    speech_b, speech_a = k * VAD_FRAME_S, (len(parts.speech_t) - k) * VAD_FRAME_S
    nb = int(np.searchsorted(parts.nuclei, cut))
    na = len(parts.nuclei) - nb
    if min(speech_b, speech_a) >= MIN_SPEECH_PER_PART_S and min(nb, na) >= MIN_NUCLEI_PER_PART:
        steps.append(math.log2((na / speech_a) / (nb / speech_b)))
    r = int(np.searchsorted(parts.run_mid, cut))
    runs_after = len(parts.run_mid) - r
    if r >= 2 and runs_after >= 2:
        total = parts.run_length_before
        steps.append(math.log2((total[r] / r) / ((total[-1] - total[r]) / runs_after)))
    if mb > 0 and ma > 0:
        steps.append(math.log2(ma / mb))
    if len(steps) < 2:
        return 1.0
    return float(2 ** abs(float(np.mean(steps)) - NATURAL_PACE_STEP))


# --- voice -------------------------------------------------------------------------------------

def _voice(x: np.ndarray, rate: int, track: _Track, speech: np.ndarray) -> dict[str, float]:
    frame_t = (np.arange(len(speech)) + 0.5) * VAD_FRAME_S
    in_speech = np.interp(track.times, frame_t, speech.astype(float)) > 0.5
    speech_pitch_frames = max(1, int(in_speech.sum()))
    out = {"voiced_ratio": float((track.raw_voiced & in_speech).sum() / speech_pitch_frames)}
    voiced = track.voiced
    if voiced.sum() >= 5:
        r = np.clip(track.strength[voiced], 1e-4, 1 - 1e-4)
        out["hnr_db"] = median(10 * np.log10(r / (1 - r)))
        f = track.f0
        both = voiced[1:] & voiced[:-1]
        steps = np.abs(12 * np.log2(f[1:][both] / f[:-1][both])) if both.any() else np.zeros(1)
        out["jitter_st"] = median(steps)
        low = track.raw_voiced & ((track.f0 == 0) | (track.f0 < CREAK_RATIO * median(f[voiced])))
        out["creak_ratio"] = float(low.sum() / max(1, int(track.raw_voiced.sum())))
    n = int(round(rate * VAD_FRAME_S))
    speech_samples = x[:len(speech) * n].reshape(len(speech), n)[speech].reshape(-1)
    if len(speech_samples) >= TILT_SEGMENT:
        # Welch's average periodogram (Hann, 50% overlap, as scipy.signal.welch), all segments in one
        # FFT. Its per-segment detrending is left out: a segment's mean times the (periodic) Hann
        # window only reaches bins 0 and 1 (31 Hz), below both bands.
        hop = TILT_SEGMENT // 2
        segments = np.lib.stride_tricks.sliding_window_view(speech_samples, TILT_SEGMENT)[::hop] * _TILT_WINDOW
        spectra = np.fft.rfft(segments, axis=1)
        power = (spectra.real ** 2 + spectra.imag ** 2).mean(axis=0)
        freqs = np.fft.rfftfreq(TILT_SEGMENT, 1.0 / rate)
        low_band = power[(freqs >= 50) & (freqs < TILT_SPLIT_HZ)].sum()
        high_band = power[(freqs >= TILT_SPLIT_HZ) & (freqs < min(4000.0, rate / 2))].sum()
        out["spectral_tilt_db"] = _db(float(high_band)) - _db(float(low_band))
    return out
