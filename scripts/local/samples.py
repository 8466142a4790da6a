"""Sample speech clips with known pace, pitch and volume, synthesised by espeak-ng and sox.

The clips in samples/clips are this module's output (committed, so the demo and tests need neither
tool). Regenerate with `clesc samples` after `apt-get install espeak-ng sox`. Every segment's
espeak-ng rate (-s, words per minute), pitch (-p, 0-99) and amplitude (-a) is recorded in
samples/manifest.csv together with the label it was made to carry.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    text: str
    rate: int
    pitch: int
    amplitude: int


@dataclass(frozen=True)
class SampleClip:
    name: str
    voice: str
    segments: tuple[Segment, ...]
    pace: str
    pitch: str
    volume: str


def _one(name, voice, text, rate, pitch, amplitude, labels) -> SampleClip:
    return SampleClip(name, voice, (Segment(text, rate, pitch, amplitude),), *labels)


CLIPS: tuple[SampleClip, ...] = (
    _one("calm-slow-low-quiet", "en-us", "I think we can sit here for a while and wait.", 110, 20, 40,
         ("slow", "low", "quiet")),
    _one("plain-normal-medium", "en-us", "The train to the city leaves at nine in the morning.", 165, 50, 100,
         ("normal", "medium", "medium")),
    _one("rushed-fast-high-loud", "en-us", "Quick, we have to go now, the doors are closing!", 250, 80, 140,
         ("fast", "high", "loud")),
    _one("gb-normal-low-loud", "en-gb", "Put the boxes down by the door, please.", 160, 25, 140,
         ("normal", "low", "loud")),
    _one("female-slow-high-quiet", "en-us+f3", "Maybe tomorrow will be a better day for it.", 115, 75, 45,
         ("slow", "high", "quiet")),
    SampleClip("variable-pace", "en-us", (
        Segment("Well, I was not sure at first,", 100, 50, 100),
        Segment("but then everything happened at once and we ran!", 260, 50, 100),
    ), "variable", "medium", "medium"),
    SampleClip("variable-volume", "en-us", (
        Segment("Can you hear me over there?", 160, 50, 35),
        Segment("I said, can you hear me?", 160, 50, 150),
    ), "normal", "medium", "variable"),
    SampleClip("variable-pitch", "en-us", (
        Segment("It starts down here,", 160, 10, 100),
        Segment("and then it climbs right up high!", 160, 95, 100),
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
                raw = Path(tmp) / f"{clip.name}-{i}.wav"
                subprocess.run(["espeak-ng", "-v", clip.voice, "-s", str(seg.rate), "-p", str(seg.pitch),
                                "-a", str(seg.amplitude), "-w", str(raw), seg.text], check=True)
                parts.append(str(raw))
            target = out_dir / f"{clip.name}.wav"
            subprocess.run(["sox", *parts, "-r", "16000", "-c", "1", "-b", "16", str(target)], check=True)
            written.append(target)
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "voice", "pace", "pitch", "volume", "segments"])
        for clip in CLIPS:
            segs = " | ".join(f"-s {s.rate} -p {s.pitch} -a {s.amplitude}: {s.text}" for s in clip.segments)
            w.writerow([f"clips/{clip.name}.wav", clip.voice, clip.pace, clip.pitch, clip.volume, segs])
    return written
