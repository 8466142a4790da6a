"""Benchmark: milliseconds per second of audio for the ML backend's measures, and label accuracy on the samples.

    .venv/bin/python -m scripts.bench features [FILES...]

Without FILES it measures samples/clips/*.wav, repeated until about 60 s of audio have been
measured. It prints the time per second of audio of the whole pipeline (decode + measure + label)
and of each stage (VAD, syllable nuclei, pitch, loudness, ...), against the floor of decoding
alone with soundfile; then the labels of the samples against samples/manifest.csv, per attribute.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter, defaultdict
from pathlib import Path

import soundfile as sf

from label_config.schema import ATTRIBUTES
from ml_backend.audio import decode
from ml_backend.labels import DEFAULT_CALIBRATION, label, model_version
from ml_backend.measures import measure

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TARGET_SECONDS = 60.0


def default_files() -> list[Path]:
    """The sample clips, repeated in order until they add up to about TARGET_SECONDS of audio."""
    clips = sorted((SAMPLES / "clips").glob("*.wav"))
    files, total = [], 0.0
    durations = {clip: sf.info(str(clip)).duration for clip in clips}
    while total < TARGET_SECONDS:
        clip = clips[len(files) % len(clips)]
        files.append(clip)
        total += durations[clip]
    return files


def time_pipeline(files: list[Path]) -> tuple[float, float, float, dict[str, float]]:
    """(audio seconds, decode-only ms, whole-pipeline ms, ms per measure stage) over all files."""
    audio_s = decode_ms = total_ms = 0.0
    stages: dict[str, float] = defaultdict(float)
    for path in files:
        data = path.read_bytes()
        start = time.perf_counter()
        sf.read(path, dtype="float32")
        decode_ms += (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        clip = decode(data)
        measures = measure(clip)
        label(measures)
        total_ms += (time.perf_counter() - start) * 1000
        audio_s += clip.duration_s
        for stage, ms in measures.timings_ms.items():
            stages[stage] += ms
    return audio_s, decode_ms, total_ms, dict(stages)


def print_timings(files: list[Path]) -> None:
    time_pipeline(files[:1])  # warm up imports and Praat
    audio_s, decode_ms, total_ms, stages = time_pipeline(files)
    print(f"{len(files)} files, {audio_s:.1f} s of audio")
    print(f"{'stage':<28}{'ms per s of audio':>18}")
    print(f"{'soundfile decode (floor)':<28}{decode_ms / audio_s:>18.2f}")
    for stage, ms in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"{'  ' + stage:<28}{ms / audio_s:>18.2f}")
    print(f"{'whole pipeline':<28}{total_ms / audio_s:>18.2f}")


def print_accuracy() -> None:
    with (SAMPLES / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    predicted = {row["file"]: label(measure(decode(SAMPLES / row["file"]))) for row in rows}
    print(f"\naccuracy on samples/manifest.csv ({model_version(DEFAULT_CALIBRATION)})")
    for attr in ATTRIBUTES:
        confusion = Counter((row[attr], predicted[row["file"]][attr][0]) for row in rows)
        correct = sum(n for (truth, guess), n in confusion.items() if truth == guess)
        misses = ", ".join(f"{truth}->{guess}" for (truth, guess), n in sorted(confusion.items()) if truth != guess)
        print(f"  {attr:<7} {correct}/{len(rows)}" + (f"  (missed: {misses})" if misses else ""))
    print("\nper clip: value score (manifest)")
    for row in rows:
        cells = "  ".join(f"{attr}={predicted[row['file']][attr][0]} {predicted[row['file']][attr][1]:.2f}"
                          f"{'' if predicted[row['file']][attr][0] == row[attr] else ' (' + row[attr] + ')'}"
                          for attr in ATTRIBUTES)
        print(f"  {Path(row['file']).stem:<24} {cells}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path, help="audio files (default: the samples, ~60 s in all)")
    args = ap.parse_args(argv)
    print_timings(args.files or default_files())
    print_accuracy()


if __name__ == "__main__":
    main()
