"""Where a Dataset comes from: a CLESC file, two LS JSON exports, a live Label Studio, a manifest or a folder.

Every reader keeps what it can: a bad row, cell or annotation becomes a `RowError` and the rest is read.

>>> ds = from_clesc_rows([{
...     "audio": "https://x/1.mp3", "source_dataset": "Voxceleb",
...     "Crowd_Worker_1": "{'pace': 'fast', 'pitch': 'high', 'voice': 'shrill', 'volume': 'loud', "
...                       "'emotion': 'Angry', 'worker_id': 't1'}",
...     "Expert_1": "{'pace': 'fast', 'pitch': 'high', 'voice': '', 'volume': 'loud', "
...                 "'emotion': 'furious, mumbly', 'worker_id': 'e1'}"}])
>>> [(a.pool, a.worker, a.record.emotion, a.record.other) for a in ds.annotations]
[('expert', 'e1', ('furious',), ('mumbly',)), ('crowd', 't1', ('angry',), ())]
>>> ds.clips["https://x/1.mp3"].data["source_dataset"]
'Voxceleb'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from label_config.clesc import (
    CELL_COLUMNS,
    COLUMNS,
    POOL_COLUMNS,
    CellError,
    Matcher,
    parse_cell,
)
from label_config.meta import read_judge
from label_config.records import InvalidLabel, clip_key, current_annotations, is_cancelled, parse_annotation, user_id
from label_config.schema import POOLS
from label_config.taxonomy import Taxonomy, load_taxonomy
from scripts.labelstudio.projects import AUDIO_SUFFIXES, list_tasks
from scripts.pools.dataset import (
    WORKER_EMAIL_DOMAIN,
    Annotation,
    Dataset,
    Decision,
    RowError,
    collector_paused,
    worker_name,
)

MANIFEST_AUDIO_COLUMNS = ("audio", "url", "audio_url")


# --- CLESC files -----------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def from_clesc_rows(rows: Iterable[Mapping[str, Any]], *, taxonomy: Taxonomy | None = None,
                    matcher: Matcher | None = None, source: str = "CLESC rows",
                    columns: Sequence[str] | None = None) -> Dataset:
    """A Dataset from CLESC rows (dicts keyed by column). A bad cell is a RowError; the rest of its row is kept.

    A blank cell is a missing annotation, not an error. A row without `audio` is skipped with an error.
    `columns`, when known (a file's header), lets a missing annotation column be reported once.
    """
    with collector_paused():
        return _from_clesc_rows(rows, taxonomy or load_taxonomy(), matcher, source, columns)


def _from_clesc_rows(rows: Iterable[Mapping[str, Any]], tax: Taxonomy, matcher: Matcher | None, source: str,
                     columns: Sequence[str] | None) -> Dataset:
    ds = Dataset(source=source)
    if columns is not None:
        missing = [c for c in COLUMNS if c not in columns]
        if "audio" in missing:
            raise ValueError(f"{source}: no 'audio' column (columns: {', '.join(map(str, columns))}); "
                             f"a CLESC file has {', '.join(COLUMNS)}")
        for c in missing:
            ds.errors.append(RowError(f"column {c}", "missing from the file; its annotations are absent"))
    for number, row in enumerate(rows, start=1):
        where = f"row {number}"
        audio = row.get("audio")
        if _blank(audio) or not isinstance(audio, str):
            ds.errors.append(RowError(where, f"no audio reference (got {audio!r}); row skipped"))
            continue
        key = audio.strip()
        clip = ds.clip(key)
        clip.data.setdefault("audio", key)
        for column, value in row.items():
            if column not in COLUMNS and not _blank(value):
                clip.data.setdefault(str(column), value)
        if not _blank(row.get("source_dataset")):
            clip.data["source_dataset"] = str(row["source_dataset"]).strip()
        for pool in POOLS:
            for column in POOL_COLUMNS[pool]:
                cell = row.get(column)
                if _blank(cell):
                    continue
                try:
                    parsed = parse_cell(cell, tax, matcher)
                except CellError as e:
                    ds.errors.append(RowError(f"{where} ({key}) {column}", str(e)))
                    continue
                ds.annotations.append(Annotation(pool, key, parsed.worker_id, parsed.record))
    return ds


def read_table(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows and header of a parquet, CSV or JSONL file (by suffix)."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
        elif suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise ValueError(f"{path}: unknown file type {suffix!r} (use .parquet, .csv, .tsv or .jsonl)")
    except (OSError, ValueError, TypeError, AttributeError) as e:  # pandas' own, e.g. a JSONL line that is no object
        if isinstance(e, ValueError) and str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read it as {suffix.lstrip('.')}: {e}") from None
    return frame.to_dict(orient="records"), [str(c) for c in frame.columns]


def from_clesc(path: str | Path, *, taxonomy: Taxonomy | None = None, matcher: Matcher | None = None) -> Dataset:
    """A Dataset from a CLESC parquet/CSV file (Hugging Face `toloka/CLESC`, or `clesc export --format clesc`)."""
    rows, columns = read_table(path)
    return from_clesc_rows(rows, taxonomy=taxonomy, matcher=matcher, source=f"CLESC file {path}", columns=columns)


# --- Label Studio (exports or a live server) --------------------------------------------------


ACOUSTIC_MODEL_PREFIX = "clesc-acoustic"
"""model_version prefix of the ML backend's predictions (ml_backend/model.py BACKEND_VERSION)."""


def _measures(task: Mapping[str, Any]) -> dict[str, Any]:
    """The ML backend's newest prediction on a task: labels, scores and the raw acoustic measures."""
    preds = [p for p in task.get("predictions") or []
             if isinstance(p, Mapping) and str(p.get("model_version") or "").startswith(ACOUSTIC_MODEL_PREFIX)]
    if not preds:
        return {}
    pred = max(preds, key=lambda p: (str(p.get("created_at") or ""), p["id"] if isinstance(p.get("id"), int) else 0))
    out: dict[str, Any] = {"model_version": pred.get("model_version"), "score": pred.get("score"),
                           "created_at": pred.get("created_at")}
    for item in pred.get("result") or []:
        if not isinstance(item, Mapping):
            continue
        value = item.get("value")
        choices = value.get("choices") if isinstance(value, Mapping) else None
        if isinstance(item.get("from_name"), str) and isinstance(choices, list) and choices and isinstance(choices[0], str):
            out[item["from_name"]] = choices[0]
        if isinstance(item.get("meta"), Mapping) and "measures" in item["meta"]:
            out["measures"] = item["meta"]["measures"]
    return out


def add_ls_tasks(ds: Dataset, pool: str, tasks: Iterable[Mapping[str, Any]], *,
                 emails: Mapping[int, str] | None = None, taxonomy: Taxonomy | None = None) -> None:
    """Add one pool's tasks (standard LS JSON export objects, or tasks read from the API) to `ds`.

    Cancelled (skipped) annotations are left out; an annotation that does not parse is a RowError.
    Verdicts come from the judge's task meta (label_config.meta) when present (then `ds.judged` is set),
    and so do the ops decisions on its rejections (`ds.decisions`, also for annotations LS no longer lists).
    Annotators are named by `worker_name`; the e-mails of those that are not CLESC workers go to `ds.emails`.
    """
    tax = taxonomy or load_taxonomy()
    emails = emails or {}
    newest_judged: dict[tuple[str, str], int] = {}  # (pool, worker) -> id of the annotation whose reliability is kept
    for task in tasks:
        key = clip_key(task.get("data") or {})
        tid = task.get("id")
        if key is None:
            ds.errors.append(RowError(f"{pool} task {tid}", "no 'audio' in the task data; task skipped"))
            continue
        clip = ds.clip(key)
        for k, v in (task.get("data") or {}).items():
            clip.data.setdefault(k, v)
        if isinstance(tid, int):
            clip.tasks[pool] = tid
        judged = read_judge(task.get("meta"))
        if judged is not None:
            clip.status[pool] = judged.status
            ds.judged = True
            if judged.consensus:
                clip.consensus[pool] = dict(judged.consensus)
        measures = _measures(task)
        if measures:
            clip.measures[pool] = measures
        workers: dict[int, str] = {}  # annotation id -> worker, cancelled annotations too
        present: set[int] = set()
        counted = {id(a) for a in current_annotations([a for a in task.get("annotations") or [] if isinstance(a, Mapping)])}
        for ann in task.get("annotations") or []:
            if not isinstance(ann, Mapping):
                continue
            user = user_id(ann.get("completed_by"))
            email = ann["completed_by"].get("email") if isinstance(ann.get("completed_by"), Mapping) else None
            email = (email if isinstance(email, str) else None) or emails.get(user)
            worker = worker_name(user, email)
            if email and not email.endswith("@" + WORKER_EMAIL_DOMAIN):
                ds.emails.setdefault(worker, email)
            aid = ann.get("id")
            if isinstance(aid, int):
                workers[aid] = worker
            if is_cancelled(ann) or id(ann) not in counted:
                continue  # skipped, or superseded by its annotator's newer one: one vote per annotator
            try:
                record = parse_annotation(ann, tax)
            except InvalidLabel as e:
                ds.errors.append(RowError(f"{pool} task {tid}", str(e)))
                continue
            verdict = None
            if isinstance(aid, int):
                present.add(aid)
                if judged is not None:
                    verdict = "reject" if aid in judged.rejected else "accept"
                    if aid in judged.reliability and aid > newest_judged.get((pool, worker), -1):
                        newest_judged[pool, worker] = aid  # the judge's latest estimate of the worker
                        ds.reliability.setdefault(pool, {})[worker] = judged.reliability[aid]
            ds.annotations.append(Annotation(
                pool, key, worker, record,
                verdict=verdict, reasons=judged.reason_codes(aid) if verdict == "reject" else (),
                task_id=tid if isinstance(tid, int) else None, annotation_id=aid if isinstance(aid, int) else None,
                lead_time=record.lead_time, created_at=_text(ann.get("created_at")),
                updated_at=_text(ann.get("updated_at")),
            ))
        for d in judged.decisions if judged is not None else ():
            aid = d["annotation_id"]
            annotator = user_id(d.get("annotator"))
            worker = workers.get(aid) or (worker_name(annotator, emails.get(annotator)) if annotator is not None else None)
            ds.decisions.append(Decision(
                pool, key, tid if isinstance(tid, int) else None, aid, d["decision"], worker,
                reasons=tuple(d["reasons"]), decided_at=d["decided_at"] or None, annotation_present=aid in present))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def from_exports(expert: str | Path, crowd: str | Path, *, taxonomy: Taxonomy | None = None) -> Dataset:
    """A Dataset from the Expert and Crowd projects' standard LS JSON exports."""
    from webhooks.judge.offline import load_export

    ds = Dataset(source=f"LS exports {expert}, {crowd}")
    for pool, path in (("expert", expert), ("crowd", crowd)):
        add_ls_tasks(ds, pool, load_export(path), taxonomy=taxonomy)
    return ds


def read_project(client: Any, project_id: int, page_size: int = 100) -> list[dict[str, Any]]:
    """Every task of a project with its annotations, predictions and meta, page by page over the API.

    Not the export endpoint: LS JSON exports list predictions by id only, and the report and the
    JSONL export want the ML backend's measures.
    """
    return [task.model_dump(mode="json") for task in list_tasks(client, project_id, page_size=page_size)]


def user_emails(client: Any) -> dict[int, str]:
    return {u.id: u.email for u in client.users.list() if u.email}


def from_label_studio(client: Any, projects: Mapping[str, int], *, taxonomy: Taxonomy | None = None,
                      source: str = "Label Studio", ls_url: str | None = None) -> Dataset:
    """A Dataset from the live Expert and Crowd projects (`projects`: pool -> LS project id).

    `ls_url`, the Label Studio as its users reach it, is kept with the project ids for links to the tasks.
    """
    ds = Dataset(source=source, ls_url=ls_url.rstrip("/") if ls_url else None, projects=dict(projects))
    emails = user_emails(client)
    for pool in POOLS:
        add_ls_tasks(ds, pool, read_project(client, projects[pool]), emails=emails, taxonomy=taxonomy)
    return ds


def read_dataset(*, clesc: Path | None = None, expert_export: Path | None = None, crowd_export: Path | None = None,
                 client: Any = None, projects: Mapping[str, int] | None = None, source: str = "Label Studio",
                 matcher: Matcher | None = None, ls_url: str | None = None) -> Dataset:
    """The Dataset from a CLESC file, from the two pools' LS exports, or from a live LS (`client`, `projects`).

    ValueError when the sources given do not make one of these.
    """
    if clesc is not None:
        if expert_export or crowd_export:
            raise ValueError("give either --clesc or --expert-export/--crowd-export, not both")
        return from_clesc(clesc, matcher=matcher)
    if expert_export or crowd_export:
        if not (expert_export and crowd_export):
            raise ValueError("--expert-export and --crowd-export go together")
        return from_exports(expert_export, crowd_export)
    if client is None or projects is None:
        raise ValueError("no source: give a CLESC file, two LS exports, or a Label Studio")
    return from_label_studio(client, projects, source=source, ls_url=ls_url)


# --- manifests and folders of clips ---------------------------------------------------------


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
