"""The rules judge's verdicts on a Dataset that carries none (a CLESC file, exports of unjudged projects).

So the report's judge section says what the judge would reject. Large datasets are judged in one
process per core.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from label_config.schema import POOLS
from scripts.pools.dataset import Annotation, Dataset, collector_paused

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
    out = replace(ds, annotations=[], judged=False)
    with collector_paused():
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
                reasons=codes or (), task_id=a.task_id, annotation_id=a.annotation_id, lead_time=a.lead_time,
                created_at=a.created_at, updated_at=a.updated_at))
