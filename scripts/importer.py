"""`clesc import`: clips into the Expert and Crowd projects at once, one task per pool, the pair linked.

Three kinds of source:
- a folder of audio files under Label Studio's local-files document root;
- a manifest (CSV or JSONL) of audio URLs with metadata columns (source_dataset, speaker, gender, ...);
- a CLESC file (parquet or CSV with Crowd_Worker_1..3 / Expert_1..3 columns): its annotations become
  LS annotations by users standing for its workers (`<worker_id>@clesc.invalid`).

Idempotent: a clip is its audio reference (scripts/dataset.clip_key); a clip already in a project is
not imported again, a CLESC worker's annotation already on a task is not added again. The pair link is
task meta `clesc_pair` = {"pool", "project", "task"} of the other pool's task, with that task's status,
consensus and annotation count, written as `clesc sync` writes them (one update per task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from label_config.clesc import CELL_COLUMNS, Matcher
from label_config.records import to_result
from label_config.taxonomy import Taxonomy, load_taxonomy
from scripts.dataset import POOLS, Dataset, RowError, clip_key, from_clesc_rows, list_tasks, read_table, worker_email
from scripts.pools import AUDIO_SUFFIXES

PAIR_KEY = "clesc_pair"
"""Task meta key holding the link to the other pool's task of the same clip."""

BATCH = 100
MANIFEST_AUDIO_COLUMNS = ("audio", "url", "audio_url")


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


# --- sources -> a Dataset of clips (and, for CLESC, annotations) -------------------------------


def is_clesc_table(columns: Sequence[str]) -> bool:
    return any(c in columns for c in CELL_COLUMNS)


def _clean_value(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value.strip() if isinstance(value, str) else value


def from_manifest_rows(rows: Iterable[Mapping[str, Any]], source: str) -> Dataset:
    """Clips from manifest rows: `audio` (or `url`), an http(s) URL or a path; every other column is task data."""
    ds = Dataset(source=source)
    for number, row in enumerate(rows, start=1):
        audio = next((_clean_value(row.get(c)) for c in MANIFEST_AUDIO_COLUMNS if _clean_value(row.get(c))), None)
        if not isinstance(audio, str) or not audio:
            ds.errors.append(RowError(f"row {number}", f"no audio URL (columns {', '.join(MANIFEST_AUDIO_COLUMNS)}); row skipped"))
            continue
        parsed = urlparse(audio)
        if parsed.scheme not in ("http", "https", "s3", "gs", "azure-blob", "") or (parsed.scheme in ("http", "https") and not parsed.netloc):
            ds.errors.append(RowError(f"row {number}", f"audio {audio!r} is not an http(s)/s3/gs URL or a path; row skipped"))
            continue
        clip = ds.clip(audio)
        clip.data["audio"] = audio
        for k, v in row.items():
            v = _clean_value(v)
            if k not in MANIFEST_AUDIO_COLUMNS and v not in (None, ""):
                clip.data[str(k)] = v if isinstance(v, (str, int, float, bool)) else str(v)
    return ds


def from_folder(folder: Path, document_root: Path) -> Dataset:
    """Clips from the audio files of `folder`, referenced as LS local files (the folder must lie under the root)."""
    folder, root = folder.resolve(), document_root.resolve()
    try:
        folder.relative_to(root)
    except ValueError:
        raise ValueError(f"{folder} is not under Label Studio's local-files document root {root} "
                         "(LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, CLESC_LS_DOCUMENT_ROOT): LS can only serve files there") from None
    ds = Dataset(source=f"folder {folder}")
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower().lstrip(".") in AUDIO_SUFFIXES:
            ref = f"/data/local-files/?d={path.relative_to(root).as_posix()}"
            ds.clip(ref).data["audio"] = ref
    if not ds.clips:
        raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return ds


def read_source(source: Path, *, document_root: Path | None = None, taxonomy: Taxonomy | None = None,
                matcher: Matcher | None = None) -> Dataset:
    """The clips (and CLESC annotations) a source holds; ValueError if it cannot be read at all."""
    if source.is_dir():
        if document_root is None:
            raise ValueError("importing a folder needs Label Studio's local-files document root (CLESC_LS_DOCUMENT_ROOT)")
        return from_folder(source, document_root)
    if not source.exists():
        raise ValueError(f"{source}: no such file or folder")
    rows, columns = read_table(source)
    if is_clesc_table(columns):
        return from_clesc_rows(rows, taxonomy=taxonomy, matcher=matcher, source=f"CLESC file {source}", columns=columns)
    if not any(c in columns for c in MANIFEST_AUDIO_COLUMNS):
        raise ValueError(f"{source}: neither a CLESC file (Crowd_Worker_1..3, Expert_1..3) nor a manifest "
                         f"(an audio URL column: {', '.join(MANIFEST_AUDIO_COLUMNS)}); columns: {', '.join(columns)}")
    return from_manifest_rows(rows, source=f"manifest {source}")


# --- Label Studio side -------------------------------------------------------------------------


def task_index(client: Any, project_id: int) -> dict[str, Any]:
    """Clip key -> task (the first one, by id) of a project."""
    index: dict[str, Any] = {}
    for task in list_tasks(client, project_id):
        key = clip_key(task.data or {})
        if key is not None and key not in index:
            index[key] = task
    return index


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


def ensure_local_storage(client: Any, project_id: int, folder: Path) -> None:
    """LS serves a local file only through a local-files storage of the project that covers it (not synced here)."""
    path = str(folder.resolve())
    if not any(s.path == path for s in client.import_storage.local.list(project=project_id)):
        client.import_storage.local.create(project=project_id, path=path, use_blob_urls=True,
                                           regex_filter=r"^$", title=f"clips: {folder.name}")


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
    from scripts.sync import SyncReport, Syncer

    pairs = SyncReport()
    Syncer(client, projects, taxonomy=tax).write_pairs(index, list(ds.clips), pairs)
    report.linked = pairs.updated
    return report
