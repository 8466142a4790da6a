"""The rules judge's verdicts on a Dataset that carries none (a CLESC file, exports of unjudged projects).

So the report's judge section says what the judge would reject. Each pool is judged as one batch: the
annotators' skills are estimated from all of the pool's clips (webhooks/judge/rules.py `judge_tasks`),
as `clesc judge` does for an export, and kept in `Dataset.reliability`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from label_config.schema import POOLS
from scripts.pools.dataset import Annotation, Dataset, collector_paused


def _default_judge() -> Any:
    """One RulesJudge per process (building one groups the taxonomy's concepts)."""
    from webhooks.judge.rules import RulesJudge

    if "judge" not in _default_judge.__dict__:
        _default_judge.judge = RulesJudge()
    return _default_judge.judge


def with_rules_verdicts(ds: Dataset, judge: Any = None) -> Dataset:
    """`ds` with the rules judge's verdicts on every clip of each pool, where the data brought none.

    The judge sees each annotation by its index as a stand-in id and its worker as the annotator.
    """
    if ds.judged:
        return ds
    judge = judge or _default_judge()
    out = replace(ds, annotations=[], judged=False, reliability={})
    for pool in POOLS:
        work = list(ds.by_clip(pool).items())
        tasks = [(None, [replace(a.record, annotation_id=i, annotator=a.worker) for i, a in enumerate(anns)])
                 for _, anns in work]
        verdicts, skills = judge.judge_tasks(tasks)
        out.reliability[pool] = {worker: round(skill.reliability, 4) for worker, skill in skills.items()}
        with collector_paused():
            for (key, anns), verdict in zip(work, verdicts):
                clip = out.clips[key]
                clip.status.setdefault(pool, verdict.status)
                clip.consensus.setdefault(pool, verdict.to_json()["consensus"])
                by_index = {v.annotation_id: v for v in verdict.annotations}
                for i, a in enumerate(anns):
                    v = by_index.get(i)
                    rejected = v is not None and v.rejected
                    out.annotations.append(Annotation(
                        a.pool, a.clip, a.worker, a.record, verdict="reject" if rejected else "accept",
                        reasons=tuple(r.code for r in v.reasons) if rejected else (), task_id=a.task_id,
                        annotation_id=a.annotation_id, lead_time=a.lead_time,
                        created_at=a.created_at, updated_at=a.updated_at))
    return out
