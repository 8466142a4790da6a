"""`clesc export`: a Dataset as a CLESC file (CSV or parquet) or as our richer JSONL.

CLESC: one row per clip, columns `audio, Crowd_Worker_1..3, Expert_1..3, source_dataset`, each
annotation cell a single-quoted Python dict (label_config.clesc.format_cell). Only accepted
annotations unless `include_rejected`; CLESC has three columns per pool, so a pool's 4th and later
annotations of a clip are left out of it (counted in `ExportReport.left_out`; the JSONL keeps all).

JSONL: one object per clip: its audio and task data, and per pool the LS task, the judge's status and
consensus, the acoustic measures, and every annotation with its words, lead time and verdict; the value
under any secret-looking key (token, password, api_key, ...: label_config.redact) is "[redacted]".

>>> from scripts.pools.sources import from_clesc_rows
>>> cell = ("{'pace': 'slow', 'pitch': 'low', 'voice': '', 'volume': 'quiet', "
...         "'emotion': 'sad', 'worker_id': 'e1'}")
>>> rows, report = clesc_rows(from_clesc_rows([{"audio": "a.wav", "Expert_1": cell, "source_dataset": "X"}]))
>>> rows[0]["Expert_1"] == cell, rows[0]["Crowd_Worker_1"], report.annotations
(True, '', 1)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from label_config.clesc import COLUMNS, OVERLAP, POOL_COLUMNS, format_cell
from label_config.redact import redact
from label_config.schema import ATTRIBUTES, POOLS, WORD_KINDS
from scripts.pools.dataset import Annotation, Dataset

FORMATS = ("clesc", "parquet", "jsonl")


@dataclass
class ExportReport:
    clips: int = 0
    annotations: int = 0
    rejected_left_out: int = 0
    left_out: int = 0
    """Accepted annotations beyond the three CLESC columns of a pool."""

    def summary(self) -> str:
        text = f"{self.clips} clips, {self.annotations} annotations"
        if self.rejected_left_out:
            text += f"; {self.rejected_left_out} rejected annotations left out (--all keeps them)"
        if self.left_out:
            text += f"; {self.left_out} annotations beyond {OVERLAP} per pool left out of the CLESC columns (jsonl keeps them)"
        return text


def _order(annotations: list[Annotation]) -> list[Annotation]:
    return sorted(annotations, key=lambda a: (a.annotation_id is None, a.annotation_id or 0))


def _kept(ds: Dataset, include_rejected: bool, report: ExportReport) -> dict[str, dict[str, list[Annotation]]]:
    out: dict[str, dict[str, list[Annotation]]] = {}
    for a in ds.annotations:
        if not include_rejected and not a.accepted:
            report.rejected_left_out += 1
            continue
        out.setdefault(a.clip, {}).setdefault(a.pool, []).append(a)
    return out


def clesc_rows(ds: Dataset, *, include_rejected: bool = False) -> tuple[list[dict[str, Any]], ExportReport]:
    """CLESC rows (dicts in COLUMNS order), one per clip; blank cells where a pool has fewer than 3 annotations."""
    report = ExportReport()
    kept = _kept(ds, include_rejected, report)
    rows = []
    for key, clip in ds.clips.items():
        row: dict[str, Any] = {c: "" for c in COLUMNS}
        row["audio"] = key
        row["source_dataset"] = str(clip.data.get("source_dataset") or "")
        for pool in POOLS:
            anns = _order(kept.get(key, {}).get(pool, []))
            report.left_out += max(0, len(anns) - OVERLAP)
            for column, a in zip(POOL_COLUMNS[pool], anns):
                row[column] = format_cell(a.record, a.worker)
                report.annotations += 1
        rows.append(row)
    report.clips = len(rows)
    return rows, report


def jsonl_records(ds: Dataset, *, include_rejected: bool = False) -> tuple[list[dict[str, Any]], ExportReport]:
    """One JSON object per clip (see the module doc)."""
    report = ExportReport()
    kept = _kept(ds, include_rejected, report)
    out = []
    for key, clip in ds.clips.items():
        record: dict[str, Any] = {"audio": key, "data": {k: v for k, v in clip.data.items() if k != "audio"}}
        for pool in POOLS:
            anns = _order(kept.get(key, {}).get(pool, []))
            report.annotations += len(anns)
            record[pool] = {
                "task_id": clip.tasks.get(pool),
                "status": clip.status.get(pool),
                "consensus": clip.consensus.get(pool),
                "measures": clip.measures.get(pool),
                "annotations": [{
                    "worker": a.worker,
                    "annotation_id": a.annotation_id,
                    **{attr: getattr(a.record, attr) for attr in ATTRIBUTES},
                    **{kind: list(a.record.words(kind)) for kind in WORD_KINDS},
                    "other": list(a.record.other),
                    "lead_time": a.lead_time,
                    "verdict": a.verdict,
                    "reasons": list(a.reasons),
                } for a in anns],
            }
        out.append(record)
    report.clips = len(out)
    return out, report


def write(ds: Dataset, fmt: str, out: Path, *, include_rejected: bool = False,
          inputs: Iterable[str | Path] = ()) -> ExportReport:
    """Write the export; the file appears whole or not at all, and never over one of `inputs`
    (webhooks.files.write_whole: ValueError says why not)."""
    from webhooks.files import write_whole

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    if fmt == "jsonl":
        records, report = jsonl_records(ds, include_rejected=include_rejected)

        def fill(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8") as f:
                for record in records:
                    f.write(json.dumps(redact(record), ensure_ascii=False, default=str) + "\n")
    else:
        import pandas as pd

        rows, report = clesc_rows(ds, include_rejected=include_rejected)
        frame = pd.DataFrame(rows, columns=list(COLUMNS))

        def fill(tmp: Path) -> None:
            if fmt == "parquet":
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
    write_whole(out, fill, inputs=inputs)
    return report


