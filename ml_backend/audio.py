"""Decoding a speech clip into one mono float32 signal, with clear errors for audio we cannot use.

soundfile (libsndfile 1.2.2) reads WAV, FLAC, OGG and MP3 from a path or from bytes; anything else,
and anything we could not measure (empty, silent, far too long), is an `AudioError` whose message
says in words what is wrong, so the ML backend can log it and skip the task instead of crashing.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf

ACCEPTED_FORMATS: dict[str, str] = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "FLAC": "FLAC",
                                    "OGG": "OGG", "MP3": "MP3"}
"""libsndfile container names we accept, mapped to the name we report."""

DEFAULT_MAX_SECONDS = 60.0
SILENCE_PEAK = 10 ** (-70 / 20)
"""A clip whose loudest sample is below -70 dBFS is taken as silent (dither and hiss stay below this)."""


class AudioError(ValueError):
    """The audio cannot be measured; the message says why, in words."""


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """A decoded clip: mono float32 samples in [-1, 1] and their sample rate."""

    samples: np.ndarray
    sample_rate: int
    format: str = "WAV"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(data: bytes | str | os.PathLike, max_seconds: float = DEFAULT_MAX_SECONDS) -> DecodedAudio:
    """Decode WAV, FLAC, OGG or MP3 (bytes or a path) into a mono float32 `DecodedAudio`.

    Raises `AudioError` for empty data, data that is not audio or is corrupt, a format other than the
    four above, a clip with no samples, one longer than `max_seconds`, and one that is silent.
    """
    source = _source(data)
    try:
        with sf.SoundFile(source) as f:
            fmt = _accepted_format(f.format)
            _check_length(f.frames, f.samplerate, max_seconds)
            samples = f.read(dtype="float32", always_2d=True)
            rate = f.samplerate
    except sf.LibsndfileError as e:
        raise AudioError(f"could not decode the audio: not a readable WAV, FLAC, OGG or MP3 file ({e})") from e
    except (RuntimeError, EOFError, OSError) as e:  # libsndfile reports some corrupt streams this way
        raise AudioError(f"could not decode the audio: the file is corrupt or cut short ({e})") from e
    mono = _to_mono(samples)
    _check_length(len(mono), rate, max_seconds)
    _check_signal(mono)
    return DecodedAudio(mono, int(rate), fmt)


def _source(data: bytes | str | os.PathLike):
    """A file-like object or path for soundfile; empty input is an error here, before libsndfile."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise AudioError("the audio is empty: 0 bytes were received")
        return io.BytesIO(bytes(data))
    path = os.fspath(data)
    if not os.path.isfile(path):
        raise AudioError(f"no audio file at {path!r}")
    if os.path.getsize(path) == 0:
        raise AudioError(f"the audio file {path!r} is empty (0 bytes)")
    return path


def _accepted_format(container: str) -> str:
    if container not in ACCEPTED_FORMATS:
        raise AudioError(f"unsupported audio format {container}: send WAV, FLAC, OGG or MP3")
    return ACCEPTED_FORMATS[container]


def _check_length(frames: int, rate: int, max_seconds: float) -> None:
    if frames <= 0:
        raise AudioError("the audio has no samples (zero length)")
    seconds = frames / rate
    if seconds > max_seconds:
        raise AudioError(f"the audio is too long: {seconds:.1f} s, the limit is {max_seconds:g} s")


def _to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels; a (frames, channels) array becomes a contiguous float32 vector."""
    return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32))


def _check_signal(mono: np.ndarray) -> None:
    if not np.all(np.isfinite(mono)):
        raise AudioError("the audio is corrupt: it contains NaN or infinite sample values")
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"the audio is silent: its loudest sample is {_dbfs(peak)} dBFS")


def _dbfs(amplitude: float) -> str:
    return "-inf" if amplitude <= 0 else f"{20 * np.log10(amplitude):.0f}"
