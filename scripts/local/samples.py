"""Sample speech clips with known pace, pitch and volume, synthesised by espeak-ng and sox.

The clips in samples/clips are this module's output (committed, so the demo and tests need neither
tool). Regenerate with `clesc samples` after `apt-get install espeak-ng sox`. Every segment's
espeak-ng rate (-s, words per minute) and pitch (-p, 0-99), and the peak level sox normalises it to,
are recorded in samples/manifest.csv together with the label it was made to carry.

A segment's volume is its peak level on the real-speech corpus's scale (`corpus.VARIANTS`): loud is a
recording normalised to -3 dBFS peak, medium 12 dB and quiet 24 dB below it. (espeak-ng's own amplitude,
-a, which the first samples used, puts its default 100 as loud as a normalised recording.)
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scripts.local import corpus


def _corpus_peak(variant: str) -> float:
    """The peak level of the corpus's `variant` (a base normalised to corpus.PEAK_DBFS, then its gain)."""
    (effects,), _ = corpus.VARIANTS[variant]
    return corpus.PEAK_DBFS + (float(effects[1]) if effects else 0.0)


PEAK_DBFS: dict[str, float] = {corpus.VARIANTS[v][1]["volume"]: _corpus_peak(v) for v in ("gain-24", "gain-12", "base")}
"""A segment's volume label -> the peak level (dBFS) sox normalises it to: the corpus's quiet, medium, loud."""


@dataclass(frozen=True)
class Segment:
    text: str
    rate: int
    pitch: int
    volume: str

    @property
    def settings(self) -> str:
        return f"-s {self.rate} -p {self.pitch} peak {PEAK_DBFS[self.volume]:g} dBFS"


@dataclass(frozen=True)
class SampleClip:
    name: str
    voice: str
    segments: tuple[Segment, ...]
    pace: str
    pitch: str
    volume: str


def _one(name, voice, text, rate, pitch, labels) -> SampleClip:
    return SampleClip(name, voice, (Segment(text, rate, pitch, labels[2]),), *labels)


CLIPS: tuple[SampleClip, ...] = (
    _one("calm-slow-low-quiet", "en-us", "I think we can sit here for a while and wait.", 110, 20,
         ("slow", "low", "quiet")),
    _one("plain-normal-medium", "en-us", "The train to the city leaves at nine in the morning.", 165, 50,
         ("normal", "medium", "medium")),
    _one("rushed-fast-high-loud", "en-us", "Quick, we have to go now, the doors are closing!", 250, 80,
         ("fast", "high", "loud")),
    _one("gb-normal-low-loud", "en-gb", "Put the boxes down by the door, please.", 160, 25,
         ("normal", "low", "loud")),
    _one("female-slow-high-quiet", "en-us+f3", "Maybe tomorrow will be a better day for it.", 115, 75,
         ("slow", "high", "quiet")),
    SampleClip("variable-pace", "en-us", (
        Segment("Well, I was not sure at first,", 100, 50, "medium"),
        Segment("but then everything happened at once and we ran!", 260, 50, "medium"),
    ), "variable", "medium", "medium"),
    SampleClip("variable-volume", "en-us", (
        Segment("Can you hear me over there?", 160, 50, "quiet"),
        Segment("I said, can you hear me?", 160, 50, "loud"),
    ), "normal", "medium", "variable"),
    SampleClip("variable-pitch", "en-us", (
        Segment("It starts down here,", 160, 10, "medium"),
        Segment("and then it climbs right up high!", 160, 95, "medium"),
    ), "normal", "variable", "medium"),
)


def generate(out_dir: Path, manifest: Path) -> list[Path]:
    """Synthesise every clip into out_dir (16 kHz mono 16-bit WAV) and write the manifest CSV."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install espeak-ng sox")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            parts = []
            for i, seg in enumerate(clip.segments):
                raw, part = Path(tmp) / f"{clip.name}-{i}.raw.wav", Path(tmp) / f"{clip.name}-{i}.wav"
                subprocess.run(["espeak-ng", "-v", clip.voice, "-s", str(seg.rate), "-p", str(seg.pitch),
                                "-w", str(raw), seg.text], check=True)
                subprocess.run(["sox", str(raw), "-c", "1", "-b", "16", str(part),
                                "rate", "16000", "norm", str(PEAK_DBFS[seg.volume])], check=True)
                parts.append(str(part))
            target = out_dir / f"{clip.name}.wav"
            subprocess.run(["sox", *parts, str(target)], check=True)
            written.append(target)
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "voice", "pace", "pitch", "volume", "segments"])
        for clip in CLIPS:
            segs = " | ".join(f"{s.settings}: {s.text}" for s in clip.segments)
            w.writerow([f"clips/{clip.name}.wav", clip.voice, clip.pace, clip.pitch, clip.volume, segs])
    return written
