"""The shipped sample clips against their generator (scripts/local/samples.py): the manifest records what
the clips were made from, and each clip sits at the peak level its volume label stands for."""

import csv

import numpy as np
import soundfile as sf

from scripts.local import corpus
from scripts.local.samples import CLIPS, PEAK_DBFS
from tests.helpers import PROJECT_ROOT

SAMPLES = PROJECT_ROOT / "samples"


def manifest() -> dict[str, dict[str, str]]:
    with (SAMPLES / "manifest.csv").open(newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def test_the_manifest_is_what_the_generator_writes():
    rows = manifest()
    assert sorted(rows) == sorted(f"clips/{c.name}.wav" for c in CLIPS)
    for clip in CLIPS:
        row = rows[f"clips/{clip.name}.wav"]
        assert (row["voice"], row["pace"], row["pitch"], row["volume"]) == (clip.voice, clip.pace, clip.pitch, clip.volume)
        assert row["segments"] == " | ".join(f"{s.settings}: {s.text}" for s in clip.segments)


def test_volume_levels_are_the_corpus_scale():
    assert PEAK_DBFS == {"loud": corpus.PEAK_DBFS, "medium": corpus.PEAK_DBFS - 12, "quiet": corpus.PEAK_DBFS - 24}
    for clip in CLIPS:
        assert {s.volume for s in clip.segments} == ({clip.volume} if clip.volume != "variable" else {"quiet", "loud"})


def test_each_clip_peaks_at_its_loudest_segments_level():
    for clip in CLIPS:
        x, _ = sf.read(SAMPLES / "clips" / f"{clip.name}.wav")
        peak_dbfs = 20 * np.log10(np.max(np.abs(x)))
        assert abs(peak_dbfs - max(PEAK_DBFS[s.volume] for s in clip.segments)) < 0.1, clip.name
