"""Decoding a speech clip into one mono float32 signal at the analysis rate, with clear errors for audio we cannot use.

soundfile (libsndfile 1.2.2) reads WAV, FLAC, OGG (Vorbis, Opus) and MP3; PyAV (the FFmpeg inside
its wheels) reads M4A/MP4, raw ADTS AAC (VoxCeleb2 ships M4A), and the VBR MP3s and streamed FLACs whose
length libsndfile can only guess (no Xing/Info/VBRI header, no total in STREAMINFO: `_needs_av`). Whatever the source, the clip is
refused BEFORE decoding when its decoded size (channels x rate x seconds, from the header) is over
`max_samples` or its duration over `max_seconds`; then soundfile reads it in one piece (never more
than the declared frames: with the defaults at most 23 MB of float32) and PyAV frame by frame; either
way it is mixed down to mono (the mean of the channels) and resampled once to `rate` (8 kHz) by the
same polyphase filter. Anything we cannot measure (empty, corrupt,
silent, too long, too large) is an `AudioError` whose message says in words what is wrong, so the ML
backend can log it and skip the task instead of crashing.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf

ACCEPTED_FORMATS: dict[str, str] = {"WAV": "WAV", "WAVEX": "WAV", "RF64": "WAV", "FLAC": "FLAC",
                                    "OGG": "OGG", "MP3": "MP3"}
"""libsndfile container names we accept, mapped to the name we report."""
FORMATS_IN_WORDS = "WAV, FLAC, OGG, MP3 or M4A/AAC"

ANALYSIS_RATE = 8_000
"""Every clip is resampled to this rate while it is read: one rate for every measure."""
DEFAULT_MAX_SECONDS = 60.0
DEFAULT_MAX_SAMPLES = 48_000 * 2 * 60
"""Largest decoded size accepted, channels x frames (a minute of 48 kHz stereo)."""
MAX_CHANNELS = 8
MIN_RATE, MAX_RATE = 4_000, 384_000
"""Sample rates accepted (telephone speech to studio masters); a header outside them is not speech audio."""
MAX_RATIO_TERM = 1_000
"""The largest down factor of the polyphase resampler: an odd rate (44,101 Hz) resamples through the nearest
ratio within this (rate off by under 1e-5), not a filter of 20 x 44,101 taps (seconds, and GBs for a rate
of millions)."""
CUT_SHORT = "could not decode the audio: the file is corrupt or cut short"
MIN_DECODED_SHARE = 0.9
"""A file that decodes to less than this share of the frames its header declares is cut short or corrupt
(every clip of the corpus and every test file decodes all of them): refused, not measured on a part."""
SILENCE_PEAK = 10 ** (-70 / 20)
"""A clip whose loudest sample is below -70 dBFS is taken as silent (dither and hiss stay below this)."""


class AudioError(ValueError):
    """The audio cannot be measured; the message says why, in words."""


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """A decoded clip: mono float32 samples in [-1, 1] at `sample_rate`, and what it was before."""

    samples: np.ndarray
    sample_rate: int
    format: str = "WAV"
    source_rate: int = 0
    source_channels: int = 1

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(data: bytes | str | os.PathLike, max_seconds: float = DEFAULT_MAX_SECONDS,
           max_samples: int = DEFAULT_MAX_SAMPLES, rate: int = ANALYSIS_RATE) -> DecodedAudio:
    """Decode WAV, FLAC, OGG, MP3 or M4A/AAC (bytes or a path) into mono float32 at `rate` Hz.

    Raises `AudioError` for empty data, data that is not audio or is corrupt, another format, a clip
    with no samples, one longer than `max_seconds`, one whose decoded size (channels x frames) is
    over `max_samples`, and one that is silent.
    """
    source = _source(data)
    av_format = _needs_av(source)
    if av_format:
        return _finish(*_decode_with_av(source, av_format, max_seconds, max_samples), rate, max_seconds)
    try:
        with sf.SoundFile(source) as f:
            fmt = _accepted_format(f.format)
            _check_size(f.frames, f.samplerate, f.channels, max_seconds, max_samples)
            mono = _read_mono(f)
            native, channels = int(f.samplerate), int(f.channels)
    except sf.LibsndfileError as e:
        raise AudioError(f"could not decode the audio: not a readable {FORMATS_IN_WORDS} file ({e})") from e
    except (RuntimeError, EOFError, OSError) as e:  # libsndfile reports some corrupt streams this way
        raise AudioError(f"{CUT_SHORT} ({e})") from e
    return _finish(mono, fmt, native, channels, rate, max_seconds)


def _finish(native_mono: np.ndarray, fmt: str, native: int, channels: int, rate: int,
            max_seconds: float) -> DecodedAudio:
    """Either decoder's mono signal at its own rate, resampled once to `rate` and checked."""
    mono = resample(native_mono, native, rate)
    if len(mono) == 0:
        raise AudioError("the audio has no samples (zero length)")
    _check_size(len(mono), rate, 1, max_seconds, None)
    _check_signal(mono)
    return DecodedAudio(mono, rate, fmt, native, channels)


def _source(data: bytes | str | os.PathLike):
    """A file-like object or path for the decoders; empty input is an error here, before them."""
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


def _head(source, size: int = 12, skip: int = 0) -> bytes:
    if isinstance(source, io.BytesIO):
        return source.getvalue()[skip:skip + size]
    with open(source, "rb") as f:
        f.seek(skip)
        return f.read(size)


MP3_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")
"""The first-frame headers that tell an MP3's length (LAME's and FFmpeg's Xing/Info, Fraunhofer's VBRI)."""
MP3_SCAN_BYTES = 4 * 2 ** 20
"""How much of an MP3 without such a header `_needs_av` walks frame by frame (a minute at 320 kbit/s is 2.4 MB)."""
_MP3_KBPS = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),   # MPEG-1 layer III
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}       # MPEG-2 and 2.5
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _needs_av(source) -> str | None:
    """The FFmpeg format PyAV decodes `source` in, or None for soundfile:

    - "mp4": an ISO-BMFF file (M4A/MP4, 'ftyp' at byte 4);
    - "aac": a raw ADTS stream (sync word 0xFFF, layer 0) at byte 0 or right after an ID3v2 tag;
    - "flac": a FLAC whose STREAMINFO gives no length;
    - "mp3": a VBR MP3 (layer III frames of more than one bitrate, from byte 0 or right after an ID3v2
      tag) whose first frame carries no Xing, Info or VBRI header. Without one, libsndfile takes the
      length from the first frame's bitrate: right for a constant bitrate (sox writes such files), wrong
      for a variable one. One starting with a quiet, low-bitrate frame was refused as cut short (6 s
      decoded of 32 "declared"), one starting loud was cut to a quarter of its length without a word.

    PyAV decodes every frame, so on these paths the length is what the file holds.
    """
    head = _head(source)
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"fLaC":
        return "flac" if _flac_length_unknown(_head(source, 26)) else None
    skip = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # ID3v2: a 10-byte header, a syncsafe size, maybe a footer
        skip = 10 + (head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]) + (10 if head[5] & 0x10 else 0)
    first = _head(source, 48, skip)
    if len(first) >= 2 and first[0] == 0xFF and first[1] & 0xF6 == 0xF0:  # FFmpeg's ADTS reader skips the tag
        return "aac"
    if _mp3_frame(first) is None or any(tag in first for tag in MP3_LENGTH_TAGS):
        return None
    return "mp3" if _mp3_bitrate_varies(_head(source, MP3_SCAN_BYTES, skip)) else None


def _flac_length_unknown(head: bytes) -> bool:
    """Does the FLAC's STREAMINFO (the first metadata block) give 0 total samples, as an encoder writing to a
    pipe leaves it? libsndfile then reports 2^63 - 1 frames (the clip was refused as 576,460,752,303,423 s long)."""
    if len(head) < 26 or head[4] & 0x7F != 0:
        return False
    return (head[21] & 0x0F) == 0 and head[22:26] == b"\0\0\0\0"


def _mp3_frame(data: bytes, at: int = 0) -> tuple[int, int] | None:
    """(bitrate index, frame length in bytes) of the MPEG-1/2/2.5 layer III frame header at `data[at]`, or None."""
    if len(data) < at + 4 or data[at] != 0xFF:
        return None
    b1, b2 = data[at + 1], data[at + 2]
    version, index, rate_index = (b1 >> 3) & 3, b2 >> 4, (b2 >> 2) & 3
    if b1 & 0xE0 != 0xE0 or version == 1 or b1 & 0x06 != 0x02 or not 0 < index < 15 or rate_index == 3:
        return None
    per_frame = 144 if version == 3 else 72  # bytes per (bit/s / Hz): 1152 or 576 samples a frame
    kbps = _MP3_KBPS[1 if version == 3 else 2][index]
    return index, per_frame * kbps * 1000 // _MP3_RATES[version][rate_index] + ((b2 >> 1) & 1)


def _mp3_bitrate_varies(data: bytes) -> bool:
    """Do the frames of `data` (an MP3 from its first frame) come at more than one bitrate? The walk stops at
    the first byte that is not a frame header (an ID3v1 tag, junk) and decides from the frames before it."""
    at, seen = 0, set()
    while (frame := _mp3_frame(data, at)) is not None:
        seen.add(frame[0])
        if len(seen) > 1:
            return True
        at += frame[1]
    return False


def _accepted_format(container: str) -> str:
    if container not in ACCEPTED_FORMATS:
        raise AudioError(f"unsupported audio format {container}: send {FORMATS_IN_WORDS}")
    return ACCEPTED_FORMATS[container]


def _check_size(frames: int, rate: int, channels: int, max_seconds: float, max_samples: int | None) -> None:
    if frames <= 0:
        raise AudioError("the audio has no samples (zero length)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"the audio declares a sample rate of {rate:,} Hz: {MIN_RATE:,} to {MAX_RATE:,} Hz are accepted")
    seconds = frames / rate
    if seconds > max_seconds:
        raise AudioError(f"the audio is too long: {seconds:.1f} s, the limit is {max_seconds:g} s")
    if channels > MAX_CHANNELS:
        raise AudioError(f"the audio has {channels} channels, at most {MAX_CHANNELS} are accepted")
    if max_samples is not None and frames * channels > max_samples:
        raise AudioError(f"the audio is too large to decode: {channels} channel(s) x {rate} Hz x {seconds:.1f} s = "
                         f"{frames * channels:,} samples, the limit is {max_samples:,}")


def _read_mono(f: sf.SoundFile) -> np.ndarray:
    """The file in one read (at most the declared frames, which `_check_size` has bounded), mixed down.
    One read, not blocks: block by block, libsndfile's MP3 decoder logged errors on stderr at every block
    and a truncated MP3 came out at its declared length, the missing part filled from a reused buffer."""
    data = f.read(f.frames, dtype="float32", always_2d=True)  # frames given: GSM 6.10 / G.721 WAVs are not seekable
    if len(data) < MIN_DECODED_SHARE * f.frames:
        raise AudioError(f"{CUT_SHORT} ({len(data) / f.samplerate:.2f} s decoded of the "
                         f"{f.frames / f.samplerate:.2f} s its header declares)")
    return data.mean(axis=1, dtype=np.float32)


def resample(mono: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    """`mono` from `source_rate` to `rate` (polyphase, anti-aliased), float32."""
    if source_rate == rate or len(mono) == 0:
        return mono.astype(np.float32, copy=False)
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(rate, source_rate)
    if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM:
        ratio = ratio.limit_denominator(MAX_RATIO_TERM)
    up, down = ratio.numerator, ratio.denominator
    taps = _resampling_filter(up, down, mono.dtype.str)
    if (up, down) == (1, 2):
        return _halve(mono, taps)
    return resample_poly(mono, up, down, window=taps).astype(np.float32, copy=False)


def _halve(mono: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """resample_poly(mono, 1, 2) with its own filter (`taps`, 41 of them) in a third of the time, for
    the commonest case (16 kHz speech): that filter is half-band (its even taps but the centre one are
    ~1e-17, left out) and symmetric (each odd tap's two samples summed first); the same output to
    float32 rounding (3.5e-7 of the peak)."""
    half = (len(taps) - 1) // 2
    n_out = -(-len(mono) // 2)
    padded = np.zeros(half + 2 * n_out + half + 2, dtype=np.float32)
    padded[half:half + len(mono)] = mono
    odd = padded[1::2]
    out = taps[half] * padded[half:half + 2 * n_out:2]
    for j in range(half // 2):
        out += taps[2 * j + 1] * (odd[j:j + n_out] + odd[half - 1 - j:half - 1 - j + n_out])
    return out.astype(np.float32, copy=False)


@lru_cache(maxsize=16)
def _resampling_filter(up: int, down: int, dtype: str) -> np.ndarray:
    """resample_poly's own anti-aliasing FIR (Kaiser window, beta 5, half-length 10 x max(up, down),
    in the signal's dtype as resample_poly makes it), designed once per ratio instead of on every call."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    taps = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(dtype)
    taps.flags.writeable = False
    return taps


def _decode_with_av(source, av_format: str, max_seconds: float, max_samples: int):
    """M4A/MP4, ADTS AAC or an MP3 of unknown length through PyAV: the header checked first (but an MP3's
    length, which is not in it), then decoded, capped as it goes, and mixed down."""
    import av

    try:
        container = av.open(source, mode="r", format=None if av_format == "mp4" else av_format)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise AudioError(f"could not decode the audio: not a readable {FORMATS_IN_WORDS} file ({e})") from e
    with container:
        streams = container.streams.audio
        if not streams:
            raise AudioError("could not decode the audio: the file holds no audio stream")
        stream = streams[0]
        channels, native = int(stream.channels or 0), int(stream.rate or stream.sample_rate or 0)
        duration = float(container.duration) / av.time_base if container.duration else None
        if channels <= 0 or native <= 0:
            raise AudioError("could not decode the audio: the stream declares no channels or rate")
        if av_format in ("mp3", "flac"):  # no length in the file (FFmpeg's would be a guess from the first frame)
            _check_size(1, native, channels, max_seconds, max_samples)
        elif duration is not None:
            _check_size(max(1, int(duration * native)), native, channels, max_seconds, max_samples)
        # a format conversion only: swresample's downmix sums stereo at -3 dB each (+3 dB against the same
        # clip in WAV); packed, as PyAV's to_ndarray of an 8-plane frame (7.1) crashes the process
        packed = av.AudioResampler(format="flt")
        blocks, decoded = [], 0
        try:
            for frame in container.decode(stream):
                decoded += frame.samples * channels
                if decoded > max_samples:
                    raise AudioError(f"the audio is too large to decode: more than {max_samples:,} samples")
                if decoded > channels * native * max_seconds:
                    raise AudioError(f"the audio is too long: over {max_seconds:g} s decoded, the limit is {max_seconds:g} s")
                blocks += [_mixed_down(f, channels) for f in packed.resample(frame)]
            blocks += [_mixed_down(f, channels) for f in packed.resample(None)]
        except av.FFmpegError as e:
            raise AudioError(f"{CUT_SHORT} ({e})") from e
        fmt = {"mp4": "M4A", "aac": "AAC", "mp3": "MP3", "flac": "FLAC"}[av_format]
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32), fmt, native, channels


def _mixed_down(frame, channels: int) -> np.ndarray:
    """A packed float32 PyAV frame (interleaved channels) as the mean of its channels."""
    return frame.to_ndarray().reshape(-1, channels).mean(axis=1, dtype=np.float32)


def _check_signal(mono: np.ndarray) -> None:
    if not np.all(np.isfinite(mono)):
        raise AudioError("the audio is corrupt: it contains NaN or infinite sample values")
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"the audio is silent: its loudest sample is {_dbfs(peak)} dBFS")


def _dbfs(amplitude: float) -> str:
    return "-inf" if amplitude <= 0 else f"{20 * np.log10(amplitude):.0f}"
