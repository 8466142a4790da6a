"""The judge loop's work: judge a task from LS, write the verdict back, apply ops decisions, reconcile.

Runs in the worker (and in `clesc reconcile`). Every step is idempotent: a job run twice, or killed
half-way and run again, leaves one prediction, one meta entry and one review task per rejection.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlparse
from dataclasses import replace
from datetime import datetime
from typing import Any

from label_studio_sdk.core.api_error import ApiError

from label_config import consensus_result, load_taxonomy
from label_config.meta import (
    JudgeMeta,
    PairMeta,
    ReviewMeta,
    pair_json,
    read_judge,
    read_pair,
    read_review,
    with_judge,
    with_pair,
    with_review,
)
from label_config.render import REVIEW_DECISIONS, review_details
from label_config.schema import ATTRIBUTES, AUDIO, POOLS, REVIEW, WORD_KINDS
from label_config.records import current_annotations, is_cancelled, user_id
from webhooks.judge import Policy, RulesJudge, TaskVerdict
from webhooks.judge.reliability import BORDERLINE, Skill
from webhooks.judge.rules import ALONE_CODES, HARD_CONFIDENCE
from webhooks.judge.verdict import task_status
from webhooks.settings import Settings
from webhooks.store import Store, TaskLease

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
                              fallback=settings.llm_fallback, first_token_s=settings.llm_first_token_s,
                              health_timeout_s=settings.llm_health_timeout_s,
                              invalid_retries=settings.llm_invalid_retries), rules)


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
        self.task_lock: Callable[[int, int], Any] = lambda project_id, task_id: TaskLease(
            store, project_id, task_id, settings.job_lease_s, wait_s=settings.job_lease_s + 30)
        """The pool task's lease (webhooks.store.TaskLease): here it waits for a worker's job on the task to end
        (`clesc reconcile` while workers run); the JobQueue's does not (its job is retried)."""
        self._later: list[tuple[int, int]] = []
        self._emails: dict[int, str] = {}
        if not settings.ops_users:
            log.warning("CLESC_OPS_USERS is not set: a Review decision by any Label Studio user counts")

    @property
    def model_version(self) -> str:
        return f"{MODEL_PREFIX} {self.judge.version}"

    def _review_project(self) -> int | None:
        return self.store.project_with_role(REVIEW)

    # judging
    def judge_task(self, project_id: int, task_id: int) -> TaskVerdict | None:
        role = self.store.project_roles().get(project_id)
        event_ids = self.store.pending_event_ids(project_id, task_id)
        if role not in POOLS:
            self.store.finish_events(event_ids, "done", "not a pool project")
            return None
        if not self._in_project(project_id, task_id, event_ids):
            return None
        log.info("judging project %d task %d", project_id, task_id)
        annotations = _dicts(self.ls.annotations.list(id=task_id))
        live = [a for a in annotations if not is_cancelled(a)]
        versions = {a["id"]: version_of(a) for a in live}
        self.store.record_seen(project_id, task_id, versions)
        used = self._skills(project_id, live)
        verdict = with_overturns(self.judge.judge(task_id, live, skills=used),
                                 self.store.overturned(project_id, task_id))
        previous = self.store.verdict(project_id, task_id)
        same = previous is not None and previous["verdict"] == verdict.to_json() and \
            previous["versions"] == {str(k): v for k, v in versions.items()}
        prediction_id = previous["prediction_id"] if previous else None
        if not same:
            if _shows(verdict.to_json()) or (previous is not None and _shows(previous["verdict"])):
                # an incomplete verdict that rejects nothing, after such ones (or none), has nothing to show; one
                # that rejects (an invalid or superseded label) goes to ops: LS stops handing out a task at its
                # overlap, and a user's second submission counts there, so it may wait for nobody else
                prediction_id = self._write_back(project_id, task_id, verdict, versions, prediction_id, live)
            self.store.save_verdict(project_id, task_id, verdict.to_json(), versions, prediction_id)
        # an invalid or superseded label takes no part in the votes: what it said before is dropped too
        outside = {a.annotation_id for a in verdict.annotations if any(r.code in ALONE_CODES for r in a.reasons)}
        moved = self.store.record_evidence(
            project_id, task_id, [(a.annotation_id, a.annotator, a.evidence, a.confidence or 0.0)
                                  for a in verdict.annotations if a.evidence is not None and a.annotator is not None],
            live=[aid for aid in versions if aid not in outside])
        self.store.finish_events(event_ids)
        log.info("task %d: %s (rejected %s)%s", task_id, verdict.status, list(verdict.rejected_ids),
                 " unchanged" if same else "")
        if any(used[a].flagged != now.flagged for a, now in self._skills(project_id, live).items() if a in used):
            moved = {**moved, -1: "flag"}  # a concurrent job flagged an annotator after this one read the skills
        self._judge_again(project_id, task_id, moved)
        return verdict

    def _in_project(self, project_id: int, task_id: int, event_ids: list[int]) -> bool:
        """Whether LS says the task is in that project. A webhook is only a hint (any member of the LS
        organisation can read its secret header and forge one): one naming a task of another project, or a
        task LS does not have, is logged and its events finished without effect, before anything is read
        or written."""
        try:
            actual = getattr(self.ls.tasks.get(task_id), "project", None)
        except ApiError as e:
            if e.status_code != 404:
                raise  # LS unreachable or failing: the job is retried, the events stay pending
            actual = "none (no such task)"
        if actual == project_id:
            return True
        log.warning("task %d is not in project %d (Label Studio says: %s); %d event(s) finished without effect",
                    task_id, project_id, actual, len(event_ids))
        self.store.finish_events(event_ids, "done", f"task {task_id} is not in project {project_id}")
        return False

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
        # this task too: it was judged on the skills before its own evidence moved them
        again = sorted({t for annotator, how in moved.items() if annotator >= 0
                        for t in self.store.tasks_to_rejudge(project_id, annotator, how, *BORDERLINE)}
                       | ({task_id} if moved else set()))
        if not again:
            return
        log.info("project %d: %d task(s) to judge again (skills moved: %s)", project_id, len(again),
                 ", ".join(f"annotator {a} {how}" if a >= 0 else "flag raised meanwhile" for a, how in sorted(moved.items())))
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
            with self.task_lock(project_id, task_id):
                self.judge_task(project_id, task_id)
            done += 1
        return done

    def _write_back(self, project_id: int, task_id: int, verdict: TaskVerdict, versions: dict[int, str],
                    prediction_id: int | None, annotations: list[dict[str, Any]]) -> int | None:
        prediction_id = self._write_prediction(task_id, verdict, prediction_id)
        task = self.ls.tasks.get(task_id)
        self.ls.tasks.update(task_id, meta=with_judge(task.meta, verdict.judge_meta()))
        self._refresh_partner(project_id, task, verdict, annotations)
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
                    self._ensure_review_task(key, project_id, task, av, verdict, annotation, annotations)
        self._withdraw_reviews(project_id, task_id, wanted, versions)
        return prediction_id

    def _refresh_partner(self, project_id: int, task, verdict: TaskVerdict, live: list[dict[str, Any]]) -> None:
        """The other pool's task of the same clip learns this verdict at once (its `clesc_pair` meta), not at the
        next `clesc sync`. Nothing to do before sync has linked the pair."""
        link = read_pair(task.meta)
        if link is None:
            return
        try:
            partner = self.ls.tasks.get(link.task)
        except Exception as e:  # noqa: BLE001 - deleted: sync will repair the link
            log.info("task %d: partner task %d not found (%s)", task.id, link.task, type(e).__name__)
            return
        wanted = PairMeta(pool=self.store.project_roles().get(project_id, "pool"), project=project_id, task=task.id,
                          status=verdict.status, consensus=verdict.to_json()["consensus"],
                          annotations=len(current_annotations(live)),
                          judged_by="judge")
        if pair_json(partner.meta) != wanted.to_json():
            self.ls.tasks.update(partner.id, meta=with_pair(partner.meta, wanted))

    def _withdraw_reviews(self, project_id: int, task_id: int, wanted: set[str], versions: dict[int, str]) -> None:
        """Review tasks ops have not decided whose rejection the judge no longer proposes (judged again with
        more evidence) are taken out of the Review queue."""
        for review in self.store.open_reviews(project_id, task_id):
            if review["review_key"] in wanted or review["review_task_id"] is None:
                continue
            decided = any(not is_cancelled(a)
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
        created = self.ls.predictions.create(task=task_id, result=result,
                                             model_version=self.model_version, score=score).id
        return self._one_prediction(task_id, created)

    def _one_prediction(self, task_id: int, created: int) -> int:
        """Two jobs for one task that ran at once (one's lease ran out: a worker stalled past CLESC_JOB_LEASE_S)
        each created one: the oldest stays, the others go (each job converges on the same one)."""
        ours = sorted(p["id"] for p in _dicts(self.ls.predictions.list(task=task_id))
                      if str(p.get("model_version") or "").startswith(MODEL_PREFIX))
        for extra in ours[1:]:
            try:
                self.ls.predictions.delete(extra)
            except Exception as e:  # noqa: BLE001 - the other job deleted it
                log.info("prediction %s not deleted: %s", extra, type(e).__name__)
        return ours[0] if ours else created

    def _ensure_review_task(self, key: str, project_id: int, task, av, verdict: TaskVerdict,
                            annotation: dict[str, Any], annotations: list[dict[str, Any]]) -> None:
        review_project = self._review_project()
        if review_project is None:
            log.warning("no Review project registered (run `clesc setup`); rejection of %s not sent", av.annotation_id)
            return
        query = {"filters": {"conjunction": "and", "items": [{"filter": "filter:tasks:data.review_key",
                                                              "operator": "equal", "type": "String", "value": key}]}}
        found = sorted(t.id for t in self.ls.tasks.list(project=review_project, query=json.dumps(query), page_size=10))
        if not found:
            self.ls.tasks.create(project=review_project, data=self._review_data(
                key, project_id, task, av, verdict, annotation, annotations))
            found = self._one_review_task(review_project, query)
        self.store.add_review(key, found[0], project_id, task.id, av.annotation_id)

    def _one_review_task(self, review_project: int, query: dict[str, Any]) -> list[int]:
        """Two jobs for one task that ran at once (one's lease ran out: a worker stalled past CLESC_JOB_LEASE_S)
        may each have made the review task: the oldest stays, the others go, and the store keeps the oldest
        (`Store.add_review`), so both jobs converge on one."""
        ids = sorted(t.id for t in self.ls.tasks.list(project=review_project, query=json.dumps(query), page_size=10))
        for extra in ids[1:]:
            try:
                self.ls.tasks.delete(extra)
            except Exception as e:  # noqa: BLE001 - the other job deleted it
                log.info("review task %s not deleted: %s", extra, type(e).__name__)
        return ids[:1]

    def _review_data(self, key: str, project_id: int, task, av, verdict: TaskVerdict,
                     annotation: dict[str, Any], annotations: list[dict[str, Any]]) -> dict[str, Any]:
        """What a Review task shows: the clip, the pool, who is under review, all the task's labels side by side,
        the ML backend's measures, a link to the pool task; and what links it back (review_key, ids, result_hash)."""
        c = verdict.consensus
        audio = (task.data or {}).get(AUDIO)
        role = self.store.project_roles().get(project_id, "pool")
        columns = [(self._user_name(user_id(a.get("completed_by"))), _labels(a), a.get("id") == av.annotation_id)
                   for a in annotations]
        details = review_details(
            clip=_clip_name(audio), pool=role, annotator=self._user_name(av.annotator),
            task_url=f"{self.settings.ls_url}/projects/{project_id}/data?task={task.id}" if self.settings.ls_url else None,
            confidence=av.confidence, reliability=_reliability_text(av.reliability), columns=columns,
            measures=self._measures(task.id))
        return {
            AUDIO: audio,
            "details": details,
            "labels": " | ".join(f"{k}: {v}" for k, v in _labels(annotation).items()) or "(empty)",
            "reasons": "; ".join(f"{r.code}: {r.detail}" for r in av.reasons),
            "consensus": " | ".join(f"{k}: {c[k] if not isinstance(c[k], list) else ', '.join(c[k]) or '-'}"
                                    for k in (*ATTRIBUTES, *WORD_KINDS)),
            "confidence": av.confidence,
            "reliability": _reliability_text(av.reliability),
            "clip": _clip_name(audio), "pool": role, "annotator_email": self._user_name(av.annotator),
            "pool_task_url": f"{self.settings.ls_url}/projects/{project_id}/data?task={task.id}",
            "review_key": key, "pool_project": project_id, "pool_task": task.id,
            "annotation_id": av.annotation_id, "annotator": av.annotator, "result_hash": result_hash(annotation),
        }

    def _user_name(self, user: int | None) -> str:
        """An LS user's e-mail (cached), or `user <id>` when LS does not say."""
        if user is None:
            return "unknown annotator"
        if user not in self._emails:
            try:
                self._emails[user] = self.ls.users.get(user).email or f"user {user}"
            except Exception:  # noqa: BLE001 - a deleted user: keep the id
                self._emails[user] = f"user {user}"
        return self._emails[user]

    def _measures(self, task_id: int) -> dict[str, str]:
        """The ML backend's measures on a pool task, as ops read them ("" when there is no prediction)."""
        for p in _dicts(self.ls.predictions.list(task=task_id)):
            if str(p.get("model_version") or "").startswith("clesc-acoustic"):
                for item in p.get("result") or []:
                    m = ((item.get("meta") or {}).get("measures") or {}) if isinstance(item, dict) else {}
                    if m:
                        return {name: fmt.format(m[field]) for name, field, fmt in MEASURES_SHOWN
                                if isinstance(m.get(field), (int, float))}
        return {}

    def _reject_annotation(self, annotation_id: int) -> None:
        fields: dict[str, Any] = {"last_action": "rejected"}
        if self.settings.cancel_on_uphold:
            fields["was_cancelled"] = True
        self.ls.annotations.update(annotation_id, **fields)

    def _restore_annotation(self, annotation_id: int) -> None:
        """Undo an upheld rejection that ops overturned afterwards: the annotation counts again."""
        self.ls.annotations.update(annotation_id, was_cancelled=False, last_action="accepted")

    # ops decisions
    def _is_ops(self, user: int | None) -> bool:
        ops = self.settings.ops_users
        if not ops:
            return True
        return user is not None and (str(user) in ops or self._user_name(user).lower() in ops)

    def apply_decision(self, review_task_id: int) -> str | None:
        """Apply the ops decision made in a Review task, if it is one that counts.

        Only decisions by CLESC_OPS_USERS count (others are ignored, logged and kept in the Review task's meta);
        a decision made for an earlier version of the annotation (the annotator has changed it since) is stale:
        not applied, the task is judged again. Upheld: the annotation is rejected (and cancelled); overturned after
        an uphold: restored. The decision is kept in the pool task's meta, and moves the annotator's skill.
        """
        review_project = self._review_project() or -1
        event_ids = self.store.pending_event_ids(review_project, review_task_id)
        if not self._in_project(review_project, review_task_id, event_ids):
            return None
        review = self.store.review_by_task(review_task_id)
        live = [a for a in _dicts(self.ls.annotations.list(id=review_task_id)) if not is_cancelled(a)]
        self.store.record_seen(review_project, review_task_id, {a["id"]: version_of(a) for a in live})
        counted, ignored = [], []
        for ann in sorted(live, key=lambda a: (version_of(a), a["id"])):
            decision = parse_decision(ann.get("result") or [])
            if decision is None:
                continue
            user = user_id(ann.get("completed_by"))
            (counted if self._is_ops(user) else ignored).append((ann, decision, user))
        if ignored:
            self._note_ignored(review_task_id, ignored)
        if review is None or not counted:
            self.store.finish_events(event_ids, "done", "no review record or no decision by ops")
            return None
        ann, decision, user = counted[-1]
        project_id, task_id = review["project_id"], review["task_id"]
        with self.task_lock(project_id, task_id):
            current = self.store.review_by_task(review_task_id)
            if current["decision"] == decision:
                self.store.finish_events(event_ids)
                return decision
            if self._stale(review_task_id, current):
                self.store.decide_review(review_task_id, "stale")
                self._set_review_state(review_task_id, "stale", "the annotation changed after the judge proposed this")
                log.info("review task %d: decision on an older version of annotation %d; judged again",
                         review_task_id, current["annotation_id"])
                self.judge_task(project_id, task_id)
                self.store.finish_events(event_ids)
                return None
            if decision == "uphold":
                self._reject_annotation(current["annotation_id"])
            elif current["decision"] == "uphold":
                self._restore_annotation(current["annotation_id"])
            self.store.decide_review(review_task_id, decision)
            self._set_review_state(review_task_id, "upheld" if decision == "uphold" else "overturned", "")
            self._record_decision(project_id, task_id, current, ann, decision, user)
            moved = self.store.decide_evidence(project_id, current["annotation_id"], decision,
                                               random=self._rejected_for_randomness(current))
            self.judge_task(project_id, task_id)
        self._judge_again(project_id, task_id, moved)
        self.store.finish_events(event_ids)
        return decision

    def _stale(self, review_task_id: int, review: dict[str, Any]) -> bool:
        """The pool annotation is gone, or its labels changed since the rejection was proposed."""
        data = self.ls.tasks.get(review_task_id).data or {}
        try:
            annotation = self.ls.annotations.get(review["annotation_id"])
        except Exception:  # noqa: BLE001 - deleted
            return True
        wanted = data.get("result_hash")
        return wanted is not None and result_hash(_dicts([annotation])[0]) != wanted

    def _record_decision(self, project_id: int, task_id: int, review: dict[str, Any], decision_annotation,
                         decision: str, user: int | None) -> None:
        """The decision, with its reasons, decider, time and comment, appended to the pool task's meta."""
        stored = self.store.verdict(project_id, task_id) or {}
        reasons = next((a.get("reasons", []) for a in stored.get("verdict", {}).get("annotations", [])
                        if a.get("annotation_id") == review["annotation_id"]), [])
        annotator = next((a.get("annotator") for a in stored.get("verdict", {}).get("annotations", [])
                          if a.get("annotation_id") == review["annotation_id"]), None)
        task = self.ls.tasks.get(task_id)
        judged = read_judge(task.meta) or JudgeMeta("needs_review", {})
        entry = {"annotation_id": review["annotation_id"], "annotator": annotator, "decision": decision,
                 "reasons": [r.get("code") for r in reasons], "decided_by": self._user_name(user),
                 "decided_at": version_of(decision_annotation), "comment": _comment(decision_annotation),
                 "version": review["review_key"].split(":", 2)[-1]}
        self.ls.tasks.update(task_id, meta=with_judge(task.meta, replace(judged, decisions=(*judged.decisions, entry))))

    def _set_review_state(self, review_task_id: int, state: str, note: str) -> None:
        task = self.ls.tasks.get(review_task_id)
        current = read_review(task.meta) or ReviewMeta()
        self.ls.tasks.update(review_task_id, meta=with_review(task.meta, replace(current, state=state, note=note)))

    def _note_ignored(self, review_task_id: int, ignored: list) -> None:
        task = self.ls.tasks.get(review_task_id)
        current = read_review(task.meta) or ReviewMeta()
        known = {i.get("annotation_id") for i in current.ignored}
        new = [{"annotation_id": ann["id"], "by": self._user_name(user), "decision": decision, "at": version_of(ann)}
               for ann, decision, user in ignored if ann["id"] not in known]
        if new:
            for item in new:
                log.warning("review task %d: decision %s by %s ignored (not in CLESC_OPS_USERS)", review_task_id,
                            item["decision"], item["by"])
            self.ls.tasks.update(review_task_id, meta=with_review(task.meta, replace(current, ignored=(*current.ignored, *new))))

    def _rejected_for_randomness(self, review: dict[str, Any]) -> bool:
        """Whether the judge's rejection was for looking random (not for a contradiction or the like)."""
        stored = self.store.verdict(review["project_id"], review["task_id"])
        for a in (stored or {}).get("verdict", {}).get("annotations", []):
            if a.get("annotation_id") == review["annotation_id"]:
                # a definite finding (a contradiction, an invalid or superseded label) says nothing of randomness
                return not any(r.get("code") in HARD_CONFIDENCE or r.get("code") in ALONE_CODES
                               for r in a.get("reasons", []))
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
                           if not is_cancelled(a)}
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
                    self.apply_decision(task.id)  # takes the pool task's lease
                else:
                    with self.task_lock(project_id, task.id):
                        self.judge_task(project_id, task.id)
        counts["judged_again"] = self.judge_pending_again()
        return counts


MEASURES_SHOWN = (("speech level", "active_level_dbfs", "{:.1f} dBFS"), ("loudness", "loudness_lufs", "{:.1f} LUFS"),
                  ("syllable rate", "syllable_rate", "{:.1f}/s"), ("median F0", "f0_median_hz", "{:.0f} Hz"),
                  ("F0 range", "f0_range_st", "{:.1f} st"))
"""The ML backend's measures a Review task shows (what settles "loud or quiet?"), if the prediction has them."""


def result_hash(annotation: dict[str, Any]) -> str:
    """The version of an annotation's labels (its result), unchanged by a rejection or a cancel."""
    return hashlib.sha256(json.dumps(annotation.get("result") or [], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _labels(annotation: dict[str, Any]) -> dict[str, str]:
    """An annotation's result as text per control (raw: it may be an invalid label)."""
    out: dict[str, str] = {}
    for r in annotation.get("result") or []:
        if not isinstance(r, dict):
            continue
        value = r.get("value") or {}
        if "choices" in value:
            out[str(r.get("from_name"))] = ", ".join(map(str, value["choices"]))
        elif "taxonomy" in value:
            out[str(r.get("from_name"))] = ", ".join(str(p[-1]) for p in value["taxonomy"] if p)
        elif "text" in value:
            text = value["text"]
            out[str(r.get("from_name"))] = "; ".join(map(str, text if isinstance(text, list) else [text]))
    return out


def _comment(annotation: dict[str, Any]) -> str:
    return _labels(annotation).get("comment", "")


def _clip_name(audio: Any) -> str:
    """The file name of a task's audio (an LS local-files path, an upload or a URL)."""
    if not isinstance(audio, str):
        return "(no audio)"
    parsed = urlparse(audio)
    path = (parse_qs(parsed.query).get("d") or [parsed.path])[0]
    return PurePosixPath(path).name or audio


def _reliability_text(reliability: float | None) -> str:
    return (f"{reliability:.0%} of this annotator's work looks honest" if reliability is not None
            else "reliability not estimated")


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


def _shows(verdict: Mapping[str, Any]) -> bool:
    """Whether a verdict (its JSON) has something to write back: a consensus to predict, or a rejection for ops."""
    return verdict.get("status") != "incomplete" or any(
        a.get("verdict") == "reject" for a in verdict.get("annotations") or [])
