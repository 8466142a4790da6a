"""The link between a clip's Expert and Crowd tasks, written into both tasks' meta (`clesc_pair`).

Each task's meta carries the other pool's task, judge status and consensus (and how many
annotations it has); `clesc import` and `clesc sync` both write it through `PairWriter`, only where
it differs. Optionally the Expert consensus becomes a prediction in the Crowd task (model_version
"clesc-expert-consensus"), removed again when the Expert task loses its consensus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from label_config.meta import PairMeta, pair_json, read_judge, with_pair
from label_config.records import consensus_result
from label_config.schema import POOLS
from label_config.taxonomy import Taxonomy, load_taxonomy
from webhooks.judge.verdict import empty_consensus

REFERENCE_MODEL_VERSION = "clesc-expert-consensus"


@dataclass
class PairCounts:
    updated: int = 0
    unchanged: int = 0
    predictions: int = 0


class PoolSide:
    """What one pool says about a clip: status and consensus, from the judge's meta or computed here."""

    def __init__(self, taxonomy: Taxonomy | None = None):
        from webhooks.judge.rules import RulesJudge

        self.judge = RulesJudge(taxonomy or load_taxonomy())

    def state(self, task: Any) -> dict[str, Any]:
        anns = [a for a in (task.annotations or []) if isinstance(a, Mapping) and not a.get("was_cancelled")]
        judged = read_judge(task.meta)
        if judged is not None and judged.consensus:
            return {"status": judged.status, "consensus": dict(judged.consensus), "annotations": len(anns),
                    "judged_by": "judge"}
        if not anns:
            return {"status": "incomplete", "consensus": empty_consensus(), "annotations": 0, "judged_by": "sync"}
        verdict = self.judge.judge(task.id, anns)
        return {"status": judged.status if judged is not None else verdict.status,
                "consensus": verdict.to_json()["consensus"], "annotations": len(anns),
                "judged_by": "judge" if judged is not None else "sync"}


class PairWriter:
    def __init__(self, client: Any, projects: Mapping[str, int], *, reference_prediction: bool = False,
                 taxonomy: Taxonomy | None = None):
        self.client = client
        self.projects = dict(projects)
        self.reference_prediction = reference_prediction
        self.taxonomy = taxonomy or load_taxonomy()
        self.side = PoolSide(self.taxonomy)

    def write_pairs(self, tasks: Mapping[str, Mapping[str, Any]], keys: Iterable[str],
                    progress: Callable[[str, int], None] | None = None) -> PairCounts:
        """For each clip in `keys` with a task in both pools (`tasks`: pool -> clip -> task read with
        annotations and meta): the link and the other pool's state in each task's meta, written only
        where it differs; the reference prediction when asked."""
        report = PairCounts()
        for key in keys:
            pair = {p: tasks[p].get(key) for p in POOLS}
            if any(t is None for t in pair.values()):
                continue
            states = {p: self.side.state(pair[p]) for p in POOLS}
            for pool, other in (("expert", "crowd"), ("crowd", "expert")):
                wanted = PairMeta(other, self.projects[other], pair[other].id, **states[other])
                if pair_json(pair[pool].meta) == wanted.to_json():
                    report.unchanged += 1
                    continue
                fresh = self.client.tasks.get(pair[pool].id)  # merge into the newest meta: the judge may have written since
                self.client.tasks.update(pair[pool].id, meta=with_pair(fresh.meta, wanted))
                report.updated += 1
            if self.reference_prediction:
                report.predictions += self._reference(pair["crowd"].id, states["expert"])
            if progress is not None:
                progress("linking", 1)
        return report

    def _reference(self, crowd_task: int, expert: Mapping[str, Any]) -> int:
        """Keep one expert-consensus prediction on the Crowd task; return 1 if something was written."""
        ours = [p for p in self.client.predictions.list(task=crowd_task) if p.model_version == REFERENCE_MODEL_VERSION]
        result = consensus_result(dict(expert["consensus"]), self.taxonomy) if expert["status"] == "accepted" else []
        written = 0
        for extra in ours[1:] if result else ours:
            self.client.predictions.delete(extra.id)
            written = 1
        if result:
            if ours and ours[0].result == result:
                return written
            if ours:
                self.client.predictions.update(ours[0].id, result=result, model_version=REFERENCE_MODEL_VERSION)
            else:
                self.client.predictions.create(task=crowd_task, result=result, model_version=REFERENCE_MODEL_VERSION)
            written = 1
        return written


