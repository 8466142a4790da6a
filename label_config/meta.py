"""The task meta keys clesc-studio writes into Label Studio tasks, read and written in this one place.

- `meta["clesc"]` (`JudgeMeta`): the judge's verdict on a pool task: status, consensus, the ids of
  the annotations it proposes to reject and every annotation's reasons, which judge ran, and the
  ops decisions on its proposed rejections (`decisions`, kept when the judge writes a new verdict).
- `meta["clesc_pair"]` (`PairMeta`): the link to the other pool's task of the same clip, with what
  that pool says about the clip (status, consensus, annotation count).

Readers are lenient (a task edited by hand gives None or drops what does not fit, never an
exception); writers return a new meta dict that keeps every other key. docs/contracts.md describes
both keys for users' own scripts.

>>> meta = with_judge({"other": 1}, JudgeMeta("needs_review", {"pace": "fast"}, (5,),
...                                           {5: (("contradiction", "calm vs agitated"),)}, {"backend": "rules"}))
>>> sorted(meta), meta["clesc"]["reasons"]
(['clesc', 'other'], {'5': [{'code': 'contradiction', 'detail': 'calm vs agitated'}]})
>>> read_judge(meta).reason_codes(5), read_judge({}) is None
(('contradiction',), True)
>>> decided = read_judge({"clesc": {"status": "accepted", "decisions": [
...     {"annotation_id": "5", "decision": "uphold", "reasons": ["contradiction"], "decided_by": 3}, {"decision": "?"}]}})
>>> decided.decisions[0]["annotation_id"], decided.decisions[0]["decision"], len(decided.decisions)
(5, 'uphold', 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

JUDGE_KEY = "clesc"
"""Task meta key of the judge's verdict."""

PAIR_KEY = "clesc_pair"
"""Task meta key of the link to the other pool's task of the same clip."""

REVIEW_KEY = "clesc_review"
"""Task meta key, in a Review-project task, of what became of the proposed rejection."""


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _numbers(value: Any) -> dict[int, float]:
    out = {}
    for key, number in (_mapping(value) or {}).items():
        aid = _int(key)
        if aid is not None and isinstance(number, (int, float)) and not isinstance(number, bool):
            out[aid] = float(number)
    return out


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class JudgeMeta:
    """What `meta["clesc"]` holds. `reasons`: annotation id -> ((code, detail), ...).

    `decisions`: the ops decisions on proposed rejections, oldest first, each
    `{"annotation_id": int, "decision": "uphold" | "overturn", "reasons": [code, ...], "decided_by": str | int,
    "decided_at": ISO time, "comment": str, "version": str}` (further keys kept as they are). An upheld
    annotation may be cancelled in LS and so missing from the task's annotations: its decision stays here.
    """

    status: str
    consensus: Mapping[str, Any]
    rejected: tuple[int, ...] = ()
    reasons: Mapping[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    judge: Mapping[str, Any] = field(default_factory=dict)
    confidence: Mapping[int, float] = field(default_factory=dict)
    """annotation id -> P(bad) by the judge's findings."""
    reliability: Mapping[int, float] = field(default_factory=dict)
    """annotation id -> the share of its annotator's work that looked honest when it was judged."""
    decisions: tuple[dict[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further keys (added by later versions of the service), kept as they are."""

    def reason_codes(self, annotation_id: int) -> tuple[str, ...]:
        return tuple(code for code, _ in self.reasons.get(annotation_id, ()))

    def to_json(self) -> dict[str, Any]:
        out = {
            **self.extra,
            "status": self.status,
            "consensus": dict(self.consensus),
            "rejected": list(self.rejected),
            "reasons": {str(aid): [{"code": c, "detail": d} for c, d in items] for aid, items in self.reasons.items()},
            "judge": dict(self.judge),
            "confidence": {str(aid): c for aid, c in self.confidence.items()},
            "reliability": {str(aid): r for aid, r in self.reliability.items()},
        }
        if self.decisions:  # absent: no decision yet (metas written before decisions existed look the same)
            out["decisions"] = [dict(d) for d in self.decisions]
        return out

    @classmethod
    def from_json(cls, data: Any) -> JudgeMeta | None:
        data = _mapping(data)
        if data is None or not isinstance(data.get("status"), str):
            return None
        reasons: dict[int, tuple[tuple[str, str], ...]] = {}
        for key, items in (_mapping(data.get("reasons")) or {}).items():
            aid = _int(key)
            if aid is None or not isinstance(items, list):
                continue
            reasons[aid] = tuple((str(r.get("code", "")), str(r.get("detail", ""))) for r in items if isinstance(r, Mapping))
        known = {"status", "consensus", "rejected", "reasons", "judge", "confidence", "reliability", "decisions"}
        decisions = data.get("decisions")
        return cls(
            status=data["status"],
            consensus=dict(_mapping(data.get("consensus")) or {}),
            rejected=tuple(i for i in (_int(x) for x in _items(data.get("rejected"))) if i is not None),
            reasons=reasons,
            judge=dict(_mapping(data.get("judge")) or {}),
            confidence=_numbers(data.get("confidence")),
            reliability=_numbers(data.get("reliability")),
            decisions=tuple(d for d in map(read_decision, decisions if isinstance(decisions, list) else [])
                            if d is not None),
            extra={k: v for k, v in data.items() if k not in known},
        )


DECISIONS = ("uphold", "overturn")
"""What ops decide on a proposed rejection."""

DECISION_FIELDS = ("annotation_id", "decision", "reasons", "decided_by", "decided_at", "comment", "version")


def read_decision(data: Any) -> dict[str, Any] | None:
    """One ops decision of `meta["clesc"]["decisions"]`, normalised; None unless it names an annotation
    id and a decision (uphold or overturn). Missing fields get empty values; other keys are kept.

    >>> read_decision({"annotation_id": 7, "decision": "Overturn", "decided_by": "ops@example.com", "x": 1})
    {'x': 1, 'annotation_id': 7, 'decision': 'overturn', 'reasons': [], 'decided_by': 'ops@example.com', 'decided_at': '', 'comment': '', 'version': ''}
    >>> read_decision({"annotation_id": 7}) is None, read_decision("uphold") is None
    (True, True)
    """
    data = _mapping(data)
    if data is None:
        return None
    aid = _int(data.get("annotation_id"))
    decision = data.get("decision")
    decision = decision.strip().lower() if isinstance(decision, str) else None
    if aid is None or decision not in DECISIONS:
        return None
    reasons = data.get("reasons")
    decided_by = data.get("decided_by")
    return {
        **{k: v for k, v in data.items() if k not in DECISION_FIELDS},
        "annotation_id": aid,
        "decision": decision,
        "reasons": [str(r) for r in reasons if isinstance(r, (str, int))] if isinstance(reasons, list) else [],
        "decided_by": decided_by if isinstance(decided_by, (str, int)) and not isinstance(decided_by, bool) else "",
        **{k: str(data[k]) if isinstance(data.get(k), str) else "" for k in ("decided_at", "comment", "version")},
    }



@dataclass(frozen=True)
class PairMeta:
    """What `meta["clesc_pair"]` holds: the other pool's task and what that pool says of the clip."""

    pool: str
    project: int
    task: int
    status: str = "incomplete"
    consensus: Mapping[str, Any] = field(default_factory=dict)
    annotations: int = 0
    judged_by: str = "sync"

    def to_json(self) -> dict[str, Any]:
        return {"pool": self.pool, "project": self.project, "task": self.task, "status": self.status,
                "consensus": dict(self.consensus), "annotations": self.annotations, "judged_by": self.judged_by}

    @classmethod
    def from_json(cls, data: Any) -> PairMeta | None:
        data = _mapping(data)
        if data is None:
            return None
        project, task = _int(data.get("project")), _int(data.get("task"))
        if project is None or task is None or not isinstance(data.get("pool"), str):
            return None
        return cls(pool=data["pool"], project=project, task=task, status=str(data.get("status") or "incomplete"),
                   consensus=dict(_mapping(data.get("consensus")) or {}),
                   annotations=_int(data.get("annotations")) or 0, judged_by=str(data.get("judged_by") or "sync"))


REVIEW_STATES = ("open", "upheld", "overturned", "stale", "withdrawn")


@dataclass(frozen=True)
class ReviewMeta:
    """What `meta["clesc_review"]` of a Review task holds: the state of the proposed rejection, the decisions
    that were not counted (by someone not in CLESC_OPS_USERS: {"annotation_id", "by", "at"}), and a note."""

    state: str = "open"
    ignored: tuple[dict[str, Any], ...] = ()
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "ignored": [dict(i) for i in self.ignored], "note": self.note}

    @classmethod
    def from_json(cls, data: Any) -> ReviewMeta | None:
        data = _mapping(data)
        if data is None:
            return None
        state = data.get("state") if data.get("state") in REVIEW_STATES else "open"
        ignored = tuple(dict(i) for i in data.get("ignored") or [] if isinstance(i, Mapping))
        return cls(state=state, ignored=ignored, note=str(data.get("note") or ""))


def read_review(meta: Any) -> ReviewMeta | None:
    """What became of a Review task's proposed rejection, or None (not decided on yet)."""
    return ReviewMeta.from_json(_meta(meta).get(REVIEW_KEY))


def with_review(meta: Any, review: ReviewMeta) -> dict[str, Any]:
    """A copy of a Review task's `meta` with `review` set."""
    return {**_meta(meta), REVIEW_KEY: review.to_json()}


def _meta(meta: Any) -> Mapping[str, Any]:
    return _mapping(meta) or {}


def read_judge(meta: Any) -> JudgeMeta | None:
    """The judge's verdict in a task's meta, or None."""
    return JudgeMeta.from_json(_meta(meta).get(JUDGE_KEY))


def with_judge(meta: Any, judge: JudgeMeta) -> dict[str, Any]:
    """A copy of `meta` with the judge's verdict set. A verdict without decisions keeps the decisions
    already in `meta` (the judge re-judges a task after an ops decision; the decision must stay).

    >>> old = {"clesc": {"status": "needs_review", "decisions": [{"annotation_id": 5, "decision": "uphold"}]}}
    >>> with_judge(old, JudgeMeta("accepted", {}))["clesc"]["decisions"][0]["decision"]
    'uphold'
    """
    if not judge.decisions:
        previous = read_judge(meta)
        if previous is not None and previous.decisions:
            judge = replace(judge, decisions=previous.decisions)
    return {**_meta(meta), JUDGE_KEY: judge.to_json()}


def read_pair(meta: Any) -> PairMeta | None:
    """The link to the other pool's task in a task's meta, or None."""
    return PairMeta.from_json(_meta(meta).get(PAIR_KEY))


def with_pair(meta: Any, pair: PairMeta) -> dict[str, Any]:
    """A copy of `meta` with the pair link set."""
    return {**_meta(meta), PAIR_KEY: pair.to_json()}


def pair_json(meta: Any) -> Any:
    """The raw `meta["clesc_pair"]` value, for comparing before a write (None when absent)."""
    return _meta(meta).get(PAIR_KEY)
