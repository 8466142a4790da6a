"""`clesc import`: clips into the Expert and Crowd projects at once, one task per pool, the pair linked.

Three kinds of source (read by scripts/pools/sources.py):
- a folder of audio files under Label Studio's local-files document root;
- a manifest (CSV or JSONL) of audio URLs with metadata columns (source_dataset, speaker, gender, ...);
- a CLESC file (parquet or CSV with Crowd_Worker_1..3 / Expert_1..3 columns): its annotations become
  LS annotations by users standing for its workers (`<worker_id>@clesc.invalid`).

Idempotent: a clip is its audio reference (label_config.records.clip_key); a clip already in a project
is not imported again, a CLESC worker's annotation already on a task is not added again. The pair link
(task meta `clesc_pair`, label_config.meta) is written as `clesc sync` writes it (scripts/pools/pairs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from label_config.records import to_result
from label_config.schema import POOLS
from label_config.taxonomy import Taxonomy, load_taxonomy
from scripts.labelstudio.projects import BATCH, task_index
from scripts.pools.dataset import Dataset, RowError, worker_email
from scripts.pools.pairs import PairWriter


@dataclass
class ImportReport:
    clips: int = 0
    created: dict[str, int] = field(default_factory=lambda: {p: 0 for p in POOLS})
    existing: dict[str, int] = field(default_factory=lambda: {p: 0 for p in POOLS})
    annotations: dict[str, int] = field(default_factory=lambda: {p: 0 for p in POOLS})
    linked: int = 0
    errors: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.clips} clips"]
        for pool in POOLS:
            parts.append(f"{pool}: {self.created[pool]} tasks created, {self.existing[pool]} already there, "
                         f"{self.annotations[pool]} annotations added")
        parts.append(f"{self.linked} pair links written")
        if self.errors:
            parts.append(f"{len(self.errors)} rows/cells with errors (the rest imported)")
        return "; ".join(parts)


# --- Label Studio side -------------------------------------------------------------------------


def ensure_workers(client: Any, workers: Iterable[str]) -> dict[str, int]:
    """CLESC worker id -> LS user id, creating `<worker>@clesc.invalid` users that do not exist yet."""
    by_email = {u.email: u.id for u in client.users.list() if u.email}
    out = {}
    for worker in sorted(set(workers)):
        email = worker_email(worker)
        if email not in by_email:
            by_email[email] = client.users.create(username=f"clesc-{worker}"[:150], email=email).id
        out[worker] = by_email[email]
    return out


def _annotation_payload(annotation, user: int, taxonomy: Taxonomy) -> dict[str, Any]:
    payload: dict[str, Any] = {"result": to_result(annotation.record, taxonomy), "completed_by": user}
    if annotation.record.lead_time is not None:
        payload["lead_time"] = annotation.record.lead_time
    return payload


def import_dataset(client: Any, projects: Mapping[str, int], ds: Dataset, *, pools: Sequence[str] = POOLS,
                   taxonomy: Taxonomy | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> ImportReport:
    """Create the missing tasks (with their CLESC annotations) in each pool, add missing annotations, link pairs."""
    tax = taxonomy or load_taxonomy()
    report = ImportReport(clips=len(ds.clips), errors=list(ds.errors))
    users = ensure_workers(client, {a.worker for a in ds.annotations})
    by_clip: dict[str, dict[str, list]] = {}
    for a in ds.annotations:
        by_clip.setdefault(a.clip, {}).setdefault(a.pool, []).append(a)
    index: dict[str, dict[str, Any]] = {}
    for pool in POOLS:
        index[pool] = task_index(client, projects[pool])
        if pool not in pools:
            continue
        missing = [key for key in ds.clips if key not in index[pool]]
        report.existing[pool] = len(ds.clips) - len(missing)
        for start in range(0, len(missing), BATCH):
            batch = missing[start:start + BATCH]
            payload = []
            for key in batch:
                task: dict[str, Any] = {"data": dict(ds.clips[key].data, audio=key)}
                anns = by_clip.get(key, {}).get(pool, [])
                if anns:
                    task["annotations"] = [_annotation_payload(a, users[a.worker], tax) for a in anns]
                    report.annotations[pool] += len(anns)
                payload.append(task)
            client.projects.import_tasks(projects[pool], request=payload, return_task_ids=True)
            report.created[pool] += len(batch)
            if progress is not None:
                progress(pool, report.created[pool], len(missing))
        # Existing tasks: add the annotations of CLESC workers that are not on the task yet.
        for key in ds.clips:
            task = index[pool].get(key)
            anns = by_clip.get(key, {}).get(pool, [])
            if task is None or not anns:
                continue
            present = {a.get("completed_by") for a in (task.annotations or []) if not a.get("was_cancelled")}
            for a in anns:
                if users[a.worker] not in present:
                    client.annotations.create(id=task.id, **_annotation_payload(a, users[a.worker], tax))
                    present.add(users[a.worker])
                    report.annotations[pool] += 1
        if report.created[pool]:
            index[pool] = task_index(client, projects[pool])
    report.linked = PairWriter(client, projects, taxonomy=tax).write_pairs(index, list(ds.clips)).updated
    return report


def import_source(client: Any, projects: Mapping[str, int], source: Path, *, pools: Sequence[str] = POOLS,
                  document_root: Path | None = None, matcher: Any = None,
                  progress: Callable[[str, int, int], None] | None = None) -> ImportReport:
    """`clesc import`: read a folder, manifest or CLESC file (scripts/pools/sources.py) and import it.

    A folder's clips are served by LS through a local-files storage of each project, created here.
    ValueError when the source cannot be read at all.
    """
    from scripts.labelstudio.projects import ensure_local_storage
    from scripts.pools.sources import read_source

    ds = read_source(source, document_root=document_root, matcher=matcher)
    if source.is_dir():
        for pid in projects.values():
            ensure_local_storage(client, pid, source)
    return import_dataset(client, projects, ds, pools=pools, progress=progress)
