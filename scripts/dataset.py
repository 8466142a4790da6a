"""Both pools' labels of the same clips, in one tidy table: what reports and exports read.

A `Dataset` comes from a live Label Studio (the Expert and Crowd projects), from two standard
LS JSON exports, or from a CLESC file; `scripts/report.py` and `scripts/export.py` never care
which. One row per annotation (`Annotation`: pool, clip, worker, label record, judge verdict),
and one `Clip` per audio, keyed by the task's audio reference (the same in both projects: the
same URL or the same local-files path), which is how the two pools' tasks are paired.

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

import gc
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from label_config.clesc import (
    COLUMNS,
    POOL_COLUMNS,
    CellError,
    Matcher,
    parse_cell,
    to_label_record,
)
from label_config.records import InvalidLabel, LabelRecord, parse_annotation, user_id
from label_config.taxonomy import Taxonomy, load_taxonomy

POOLS = ("expert", "crowd")
"""Pool names in reports and exports (the LS projects: CLESC_EXPERT_PROJECT, CLESC_CROWD_PROJECT)."""

WORKER_EMAIL_DOMAIN = "clesc.invalid"
"""LS users standing for CLESC workers are `<worker_id>@clesc.invalid` (RFC 2606: never delivered)."""


def worker_email(worker_id: str) -> str:
    return f"{worker_id}@{WORKER_EMAIL_DOMAIN}"


def worker_name(user: int | None, email: str | None = None) -> str:
    """The worker id of an LS user: the CLESC id for imported workers, else `ls-<user id>`.

    >>> worker_name(7, "t3@clesc.invalid"), worker_name(7, "ann@example.com"), worker_name(None)
    ('t3', 'ls-7', 'unknown')
    """
    if email and email.endswith("@" + WORKER_EMAIL_DOMAIN):
        return email.rsplit("@", 1)[0]
    return "unknown" if user is None else f"ls-{user}"


def clip_key(data: Mapping[str, Any]) -> str | None:
    """The clip a task is about: its audio reference (URL or LS local-files path), or None."""
    audio = data.get("audio") if isinstance(data, Mapping) else None
    return audio.strip() if isinstance(audio, str) and audio.strip() else None


@dataclass(frozen=True)
class Annotation:
    """One annotator's label of one clip, in one pool.

    `verdict` is the judge's: "accept", "reject" or None (not judged); `reasons` its reason codes.
    `task_id`, `annotation_id` and `lead_time` (seconds) are known for LS data only.
    """

    pool: str
    clip: str
    worker: str
    record: LabelRecord
    verdict: str | None = None
    reasons: tuple[str, ...] = ()
    task_id: int | None = None
    annotation_id: int | None = None
    lead_time: float | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict != "reject"


@dataclass
class Clip:
    """One audio clip: its reference, the task data (source_dataset, speaker, ...), its LS tasks per pool,
    and per pool the judge's task status and consensus where known."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    consensus: dict[str, dict[str, Any]] = field(default_factory=dict)
    measures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    """A part of the input that could not be read: where (row, column or task) and why. The rest is kept."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Dataset:
    clips: dict[str, Clip] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    source: str = ""
    judged: bool = False
    """True when the verdicts come from the judge that ran on this data (LS meta), not computed here."""

    def clip(self, key: str) -> Clip:
        found = self.clips.get(key)
        if found is None:
            found = self.clips[key] = Clip(key)
        return found

    def pool(self, name: str) -> list[Annotation]:
        return [a for a in self.annotations if a.pool == name]

    def by_clip(self, pool: str) -> dict[str, list[Annotation]]:
        out: dict[str, list[Annotation]] = {}
        for a in self.annotations:
            if a.pool == pool:
                out.setdefault(a.clip, []).append(a)
        return out

    def tidy(self, pool: str, attribute: str) -> list[tuple[str, str, Any]]:
        """(task, worker, label) rows of one pool for one attribute, as crowd-kit takes them.

        A word kind ("emotion", "voice") gives frozensets of words; `other` words are left out.
        """
        out = []
        for a in self.annotations:
            if a.pool == pool:
                value = getattr(a.record, attribute)
                out.append((a.clip, a.worker, frozenset(value) if isinstance(value, tuple) else value))
        return out


# --- CLESC files -----------------------------------------------------------------------------


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of small acyclic objects are built (~15% faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def from_clesc_rows(rows: Iterable[Mapping[str, Any]], *, taxonomy: Taxonomy | None = None,
                    matcher: Matcher | None = None, source: str = "CLESC rows",
                    columns: Sequence[str] | None = None) -> Dataset:
    """A Dataset from CLESC rows (dicts keyed by column). A bad cell is a RowError; the rest of its row is kept.

    A blank cell is a missing annotation, not an error. A row without `audio` is skipped with an error.
    `columns`, when known (a file's header), lets a missing annotation column be reported once.
    """
    with _collector_paused():
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
                ds.annotations.append(Annotation(pool, key, parsed.worker_id, to_label_record(parsed)))
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
    except (OSError, ValueError) as e:
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
    pred = max(preds, key=lambda p: (str(p.get("created_at") or ""), p.get("id") or 0))
    out: dict[str, Any] = {"model_version": pred.get("model_version"), "score": pred.get("score")}
    for item in pred.get("result") or []:
        if not isinstance(item, Mapping):
            continue
        choices = (item.get("value") or {}).get("choices") or []
        if item.get("from_name") and choices:
            out[item["from_name"]] = choices[0]
        if isinstance(item.get("meta"), Mapping) and "measures" in item["meta"]:
            out["measures"] = item["meta"]["measures"]
    return out


def _verdicts_from_meta(task: Mapping[str, Any]) -> tuple[str | None, dict[int, tuple[str, ...]], set[int] | None]:
    """The judge's status, reasons by annotation id and rejected ids from a task's meta["clesc"]."""
    meta = task.get("meta") if isinstance(task.get("meta"), Mapping) else {}
    judged = meta.get("clesc") if isinstance(meta.get("clesc"), Mapping) else None
    if judged is None:
        return None, {}, None
    reasons = {}
    for ann_id, items in (judged.get("reasons") or {}).items():
        try:
            reasons[int(ann_id)] = tuple(r.get("code", "") for r in items if isinstance(r, Mapping))
        except (TypeError, ValueError):
            continue
    rejected = {int(i) for i in judged.get("rejected") or [] if isinstance(i, int)}
    return judged.get("status"), reasons, rejected


def add_ls_tasks(ds: Dataset, pool: str, tasks: Iterable[Mapping[str, Any]], *,
                 emails: Mapping[int, str] | None = None, taxonomy: Taxonomy | None = None) -> None:
    """Add one pool's tasks (standard LS JSON export objects, or tasks read from the API) to `ds`.

    Cancelled (skipped) annotations are left out; an annotation that does not parse is a RowError.
    Verdicts come from the judge's meta["clesc"] when present (then `ds.judged` is set).
    """
    tax = taxonomy or load_taxonomy()
    emails = emails or {}
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
        status, reasons, rejected = _verdicts_from_meta(task)
        if status is not None:
            clip.status[pool] = status
            ds.judged = True
            consensus = ((task.get("meta") or {}).get("clesc") or {}).get("consensus")
            if isinstance(consensus, Mapping):
                clip.consensus[pool] = dict(consensus)
        measures = _measures(task)
        if measures:
            clip.measures[pool] = measures
        for ann in task.get("annotations") or []:
            if not isinstance(ann, Mapping) or ann.get("was_cancelled"):
                continue
            try:
                record = parse_annotation(ann, tax)
            except InvalidLabel as e:
                ds.errors.append(RowError(f"{pool} task {tid}", str(e)))
                continue
            user = user_id(ann.get("completed_by"))
            email = ann["completed_by"].get("email") if isinstance(ann.get("completed_by"), Mapping) else None
            aid = ann.get("id")
            verdict = None
            if rejected is not None and isinstance(aid, int):
                verdict = "reject" if aid in rejected else "accept"
            ds.annotations.append(Annotation(
                pool, key, worker_name(user, email or emails.get(user)), record,
                verdict=verdict, reasons=reasons.get(aid, ()) if verdict == "reject" else (),
                task_id=tid if isinstance(tid, int) else None, annotation_id=aid if isinstance(aid, int) else None,
                lead_time=record.lead_time,
            ))


def from_exports(expert: str | Path, crowd: str | Path, *, taxonomy: Taxonomy | None = None) -> Dataset:
    """A Dataset from the Expert and Crowd projects' standard LS JSON exports."""
    from webhooks.judge.offline import load_export

    ds = Dataset(source=f"LS exports {expert}, {crowd}")
    for pool, path in (("expert", expert), ("crowd", crowd)):
        add_ls_tasks(ds, pool, load_export(path), taxonomy=taxonomy)
    return ds


def list_tasks(client: Any, project_id: int, *, fields: str = "all", query: dict | None = None,
               page_size: int = 100) -> Iterable[Any]:
    """Every task of a project, page by page (LS SDK pager), optionally filtered by a Data Manager query."""
    kwargs: dict[str, Any] = {"project": project_id, "fields": fields, "page_size": page_size}
    if query is not None:
        kwargs["query"] = json.dumps(query)
    yield from client.tasks.list(**kwargs)


def read_project(client: Any, project_id: int, page_size: int = 100) -> list[dict[str, Any]]:
    """Every task of a project with its annotations, predictions and meta, page by page over the API.

    Not the export endpoint: LS JSON exports list predictions by id only, and the report and the
    JSONL export want the ML backend's measures.
    """
    return [task.model_dump(mode="json") for task in list_tasks(client, project_id, page_size=page_size)]


def user_emails(client: Any) -> dict[int, str]:
    return {u.id: u.email for u in client.users.list() if u.email}


def from_label_studio(client: Any, projects: Mapping[str, int], *, taxonomy: Taxonomy | None = None,
                      source: str = "Label Studio") -> Dataset:
    """A Dataset from the live Expert and Crowd projects (`projects`: pool -> LS project id)."""
    ds = Dataset(source=source)
    emails = user_emails(client)
    for pool in POOLS:
        add_ls_tasks(ds, pool, read_project(client, projects[pool]), emails=emails, taxonomy=taxonomy)
    return ds


_JUDGE_WORK: list[tuple[str, str, list[Annotation]]] = []
"""The (pool, clip, annotations) a forked judge process reads (inherited, not pickled)."""

PARALLEL_FROM = 20_000
"""Tasks from which the rules judge runs in one process per core."""


def _default_judge() -> Any:
    """One RulesJudge per process (building one groups the taxonomy's concepts)."""
    from webhooks.judge.rules import RulesJudge

    if "judge" not in _default_judge.__dict__:
        _default_judge.judge = RulesJudge()
    return _default_judge.judge


def _judge_slice(bounds: tuple[int, int], judge: Any = None) -> list[tuple[str, dict[str, Any], list[tuple[str, ...] | None]]]:
    """Verdicts on _JUDGE_WORK[start:end]: per task its status, consensus and, per annotation, the
    reason codes of a rejection (None: accepted)."""
    if judge is None:
        judge = _default_judge()
    out = []
    for _pool, _key, anns in _JUDGE_WORK[bounds[0]:bounds[1]]:
        workers = {w: n for n, w in enumerate(sorted({a.worker for a in anns}), start=1)}
        records = [replace(a.record, annotation_id=i, annotator=workers[a.worker]) for i, a in enumerate(anns)]
        verdict = judge.judge_records(None, records)
        by_index = {v.annotation_id: v for v in verdict.annotations}
        out.append((verdict.status, verdict.to_json()["consensus"],
                    [tuple(r.code for r in by_index[i].reasons) if i in by_index and by_index[i].rejected else None
                     for i in range(len(anns))]))
    return out


def with_rules_verdicts(ds: Dataset, judge: Any = None, processes: int | None = None) -> Dataset:
    """`ds` with the rules judge's verdicts on every clip of each pool, where the data brought none.

    For CLESC files and exports of projects the judge never saw, so the report's judge section
    says what the judge would reject. The judge sees the records with their index as a stand-in id.
    From PARALLEL_FROM tasks on it runs in `processes` forked processes (default: one per core).
    """
    import os

    global _JUDGE_WORK
    if ds.judged:
        return ds
    work = [(pool, key, anns) for pool in POOLS for key, anns in ds.by_clip(pool).items()]
    processes = processes or os.cpu_count() or 1
    if judge is None and processes > 1 and len(work) >= PARALLEL_FROM and hasattr(os, "fork"):
        import multiprocessing

        step = -(-len(work) // (processes * 4))
        _JUDGE_WORK = work
        try:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                results = [r for part in pool.map(_judge_slice, [(i, i + step) for i in range(0, len(work), step)])
                           for r in part]
        finally:
            _JUDGE_WORK = []
    else:
        _JUDGE_WORK = work
        try:
            results = _judge_slice((0, len(work)), judge)
        finally:
            _JUDGE_WORK = []
    out = Dataset(clips=ds.clips, errors=ds.errors, source=ds.source, judged=False)
    with _collector_paused():
        _add_verdicts(out, work, results)
    return out


def _add_verdicts(out: Dataset, work: list[tuple[str, str, list[Annotation]]], results: list) -> None:
    for (pool, key, anns), (status, consensus, rejections) in zip(work, results):
        clip = out.clips[key]
        clip.status.setdefault(pool, status)
        clip.consensus.setdefault(pool, consensus)
        for a, codes in zip(anns, rejections):
            out.annotations.append(Annotation(
                a.pool, a.clip, a.worker, a.record, verdict="accept" if codes is None else "reject",
                reasons=codes or (), task_id=a.task_id, annotation_id=a.annotation_id, lead_time=a.lead_time))
