"""Benchmark of `scripts.report.build_report` on a synthetic dataset (figures printed, never asserted).

    .venv/bin/python -m scripts.bench report --clips 100000 --bootstrap 1000

Prints the seconds to build the synthetic dataset, to build the report (sentence similarity off)
and, as a reference, crowd-kit's MajorityVote().fit_predict on the same labels (all 6 annotations
of each clip, one fit per attribute), with rows per second and the peak resident memory.

    .venv/bin/python -m scripts.bench report --clips 100000 --end-to-end

times what `clesc report --clesc FILE --no-embeddings --out DIR` does, step by step: reading a
CLESC parquet file of that many synthetic clips, the rules judge over every clip and pool, the
figures, and writing report.json, report.html and the PNGs.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time

import pandas as pd

from label_config.schema import ATTRIBUTES


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="print each step of the report with its time")
    parser.add_argument("--end-to-end", action="store_true", help="time `clesc report --clesc FILE` step by step")
    args = parser.parse_args(argv)
    if args.end_to_end:
        end_to_end(args)
        return

    from crowdkit.aggregation import MajorityVote

    from scripts.bench.synthetic import synthetic_dataset
    from scripts.report.figures import build_report

    start = time.perf_counter()
    ds = synthetic_dataset(args.clips, seed=args.seed)
    rows = len(ds.annotations)
    print(f"synthetic dataset: {args.clips:,} clips, {rows:,} annotations in {time.perf_counter() - start:.2f} s "
          f"(peak RSS {peak_rss_mb():.0f} MiB)")

    began = time.perf_counter()

    def progress(message: str) -> None:
        if args.progress:
            print(f"  {time.perf_counter() - began:7.2f} s  {message}")

    start = time.perf_counter()
    report = build_report(ds, bootstrap=args.bootstrap, seed=args.seed, progress=progress)
    seconds = time.perf_counter() - start
    size = len(json.dumps(report, allow_nan=False))
    print(f"build_report: {seconds:.2f} s, {rows / seconds:,.0f} annotations/s, bootstrap {args.bootstrap}, "
          f"JSON {size / 1024:.0f} KiB (peak RSS {peak_rss_mb():.0f} MiB)")
    for pool in ("expert", "crowd"):
        pace = report[pool]["agreement"]["pace"]
        emotion = report[pool]["agreement"]["emotion"]
        print(f"  {pool}: pace alpha {pace['krippendorff_alpha']:.3f} {pace['ci']['krippendorff_alpha']}, "
              f"emotion MASI alpha {emotion['krippendorff_alpha']:.3f} ({emotion['expected_disagreement']})")

    frames = {name: pd.DataFrame({"task": [a.clip for a in ds.annotations],
                                  "worker": [a.worker for a in ds.annotations],
                                  "label": [getattr(a.record, name) for a in ds.annotations]})
              for name in ATTRIBUTES}
    start = time.perf_counter()
    for frame in frames.values():
        MajorityVote().fit_predict(frame)
    seconds = time.perf_counter() - start
    print(f"crowd-kit MajorityVote.fit_predict, {len(frames)} attributes x {rows:,} rows: {seconds:.2f} s, "
          f"{len(frames) * rows / seconds:,.0f} rows/s (peak RSS {peak_rss_mb():.0f} MiB)")


def end_to_end(args: argparse.Namespace) -> None:
    import tempfile
    from pathlib import Path

    from label_config.clesc import COLUMNS
    from scripts.bench.synthetic import synthetic_clesc_rows
    from scripts.pools.sources import from_clesc
    from scripts.pools.verdicts import with_rules_verdicts
    from scripts.report.figures import build_report
    from scripts.report.page import write_report

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clesc.parquet"
        start = time.perf_counter()
        pd.DataFrame(list(synthetic_clesc_rows(args.clips, seed=args.seed)), columns=list(COLUMNS)).to_parquet(path)
        print(f"wrote {args.clips:,} synthetic CLESC rows in {time.perf_counter() - start:.2f} s "
              f"({path.stat().st_size / 2**20:.1f} MiB parquet)")
        total = 0.0
        steps = [
            ("read the CLESC file (parse and match 6 cells per row)", lambda _: from_clesc(path)),
            ("rules judge over every clip and pool", with_rules_verdicts),
            (f"build_report (bootstrap {args.bootstrap})", lambda ds: build_report(ds, bootstrap=args.bootstrap, seed=args.seed)),
            ("write report.json, report.html, PNGs", lambda report: write_report(report, Path(tmp) / "report")),
        ]
        value = None
        for name, step in steps:
            start = time.perf_counter()
            value = step(value)
            gc.freeze()  # as `clesc report` does: the data stays, the collector skips it
            seconds = time.perf_counter() - start
            total += seconds
            print(f"  {seconds:6.2f} s  {name} (peak RSS {peak_rss_mb():.0f} MiB)")
        print(f"end to end: {total:.2f} s for {args.clips:,} clips x 6 annotations")


if __name__ == "__main__":
    main()
