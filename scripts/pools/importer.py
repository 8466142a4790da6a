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
from types import SimpleNamespace
from typing import Any

from label_config.meta import PairMeta, read_pair, with_pair
from label_config.records import clip_key, is_cancelled, to_result
from label_config.schema import POOLS
from label_config.taxonomy import Taxonomy, load_taxonomy
from scripts.labelstudio.projects import BATCH, list_tasks
from scripts.pools.dataset import Dataset, RowError, worker_email
from scripts.pools.pairs import PairWriter, PoolSide, run_bounded

PAGE = 1000
"""Tasks per page when reading a project without annotations."""
PROBE = 1
"""Clips in the first batch new to both pools: it tells the ids LS gives (its Expert links are task updates)."""


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


def light_index(client: Any, project_id: int) -> dict[str, Any]:
    """Clip key -> task (the first by id) of a project, read without annotations (data, meta and counts only):
    a re-import of a large file reads its projects fast."""
    index: dict[str, Any] = {}
    for task in list_tasks(client, project_id, fields="task_only", page_size=PAGE,
                           include=("id", "data", "meta", "total_annotations")):
        key = clip_key(task.data or {})
        if key is not None and (key not in index or task.id < index[key].id):
            index[key] = task
    return index


def _live_count(task: Any) -> int:
    return int(getattr(task, "total_annotations", 0) or 0)


def import_dataset(client: Any, projects: Mapping[str, int], ds: Dataset, *, pools: Sequence[str] = POOLS,
                   taxonomy: Taxonomy | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> ImportReport:
    """Create the missing tasks (with their CLESC annotations and pair links) in each pool, add missing
    annotations to existing tasks, link pairs that are not linked.

    Scales to large files: tasks are created in batches through LS's import with their annotations and
    their pair link in meta, so that a clip new to both pools costs no task update. The Crowd batch
    links the Expert task ids LS just returned; the Expert batch links the ids the Crowd batch will get,
    predicted from the last ids LS returned (LS gives a batch consecutive ids, in order, after the
    newest task). A prediction that LS did not keep (another import ran meanwhile) is found by
    comparing with the ids returned and corrected by a task update, `CONCURRENCY` at a time, as is
    every link still missing or pointing elsewhere (a task made by a storage sync, an interrupted run).
    Existing tasks are read without annotations; only those with fewer live annotations than the file
    gives them are read whole. The other pool's status and consensus in the link are computed from the
    annotations imported, as `clesc sync` computes them (sync keeps them current later).
    """
    tax = taxonomy or load_taxonomy()
    report = ImportReport(clips=len(ds.clips), errors=list(ds.errors))
    users = ensure_workers(client, {a.worker for a in ds.annotations})
    by_clip: dict[str, dict[str, list]] = {}
    for a in ds.annotations:
        by_clip.setdefault(a.clip, {}).setdefault(a.pool, []).append(a)
    index = {pool: light_index(client, projects[pool]) for pool in POOLS}
    side = PoolSide(tax)
    payloads: dict[str, dict[str, list[dict[str, Any]]]] = {pool: {} for pool in POOLS}  # annotations created now
    states: dict[str, dict[str, dict[str, Any]]] = {pool: {} for pool in POOLS}
    for pool in POOLS:
        report.existing[pool] = sum(1 for key in ds.clips if key in index[pool]) if pool in pools else 0

    def annotations_of(pool: str, key: str) -> list[dict[str, Any]]:
        if key not in payloads[pool]:
            payloads[pool][key] = [_annotation_payload(a, users[a.worker], tax) for a in by_clip.get(key, {}).get(pool, [])]
        return payloads[pool][key]

    def state(pool: str, key: str) -> dict[str, Any]:
        """What the pool says about a clip (for the other pool's link), its task created now or existing."""
        if key not in states[pool]:
            task = index[pool].get(key)
            if task is None or key in payloads[pool] or not _live_count(task):
                anns = payloads[pool].get(key, []) if task is None or key in payloads[pool] else []
                states[pool][key] = side.state(SimpleNamespace(id=None, meta=getattr(task, "meta", {}), annotations=anns))
            else:
                states[pool][key] = side.state(client.tasks.get(task.id))
        return states[pool][key]

    def link(pool: str, key: str, partner_id: int) -> dict[str, Any]:
        other = _other(pool)
        return with_pair({}, PairMeta(other, projects[other], partner_id, **state(other, key)))

    def create(pool: str, keys: list[str], metas: list[dict[str, Any] | None]) -> list[int] | None:
        payload = []
        for key, meta in zip(keys, metas):
            task: dict[str, Any] = {"data": dict(ds.clips[key].data, audio=key)}
            anns = annotations_of(pool, key)
            if anns:
                task["annotations"] = anns
                report.annotations[pool] += len(anns)
            if meta is not None:
                task["meta"] = meta
            payload.append(task)
        created = client.projects.import_tasks(projects[pool], request=payload, return_task_ids=True)
        ids = list(getattr(created, "task_ids", None) or [])
        report.created[pool] += len(keys)
        if len(ids) != len(keys):  # an LS that does not return ids: read them back
            index[pool] = light_index(client, projects[pool])
            return None
        for key, task_id, sent in zip(keys, ids, payload):
            index[pool][key] = SimpleNamespace(id=task_id, data=sent["data"], meta=sent.get("meta", {}),
                                               total_annotations=len(sent.get("annotations", [])))
        return ids

    # Clips new to both pools: Expert then Crowd, batch by batch, each batch linked at creation.
    both = [key for key in ds.clips if key not in index["expert"] and key not in index["crowd"]] \
        if set(POOLS) <= set(pools) else []
    last_id: int | None = None  # the newest task id LS returned; unknown before the first (small) batch
    done = 0
    start = 0
    while start < len(both):
        size = BATCH if last_id is not None else min(BATCH, PROBE)
        batch = both[start:start + size]
        start += size
        for key in batch:  # the annotations first: both payloads are needed for the states in the links
            annotations_of("expert", key), annotations_of("crowd", key)
        predicted = [last_id + len(batch) + 1 + i for i in range(len(batch))] if last_id is not None else None
        expert_ids = create("expert", batch, [link("expert", k, c) for k, c in zip(batch, predicted)]
                            if predicted else [None] * len(batch))
        if expert_ids is None:
            expert_ids = [index["expert"][k].id for k in batch]
        crowd_ids = create("crowd", batch, [link("crowd", k, e) for k, e in zip(batch, expert_ids)])
        if crowd_ids is None:
            crowd_ids = [index["crowd"][k].id for k in batch]
        report.linked += len(batch) + (len(batch) if predicted == crowd_ids else 0)
        last_id = max(crowd_ids + expert_ids)
        done += len(batch)
        if progress is not None:
            progress("creating tasks in both pools", done, len(both))
    # Clips new to one pool only: linked at creation to the task the other pool has.
    for pool in POOLS:
        if pool not in pools:
            continue
        missing = [key for key in ds.clips if key not in index[pool]]
        for begin in range(0, len(missing), BATCH):
            batch = missing[begin:begin + BATCH]
            partners = [index[_other(pool)].get(key) for key in batch]
            metas = [link(pool, key, p.id) if p is not None else None for key, p in zip(batch, partners)]
            create(pool, batch, metas)
            report.linked += sum(1 for m in metas if m is not None)
            if progress is not None:
                progress(f"creating {pool} tasks", begin + len(batch), len(missing))
        # Existing tasks: add the annotations of CLESC workers that are not on the task yet.
        short = [(key, index[pool][key]) for key in ds.clips
                 if key in index[pool] and key not in payloads[pool]
                 and _live_count(index[pool][key]) < len(by_clip.get(key, {}).get(pool, []))]
        for key, task in short:
            full = client.tasks.get(task.id)
            present = {_field(a, "completed_by") for a in (full.annotations or [])
                       if not is_cancelled({"was_cancelled": _field(a, "was_cancelled")})}
            for a in by_clip[key][pool]:
                if users[a.worker] not in present:
                    client.annotations.create(id=task.id, **_annotation_payload(a, users[a.worker], tax))
                    present.add(users[a.worker])
                    report.annotations[pool] += 1
            states[pool].pop(key, None)
    # The links still missing or pointing elsewhere (a prediction LS did not keep, tasks made by a
    # storage sync, a run interrupted), written as task updates merged into the newest meta.
    writer = PairWriter(client, projects, taxonomy=tax)
    writes = []
    for key in ds.clips:
        for pool in POOLS:
            task, partner = index[pool].get(key), index[_other(pool)].get(key)
            if task is None or partner is None:
                continue
            current = read_pair(task.meta)
            if current is not None and (current.project, current.task) == (projects[_other(pool)], partner.id):
                continue
            wanted = PairMeta(_other(pool), projects[_other(pool)], partner.id, **state(_other(pool), key))
            writes.append(lambda task_id=task.id, wanted=wanted: writer.write_link(task_id, wanted))
    fixed = 0

    def step(_: Any) -> None:
        nonlocal fixed
        fixed += 1
        if progress is not None:
            progress("linking pairs", fixed, len(writes))

    run_bounded(writes, done=step)
    report.linked += fixed
    return report


def _other(pool: str) -> str:
    return "crowd" if pool == "expert" else "expert"


def _field(annotation: Any, name: str) -> Any:
    return annotation.get(name) if isinstance(annotation, Mapping) else getattr(annotation, name, None)


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
