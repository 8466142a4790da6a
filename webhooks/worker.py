"""The judge loop's work: judge a task from LS, write the verdict back, apply ops decisions, reconcile.

Runs in the worker (and in `clesc reconcile`). Every step is idempotent: a job run twice, or killed
half-way and run again, leaves one prediction, one meta entry and one review task per rejection.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from label_config import consensus_result, load_taxonomy
from label_config.meta import with_judge
from label_config.render import REVIEW_DECISIONS
from label_config.schema import ATTRIBUTES, AUDIO, POOLS, REVIEW, WORD_KINDS
from label_config.records import user_id
from webhooks.judge import Policy, RulesJudge, TaskVerdict
from webhooks.judge.reliability import BORDERLINE, Skill
from webhooks.judge.rules import HARD_CONFIDENCE
from webhooks.judge.verdict import task_status
from webhooks.settings import Settings
from webhooks.store import Store

log = logging.getLogger("clesc.loop")
MODEL_PREFIX = "clesc-judge"


def make_judge(settings: Settings, backend: str | None = None):
    """The judge the settings ask for: `rules`, or `llm` (vLLM, with the rules as hints and fallback)."""
    kwargs: dict[str, Any] = {"overlap": settings.overlap, "review_min_confidence": settings.review_min_confidence}
    if settings.reject_on is not None:
        kwargs["rejects_on"] = frozenset(settings.reject_on)
    rules = RulesJudge(load_taxonomy(), Policy(**kwargs))
    if (backend or settings.judge) == "rules":
        return rules
    from webhooks.judge.llm import LLMConfig, LLMJudge

    if not settings.llm_url:
        raise ValueError("the llm judge needs CLESC_LLM_URL (the vLLM server's base URL with /v1)")
    return LLMJudge(LLMConfig(base_url=settings.llm_url, model=settings.llm_model, api_key=settings.llm_api_key,
                              timeout_s=settings.llm_timeout_s, concurrency=settings.llm_concurrency,
                              fallback=settings.llm_fallback), rules)


def with_overturns(verdict: TaskVerdict, overturned: set[int]) -> TaskVerdict:
    """The verdict after ops overturned the rejection of some annotations: those are accepted."""
    if not overturned or not verdict.rejected_ids:
        return verdict
    annotations = tuple(replace(a, verdict="accept") if a.annotation_id in overturned else a
                        for a in verdict.annotations)
    return replace(verdict, annotations=annotations, status=task_status(annotations, verdict.consensus))


def version_of(annotation: dict[str, Any]) -> str:
    """The annotation's `updated_at` in one canonical form (the SDK gives datetimes, task listings strings)."""
    value = annotation.get("updated_at")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dicts(items) -> list[dict[str, Any]]:
    return [i if isinstance(i, dict) else i.dict() for i in items]


class JudgeLoop:
    """The worker's jobs. `requeue(project_id, task_id)` hands a task back to the queue to be judged again
    (set by the JobQueue); without it, such tasks are judged here, after the job that asked for them."""

    def __init__(self, settings: Settings, store: Store, ls, judge: RulesJudge | None = None,
                 requeue: Callable[[int, int], None] | None = None):
        self.settings, self.store, self.ls = settings, store, ls
        self.judge = judge or make_judge(settings)
        self.taxonomy = self.judge.taxonomy
        self.requeue = requeue
        self._later: list[tuple[int, int]] = []

    @property
    def model_version(self) -> str:
        return f"{MODEL_PREFIX} {self.judge.version}"

    def _review_project(self) -> int | None:
        return next((pid for pid, role in self.store.project_roles().items() if role == REVIEW), None)

    # judging
    def judge_task(self, project_id: int, task_id: int) -> TaskVerdict | None:
        role = self.store.project_roles().get(project_id)
        event_ids = self.store.pending_event_ids(project_id, task_id)
        if role not in POOLS:
            self.store.finish_events(event_ids, "done", "not a pool project")
            return None
        log.info("judging project %d task %d", project_id, task_id)
        annotations = _dicts(self.ls.annotations.list(id=task_id))
        live = [a for a in annotations if not a.get("was_cancelled")]
        versions = {a["id"]: version_of(a) for a in live}
        self.store.record_seen(project_id, task_id, versions)
        verdict = with_overturns(self.judge.judge(task_id, live, skills=self._skills(project_id, live)),
                                 self.store.overturned(project_id, task_id))
        previous = self.store.verdict(project_id, task_id)
        same = previous is not None and previous["verdict"] == verdict.to_json() and \
            previous["versions"] == {str(k): v for k, v in versions.items()}
        prediction_id = previous["prediction_id"] if previous else None
        if not same:
            if previous is not None or verdict.status != "incomplete":  # a first incomplete one has nothing to show
                prediction_id = self._write_back(project_id, task_id, verdict, versions, prediction_id, live)
            self.store.save_verdict(project_id, task_id, verdict.to_json(), versions, prediction_id)
        moved = self.store.record_evidence(
            project_id, task_id, [(a.annotation_id, a.annotator, a.evidence, a.confidence or 0.0)
                                  for a in verdict.annotations if a.evidence is not None and a.annotator is not None],
            live=versions)
        self.store.finish_events(event_ids)
        log.info("task %d: %s (rejected %s)%s", task_id, verdict.status, list(verdict.rejected_ids),
                 " unchanged" if same else "")
        self._judge_again(project_id, task_id, moved)
        return verdict

    def _skills(self, project_id: int, live: list[dict[str, Any]]) -> dict[int, Skill]:
        """The annotators' skills as stored, with what this task's annotations said before left out."""
        owner = {a["id"]: user_id(a.get("completed_by")) for a in live}
        skills = self.store.skills(project_id, owner.values())
        for aid, evidence in self.store.evidence(project_id, owner).items():
            if owner.get(aid) in skills:
                skills[owner[aid]] = skills[owner[aid]] - evidence
        return skills

    def _judge_again(self, project_id: int, task_id: int, moved: dict[int, str]) -> None:
        """Hand back the tasks whose verdicts may change now that these annotators' skills moved."""
        again = sorted({t for annotator, how in moved.items()
                        for t in self.store.tasks_to_rejudge(project_id, annotator, how, *BORDERLINE)} - {task_id})
        if not again:
            return
        log.info("project %d: %d task(s) to judge again (skills moved: %s)", project_id, len(again),
                 ", ".join(f"annotator {a} {how}" for a, how in sorted(moved.items())))
        for t in again:
            if self.requeue is not None:
                self.requeue(project_id, t)
            else:
                self._later.append((project_id, t))

    def judge_pending_again(self) -> int:
        """Judge what `_judge_again` kept for later (no queue: `clesc reconcile`, tests); how many were judged."""
        done = 0
        while self._later:
            project_id, task_id = self._later.pop(0)
            self.judge_task(project_id, task_id)
            done += 1
        return done

    def _write_back(self, project_id: int, task_id: int, verdict: TaskVerdict, versions: dict[int, str],
                    prediction_id: int | None, annotations: list[dict[str, Any]]) -> int | None:
        prediction_id = self._write_prediction(task_id, verdict, prediction_id)
        task = self.ls.tasks.get(task_id)
        self.ls.tasks.update(task_id, meta=with_judge(task.meta, verdict.judge_meta()))
        wanted = set()
        auto = self.settings.auto_apply_confidence
        for av in verdict.annotations:
            if av.rejected and av.annotation_id is not None:
                key = f"{project_id}:{av.annotation_id}:{versions.get(av.annotation_id)}"
                wanted.add(key)
                known = self.store.review(key)
                if known is not None and known["decision"] != "withdrawn":
                    continue  # sent to ops, decided or applied already
                if self.settings.apply_rejections == "auto" or (auto is not None and (av.confidence or 0) >= auto):
                    log.info("task %d: rejection of annotation %d applied without review (confidence %.2f): %s",
                             task_id, av.annotation_id, av.confidence or 0,
                             "; ".join(f"{r.code}: {r.detail}" for r in av.reasons))
                    self._reject_annotation(av.annotation_id)
                    self.store.add_review(key, None, project_id, task_id, av.annotation_id, decision="auto")
                else:
                    annotation = next((a for a in annotations if a["id"] == av.annotation_id), {})
                    self._ensure_review_task(key, project_id, task, av, verdict, annotation)
        self._withdraw_reviews(project_id, task_id, wanted, versions)
        return prediction_id

    def _withdraw_reviews(self, project_id: int, task_id: int, wanted: set[str], versions: dict[int, str]) -> None:
        """Review tasks ops have not decided whose rejection the judge no longer proposes (judged again with
        more evidence) are taken out of the Review queue."""
        for review in self.store.open_reviews(project_id, task_id):
            if review["review_key"] in wanted or review["review_task_id"] is None:
                continue
            decided = any(not a.get("was_cancelled")
                          for a in _dicts(self.ls.annotations.list(id=review["review_task_id"])))
            if decided:
                continue  # ops are on it: their decision will be applied
            try:
                self.ls.tasks.delete(review["review_task_id"])
            except Exception as e:  # noqa: BLE001 - gone already
                log.info("review task %s not deleted: %s", review["review_task_id"], type(e).__name__)
            self.store.withdraw_review(review["review_key"])
            log.info("task %d: review of annotation %d withdrawn (the judge no longer proposes it)", task_id,
                     review["annotation_id"])

    def _write_prediction(self, task_id: int, verdict: TaskVerdict, prediction_id: int | None) -> int | None:
        ours = [p for p in _dicts(self.ls.predictions.list(task=task_id))
                if str(p.get("model_version") or "").startswith(MODEL_PREFIX)]
        result = consensus_result(verdict.consensus, self.taxonomy) if verdict.status != "incomplete" else []
        keep = next((p["id"] for p in ours if p["id"] == prediction_id), ours[0]["id"] if ours else None)
        for p in ours:
            if p["id"] != keep or not result:
                self.ls.predictions.delete(p["id"])
        if not result:
            return None
        accepted = sum(1 for a in verdict.annotations if not a.rejected)
        score = accepted / max(1, len(verdict.annotations))
        if keep is not None:
            self.ls.predictions.update(keep, result=result, model_version=self.model_version, score=score)
            return keep
        return self.ls.predictions.create(task=task_id, result=result,
                            model_version=self.model_version, score=score).id

    def _ensure_review_task(self, key: str, project_id: int, task, av, verdict: TaskVerdict,
                            annotation: dict[str, Any]) -> None:
        review_project = self._review_project()
        if review_project is None:
            log.warning("no Review project registered (run `clesc setup`); rejection of %s not sent", av.annotation_id)
            return
        query = {"filters": {"conjunction": "and", "items": [{"filter": "filter:tasks:data.review_key",
                                                              "operator": "equal", "type": "String", "value": key}]}}
        existing = next(iter(self.ls.tasks.list(project=review_project, query=json.dumps(query), page_size=10)), None)
        if existing is None:
            existing = self.ls.tasks.create(project=review_project,
                                    data=self._review_data(key, project_id, task, av, verdict, annotation))
        self.store.add_review(key, existing.id, project_id, task.id, av.annotation_id)

    def _review_data(self, key: str, project_id: int, task, av, verdict: TaskVerdict,
                     annotation: dict[str, Any]) -> dict[str, Any]:
        labels = {}
        for r in annotation.get("result") or []:
            value = r.get("value") or {}
            if "choices" in value:
                labels[r.get("from_name")] = ", ".join(value["choices"])
            elif "taxonomy" in value:
                labels[r.get("from_name")] = ", ".join(p[-1] for p in value["taxonomy"] if p)
            elif "text" in value:
                labels[r.get("from_name")] = "; ".join(value["text"])
        c = verdict.consensus
        return {
            AUDIO: (task.data or {}).get(AUDIO),
            "labels": " | ".join(f"{k}: {v}" for k, v in labels.items()) or "(empty)",
            "reasons": "; ".join(f"{r.code}: {r.detail}" for r in av.reasons),
            "consensus": " | ".join(f"{k}: {c[k] if not isinstance(c[k], list) else ', '.join(c[k]) or '-'}"
                                    for k in (*ATTRIBUTES, *WORD_KINDS)),
            "confidence": av.confidence,
            "reliability": (f"{av.reliability:.0%} of this annotator's work looks honest"
                            if av.reliability is not None else "not estimated"),
            "review_key": key, "pool_project": project_id, "pool_task": task.id,
            "annotation_id": av.annotation_id, "annotator": av.annotator,
        }

    def _reject_annotation(self, annotation_id: int) -> None:
        fields: dict[str, Any] = {"last_action": "rejected"}
        if self.settings.cancel_on_uphold:
            fields["was_cancelled"] = True
        self.ls.annotations.update(annotation_id, **fields)

    # ops decisions
    def apply_decision(self, review_task_id: int) -> str | None:
        review_project = self._review_project() or -1
        event_ids = self.store.pending_event_ids(review_project, review_task_id)
        review = self.store.review_by_task(review_task_id)
        live = [a for a in _dicts(self.ls.annotations.list(id=review_task_id)) if not a.get("was_cancelled")]
        self.store.record_seen(review_project, review_task_id, {a["id"]: version_of(a) for a in live})
        decision = None
        for ann in live:
            decision = parse_decision(ann.get("result") or []) or decision
        if review is None or decision is None:
            self.store.finish_events(event_ids, "done", "no review record or no decision")
            return None
        if review["decision"] != decision:
            if decision == "uphold":
                self._reject_annotation(review["annotation_id"])
            self.store.decide_review(review_task_id, decision)
            moved = self.store.decide_evidence(review["project_id"], review["annotation_id"], decision,
                                               random=self._rejected_for_randomness(review))
            self.judge_task(review["project_id"], review["task_id"])
            self._judge_again(review["project_id"], review["task_id"], moved)
        self.store.finish_events(event_ids)
        return decision

    def _rejected_for_randomness(self, review: dict[str, Any]) -> bool:
        """Whether the judge's rejection was for looking random (not for a contradiction or the like)."""
        stored = self.store.verdict(review["project_id"], review["task_id"])
        for a in (stored or {}).get("verdict", {}).get("annotations", []):
            if a.get("annotation_id") == review["annotation_id"]:
                return not any(r.get("code") in HARD_CONFIDENCE for r in a.get("reasons", []))
        return False

    # reconciliation
    def reconcile(self, enqueue=None, progress: Callable[[str], None] | None = None) -> dict[str, int]:
        """Process every task whose live annotations in LS differ from what the store has seen.

        Catches what LS never delivered (the service was down; LS does not retry webhooks).
        With `enqueue` (a JobQueue) the work goes to the workers; without, it is done here.
        """
        counts = {"tasks": 0, "changed": 0}
        for project_id, role in self.store.project_roles().items():
            seen = self.store.seen_live_versions(project_id)
            for task in list(self.ls.tasks.list(project=project_id, page_size=100, fields="all")):
                counts["tasks"] += 1
                current = {a["id"]: version_of(a) for a in _dicts(getattr(task, "annotations", None) or [])
                           if not a.get("was_cancelled")}
                if current == seen.get(task.id, {}):
                    continue
                counts["changed"] += 1
                self.store.add_event(
                    delivery_key=hashlib.sha256(json.dumps(["reconcile", project_id, task.id, sorted(current.items())]).encode()).hexdigest(),
                    source="reconcile", action="RECONCILE", project_id=project_id, task_id=task.id, annotation=None)
                if progress:
                    progress(f"{role} project {project_id} task {task.id}: {len(current)} live annotation(s) to process")
                if enqueue is not None:
                    enqueue.apply_decision(task.id) if role == REVIEW else enqueue.judge(project_id, task.id)
                elif role == REVIEW:
                    self.apply_decision(task.id)
                else:
                    self.judge_task(project_id, task.id)
        counts["judged_again"] = self.judge_pending_again()
        return counts


def parse_decision(result: list[dict[str, Any]]) -> str | None:
    """'uphold' or 'overturn' from a Review-project annotation result (alias or label)."""
    by_label = {label: alias for alias, label in REVIEW_DECISIONS.items()}
    for r in result:
        if r.get("from_name") == "decision":
            for choice in (r.get("value") or {}).get("choices") or []:
                if choice in REVIEW_DECISIONS:
                    return choice
                if choice in by_label:
                    return by_label[choice]
    return None
