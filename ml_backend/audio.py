"""Decoding a speech clip into one mono float32 signal at the analysis rate, with clear errors for audio we cannot use.

Bytes and paths are read alike, as a file that starts after any leading ID3v2 tags (`_opened`).
soundfile (libsndfile 1.2.2) reads WAV, FLAC, OGG (Vorbis, Opus) and MP3; PyAV (the FFmpeg inside
its wheels) reads M4A/MP4, raw ADTS AAC (VoxCeleb2 ships M4A), and the MP3s and streamed FLACs whose
length libsndfile can only guess (`_needs_av`). Whatever the source, the clip is refused BEFORE
decoding when its decoded size (channels x rate x seconds, from the header) is over `max_samples` or
its duration over `max_seconds` (where the file holds no length, decoding stops at them); then
soundfile reads it in one piece (never more than the declared frames: with the defaults at most 23 MB
of float32) and PyAV frame by frame; either way it is mixed down to mono (the mean of the channels)
and resampled once to `rate` (8 kHz) by the same polyphase filter. Anything we cannot measure (empty, corrupt,
silent, too long, too large) is an `AudioError` whose message says in words what is wrong, so the ML
backend can log it and skip the task instead of crashing.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
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
    """A decoded clip: mono float32 samples at `sample_rate` (in [-1, 1], but as a float file holds them), and what it was before."""

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
    with _opened(data) as source:
        av_format = _needs_av(source)
        if av_format:
            return _finish(*_decode_with_av(source, av_format, max_seconds, max_samples), rate, max_seconds)
        _refuse_a_cut_short_wav(source)
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


ID3_MAX_TAGS = 16
"""Leading ID3v2 tags skipped at most (a file may carry several; none in the wild carries this many)."""


@contextmanager
def _opened(data: bytes | str | os.PathLike):
    """The audio as a seekable binary file that starts after its leading ID3v2 tags, for both decoders.

    Bytes and paths alike: given a path, libsndfile falls back on the file name's extension (an MP3 with
    junk in front decoded from "x.mp3", not from bytes). Past the tags: libsndfile skips one tag and
    then counted its bytes in an MP3's length (a CBR clip with cover art refused as cut short or too
    long) or, reading bytes, took them off a WAV's frames (10 s decoded to 3.75 s without a word), and
    FFmpeg's ADTS and FLAC readers skip at most one."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise AudioError("the audio is empty: 0 bytes were received")
        f = io.BytesIO(bytes(data))
    else:
        path = os.fspath(data)
        if not os.path.isfile(path):
            raise AudioError(f"no audio file at {path!r}")
        if os.path.getsize(path) == 0:
            raise AudioError(f"the audio file {path!r} is empty (0 bytes)")
        f = open(path, "rb")
    with f:
        start = _after_id3(f)
        if start >= f.seek(0, io.SEEK_END):
            raise AudioError("could not decode the audio: the file holds an ID3 tag and no audio after it")
        f.seek(start)
        yield f if start == 0 else io.BufferedReader(_Skipped(f, start))


def _after_id3(f) -> int:
    """The offset of the first byte after the ID3v2 tags at the start of `f` (0 when it has none)."""
    at = 0
    for tags in range(ID3_MAX_TAGS + 1):
        f.seek(at)
        h = f.read(10)
        if len(h) < 10 or h[:3] != b"ID3" or h[3] == 0xFF or h[4] == 0xFF:
            return at
        if tags == ID3_MAX_TAGS:  # left in front, libsndfile would skip one more itself and miscount the rest
            raise AudioError(f"could not decode the audio: it starts with over {ID3_MAX_TAGS} ID3 tags")
        # the size is syncsafe: 7 bits a byte (readers mask the 8th, which some writers set)
        size = (h[6] & 0x7F) << 21 | (h[7] & 0x7F) << 14 | (h[8] & 0x7F) << 7 | (h[9] & 0x7F)
        at += 10 + size + (10 if h[5] & 0x10 else 0)  # a footer, when the flag says so
    return at


class _Skipped(io.RawIOBase):
    """`f` from `start` on, as if the file began there."""

    def __init__(self, f, start: int):
        self._f, self._start = f, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._f.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset = max(0, offset) + self._start
        return self._f.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._f.tell() - self._start


def _head(source, size: int = 12) -> bytes:
    """The first `size` bytes of `source` (its position is left at the start)."""
    source.seek(0)
    head = source.read(size)
    source.seek(0)
    return head


MP3_SCAN_BYTES = 4 * 2 ** 20
"""How much of an MP3 without a length header `_needs_av` walks frame by frame (a minute at 320 kbit/s is 2.4 MB);
a longer one goes through PyAV, which stops decoding at the caps."""
_MP3_KBPS = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),   # MPEG-1 layer III
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}       # MPEG-2 and 2.5
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits


def _needs_av(source) -> str | None:
    """The FFmpeg format PyAV decodes `source` in (a file past its ID3v2 tags), or None for soundfile:

    - "mp4": an ISO-BMFF file (M4A/MP4, 'ftyp' at byte 4);
    - "aac": a raw ADTS stream (sync word 0xFFF, layer 0);
    - "flac": a FLAC whose STREAMINFO gives no length;
    - "mp3": MPEG audio whose length libsndfile would guess or take from a header that is wrong: layer I
      or II; layer III whose frames the walk cannot follow to the end of the file; one whose Xing/Info
      or VBRI header counts fewer frames than the file holds (two files end to end; a file with more
      stays on soundfile, which refuses it as cut short); one with no such header and more than one
      bitrate. Guessed, a variable bitrate came out wrong: a file
      starting with a quiet, low-bitrate frame was refused as cut short (6 s decoded of 32 "declared"),
      one starting loud was cut to a quarter of its length without a word. A constant bitrate is
      guessed right (sox writes such files) and stays on soundfile.

    PyAV decodes every frame, so on these paths the length is what the file holds.
    """
    head = _head(source, 64)
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"fLaC":
        return "flac" if _flac_length_unknown(head) else None
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"
    header = _mpeg_audio_header(head)
    if header is None:
        return None
    if header[1] != 3:
        return "mp3"
    bitrates, frames, whole = _mp3_walk(_head(source, MP3_SCAN_BYTES))
    if not whole:
        return "mp3"
    declared = _mp3_declared_frames(head)
    if declared is not None:  # fewer than the file holds: the first of two files end to end, or a wrong count;
        return None if declared >= frames - 1 else "mp3"  # more: cut short, which soundfile then refuses
    return None if len(bitrates) == 1 else "mp3"


WAV_UNKNOWN_LENGTH = 0x7FFF0000
"""A WAV data chunk declaring at least this many bytes (or 0) was written to a pipe: its length is unknown."""
WAV_MAX_CHUNKS = 64


def _refuse_a_cut_short_wav(source) -> None:
    """AudioError when a RIFF WAV holds under MIN_DECODED_SHARE of the bytes its data chunk declares.

    libsndfile takes a WAV's frames from what the file holds, so a download cut at a third decoded
    to a third of the clip without a word (and was labelled from it).
    """
    head = _head(source, 12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    end = source.seek(0, io.SEEK_END)
    at, byte_rate = 12, 0
    try:
        for _ in range(WAV_MAX_CHUNKS):
            source.seek(at)
            chunk = source.read(8)
            if len(chunk) < 8:
                return
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"fmt ":
                fmt = source.read(16)
                byte_rate = int.from_bytes(fmt[8:12], "little") if len(fmt) == 16 else 0
            elif chunk[:4] == b"data":
                held = end - at - 8
                if 0 < size < WAV_UNKNOWN_LENGTH and held < MIN_DECODED_SHARE * size:
                    if byte_rate:
                        raise AudioError(f"{CUT_SHORT} ({held / byte_rate:.2f} s in the file of the "
                                         f"{size / byte_rate:.2f} s its header declares)")
                    raise AudioError(f"{CUT_SHORT} ({held:,} bytes of audio in the file of the {size:,} its header declares)")
                return
            at += 8 + size + (size & 1)
    finally:
        source.seek(0)


def _flac_length_unknown(head: bytes) -> bool:
    """Does the FLAC's STREAMINFO (the first metadata block) give 0 total samples, as an encoder writing to a
    pipe leaves it? libsndfile then reports 2^63 - 1 frames (the clip was refused as 576,460,752,303,423 s long)."""
    if len(head) < 26 or head[4] & 0x7F != 0:
        return False
    return (head[21] & 0x0F) == 0 and head[22:26] == b"\0\0\0\0"


def _mpeg_audio_header(data: bytes, at: int = 0) -> tuple[int, int, int, int] | None:
    """(version bits, layer 1-3, bitrate index, sample-rate index) of the MPEG audio frame header at
    `data[at]`, or None if there is none."""
    if len(data) < at + 4 or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = data[at + 1], data[at + 2]
    version, layer_bits, index, rate_index = (b1 >> 3) & 3, (b1 >> 1) & 3, b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer_bits == 0 or index == 15 or rate_index == 3:
        return None
    return version, 4 - layer_bits, index, rate_index


def _mp3_declared_frames(first: bytes) -> int | None:
    """The frame count of the first frame's Xing/Info header (when its flags say it is there) or VBRI header."""
    for tag in (b"Xing", b"Info"):
        at = first.find(tag)
        if at >= 0:
            return int.from_bytes(first[at + 8:at + 12], "big") if len(first) >= at + 12 and first[at + 7] & 1 else None
    at = first.find(b"VBRI")
    return int.from_bytes(first[at + 14:at + 18], "big") if 0 <= at and len(first) >= at + 18 else None


def _mp3_frame(data: bytes, at: int = 0) -> tuple[int, int] | None:
    """(bitrate index, frame length in bytes) of the MPEG-1/2/2.5 layer III frame header at `data[at]`, or None
    (free format, bitrate index 0, has no length in its header)."""
    header = _mpeg_audio_header(data, at)
    if header is None or header[1] != 3 or header[2] == 0:
        return None
    version, _, index, rate_index = header
    per_frame = 144 if version == 3 else 72  # bytes per (bit/s / Hz): 1152 or 576 samples a frame
    kbps = _MP3_KBPS[1 if version == 3 else 2][index]
    return index, per_frame * kbps * 1000 // _MP3_RATES[version][rate_index] + ((data[at + 2] >> 1) & 1)


def _mp3_walk(data: bytes) -> tuple[set[int], int, bool]:
    """(the bitrate indexes, the number of frames, whether the walk reached the end of the file) of the
    layer III frames of `data`, an MP3 from its first frame. The end is the end of the file (its last frame
    may be cut) or an ID3v1 tag in its last 128 bytes; a walk that stops on anything else (junk between
    frames, another layer, free format, a tag in the middle) or at the end of a longer file's first
    MP3_SCAN_BYTES does not reach it."""
    at, bitrates, frames = 0, set(), 0
    while (frame := _mp3_frame(data, at)) is not None:
        bitrates.add(frame[0])
        frames += 1
        at += frame[1]
    whole_file = len(data) < MP3_SCAN_BYTES
    if at >= len(data):
        return bitrates, frames, whole_file
    return bitrates, frames, whole_file and len(data) - at == 128 and data[at:at + 3] == b"TAG"


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

    if av_format == "mp4":
        _check_mp4_sample_tables(source, max_samples)
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
        if av_format in ("mp3", "flac", "aac"):  # no length in the file: FFmpeg's is a guess from the first frames
            _check_size(1, native, channels, max_seconds, max_samples)
        elif duration is not None:
            _check_size(max(1, int(duration * native)), native, channels, max_seconds, max_samples)
        # a format conversion only: swresample's downmix sums stereo at -3 dB each (+3 dB against the same
        # clip in WAV); packed, as PyAV's to_ndarray of an 8-plane frame (7.1) crashes the process
        packed = av.AudioResampler(format="flt")
        blocks, decoded = [], 0
        try:
            for frame in container.decode(stream):
                if frame.sample_rate != native or frame.layout.nb_channels != channels:
                    raise AudioError(f"could not decode the audio: the stream changes from {native} Hz x "
                                     f"{channels} channels to {frame.sample_rate} Hz x "
                                     f"{frame.layout.nb_channels} channels part-way through")
                decoded += frame.samples * channels
                if decoded > max_samples:
                    raise AudioError(f"the audio is too large to decode: more than {max_samples:,} samples")
                if decoded > channels * native * max_seconds:
                    raise AudioError(f"the audio is too long: over {max_seconds:g} s decoded, the limit is {max_seconds:g} s")
                blocks += [_mixed_down(f, channels) for f in packed.resample(frame)]
            blocks += [_mixed_down(f, channels) for f in packed.resample(None)]
        except AudioError:
            raise
        except (av.FFmpegError, ValueError) as e:  # PyAV raises ValueError for some streams it cannot follow
            raise AudioError(f"{CUT_SHORT} ({e})") from e
        fmt = {"mp4": "M4A", "aac": "AAC", "mp3": "MP3", "flac": "FLAC"}[av_format]
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32), fmt, native, channels


MP4_MAX_BOXES = 100_000
"""Boxes `_check_mp4_sample_tables` reads at most (an M4A holds a few dozen; a fragmented one a few per frame)."""
MP4_MAX_DEPTH = 16
"""How deep it looks into boxes within boxes (FFmpeg's own limit is 10)."""
_MP4_LEAVES = {b"mdat", b"free", b"skip", b"wide", b"stco", b"co64", b"stts", b"stsc", b"ctts", b"stss",
               b"sdtp", b"sbgp", b"sgpd", b"stsz", b"stz2", b"trun", b"elst"}
_MP4_HEADERS = (0, 4, 8, 28, 44, 64)
"""Where the first child may start in a box that holds boxes: right away (moov), after a version and flags
(meta), an entry count too (stsd), or a sample entry's fields (mp4a: 28, 44 or 64 bytes)."""


def _check_mp4_sample_tables(source, max_samples: int) -> None:
    """Refuse an MP4 whose sample tables (stsz, stz2, trun) claim more samples than the file can hold or
    than `max_samples` allows (every sample decodes to a frame at least), counting each edit (elst) as
    FFmpeg does, and one whose header is compressed (cmov), before FFmpeg builds its index in `av.open`:
    a 12.7 KB M4A claiming 89 million samples of 400 bytes took 3.2 GB there, and 1,000 edits over
    200,000 samples 2.1 GB. Every box that holds boxes is looked into, wherever it is, as FFmpeg reads a
    sample table wherever it finds one (in edts, udta, an unknown box ...)."""
    size = source.seek(0, io.SEEK_END)
    pending, seen, claimed, edits = [(0, size, 0)], 0, 0, 1
    while pending:
        at, end, depth = pending.pop()
        while (box := _mp4_box(source, at, end, top=depth == 0)) is not None:
            seen += 1
            if seen > MP4_MAX_BOXES:
                raise AudioError(f"could not decode the audio: the MP4 holds over {MP4_MAX_BOXES:,} boxes")
            kind, body, box_end = box
            if kind == b"cmov":
                raise AudioError("could not decode the audio: its MP4 header is compressed (cmov)")
            if kind in (b"stsz", b"stz2", b"trun", b"elst"):
                source.seek(body)
                fields = source.read(12)
                if len(fields) < 12:
                    raise AudioError(f"{CUT_SHORT} (an MP4 sample table is cut short)")
                if kind in (b"trun", b"elst"):
                    count, each = int.from_bytes(fields[4:8], "big"), 1
                else:
                    count = int.from_bytes(fields[8:12], "big")
                    each = int.from_bytes(fields[4:8], "big") if kind == b"stsz" else 0
                if kind == b"elst":
                    edits = max(edits, count)
                else:
                    claimed += count
                    if count * max(each, 1) > size:
                        raise AudioError(f"could not decode the audio: an MP4 sample table claims {count:,} samples "
                                         f"in a file of {size:,} bytes")
                if claimed * edits > max_samples:
                    raise AudioError(f"could not decode the audio: its MP4 sample tables claim {claimed:,} samples"
                                     + (f" in {edits:,} edits" if edits > 1 else "") + f", over {max_samples:,}")
            elif kind not in _MP4_LEAVES and depth < MP4_MAX_DEPTH:
                for skip in _MP4_HEADERS:
                    if _mp4_box(source, body + skip, box_end, top=False) is not None:
                        pending.append((body + skip, box_end, depth + 1))
                        break
            at = box_end
    source.seek(0)


def _mp4_box(source, at: int, end: int, top: bool) -> tuple[bytes, int, int] | None:
    """(type, where its body starts, where it ends) of the box at `at` within `end`, or None where there is
    none (what follows the last box of a file: an appended tag, padding)."""
    if at + 8 > end:
        return None
    source.seek(at)
    head = source.read(16)
    box_size, kind, body = int.from_bytes(head[:4], "big"), head[4:8], at + 8
    if box_size == 1:
        if len(head) < 16:
            return None
        box_size, body = int.from_bytes(head[8:16], "big"), at + 16
    elif box_size == 0 and top:
        box_size = end - at
    if box_size < body - at or at + box_size > end:
        return None
    return kind, body, at + box_size


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
