"""The link between a clip's Expert and Crowd tasks, written into both tasks' meta (`clesc_pair`).

Each task's meta carries the other pool's task, judge status and consensus (and how many
annotations it has); `clesc import` and `clesc sync` both write it through `PairWriter`, only where
it differs. Optionally the Expert consensus becomes a prediction in the Crowd task (model_version
"clesc-expert-consensus"), removed again when the Expert task loses its consensus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from label_config.meta import PairMeta, pair_json, read_judge, with_pair
from label_config.records import consensus_result, current_annotations, is_cancelled
from label_config.schema import POOLS
from label_config.taxonomy import Taxonomy, load_taxonomy
from webhooks.judge.verdict import empty_consensus

REFERENCE_MODEL_VERSION = "clesc-expert-consensus"
CONCURRENCY = 8
"""Label Studio writes in flight at once (import's and sync's task updates): LS serves them in parallel."""


def run_bounded(calls: Iterable[Callable[[], Any]], concurrency: int = CONCURRENCY,
                done: Callable[[Any], None] | None = None) -> None:
    """Run the calls `concurrency` at a time, `done(result)` after each (in this thread). The first error (or
    Ctrl-C in the caller) cancels what has not started and is raised; what finished stays done."""
    calls = iter(calls)
    with ThreadPoolExecutor(concurrency) as pool:
        running = set()
        try:
            while True:
                while len(running) < 2 * concurrency:
                    call = next(calls, None)
                    if call is None:
                        break
                    running.add(pool.submit(call))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_EXCEPTION)
                for f in finished:
                    result = f.result()  # raises the call's error
                    if done is not None:
                        done(result)
        except BaseException:
            for f in running:
                f.cancel()
            raise


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
        anns = [a for a in (task.annotations or []) if isinstance(a, Mapping) and not is_cancelled(a)]
        counted = len(current_annotations(anns))  # one per annotator, as the judge counts them
        judged = read_judge(task.meta)
        if judged is not None and judged.consensus:
            return {"status": judged.status, "consensus": dict(judged.consensus), "annotations": counted,
                    "judged_by": "judge"}
        if not anns:
            return {"status": "incomplete", "consensus": empty_consensus(), "annotations": 0, "judged_by": "sync"}
        verdict = self.judge.judge(task.id, anns)
        return {"status": judged.status if judged is not None else verdict.status,
                "consensus": verdict.to_json()["consensus"], "annotations": counted,
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
                    progress: Callable[..., None] | None = None) -> PairCounts:
        """For each clip in `keys` with a task in both pools (`tasks`: pool -> clip -> task read with
        annotations and meta): the link and the other pool's state in each task's meta, written only
        where it differs; the reference prediction when asked."""
        report = PairCounts()
        writes: list[Callable[[], int]] = []
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
                writes.append(lambda task_id=pair[pool].id, wanted=wanted: self.write_link(task_id, wanted))
            if self.reference_prediction:
                writes.append(lambda crowd=pair["crowd"].id, expert=states["expert"]: -self._reference(crowd, expert))
            if progress is not None:
                progress("linking", 1)

        def count(result: int) -> None:
            if result > 0:
                report.updated += 1
            elif result < 0:
                report.predictions += 1
            if progress is not None:
                progress("writing links", 1, len(writes))

        run_bounded(writes, done=count)
        return report

    def write_link(self, task_id: int, wanted: PairMeta) -> int:
        """Write one task's link, merged into its newest meta (the judge may have written since it was read)."""
        fresh = self.client.tasks.get(task_id)
        self.client.tasks.update(task_id, meta=with_pair(fresh.meta, wanted))
        return 1

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


