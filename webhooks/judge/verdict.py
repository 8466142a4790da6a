"""What a judge says about one task: a status, a consensus and a verdict per annotation.

`TaskVerdict.to_json()` is one object of the VERDICTS.json contract (docs/contracts.md); every judge
backend returns this type, so the rest of the service never needs to know which one ran.

>>> v = TaskVerdict(
...     task_id=12, status="needs_review",
...     consensus={"pace": "fast", "pitch": None, "volume": "loud", "emotion": ["happy"], "voice": []},
...     annotations=(AnnotationVerdict(5, 3, "reject", (Reason("contradiction", "calm vs agitated"),)),
...                  AnnotationVerdict(6, 4, "accept")),
...     judge={"backend": "rules", "version": "rules-1"})
>>> v.rejected_ids
(5,)
>>> v.to_json()["annotations"][0]["reasons"]
[{'code': 'contradiction', 'detail': 'calm vs agitated'}]
>>> TaskVerdict.from_json(v.to_json()) == v
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from label_config.meta import JudgeMeta
from label_config.schema import ATTRIBUTES, WORD_KINDS

REASON_CODES = (
    "contradiction",
    "inconsistent_with_choices",
    "categorical_minority",
    "emotion_outlier",
    "empty_description",
    "invalid_label",
    "unreliable_annotator",
    "duplicate_annotation",
)
"""Why an annotation may be rejected (docs/contracts.md: extend, don't rename)."""

ANNOTATION_VERDICTS = ("accept", "reject")
TASK_STATUSES = ("accepted", "needs_review", "no_consensus", "incomplete")


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class AnnotationVerdict:
    """The verdict on one annotation. `confidence`: P(the annotation is bad) by the judge's findings;
    `reliability`: the annotator's share of honest work as the judge knew it (None: not estimated);
    `evidence`: what this annotation adds to its annotator's skill (for the store, not part of the JSON)."""

    annotation_id: int | None
    annotator: int | None
    verdict: str
    reasons: tuple[Reason, ...] = ()
    confidence: float | None = None
    reliability: float | None = None
    evidence: Any = field(default=None, compare=False, repr=False)

    @property
    def rejected(self) -> bool:
        return self.verdict == "reject"

    def to_json(self) -> dict[str, Any]:
        return {
            "annotation_id": self.annotation_id,
            "annotator": self.annotator,
            "verdict": self.verdict,
            "reasons": [r.to_json() for r in self.reasons],
            "confidence": self.confidence,
            "reliability": self.reliability,
        }


def task_status(annotations: tuple[AnnotationVerdict, ...], consensus: dict[str, Any]) -> str:
    """The status of a complete task: a rejection needs review; a tied attribute has no consensus."""
    if any(a.rejected for a in annotations):
        return "needs_review"
    if any(consensus.get(a) is None for a in ATTRIBUTES):
        return "no_consensus"
    return "accepted"


def empty_consensus() -> dict[str, Any]:
    """The consensus of a task nobody agreed on (or that is not complete yet)."""
    return {**{a: None for a in ATTRIBUTES}, **{k: [] for k in WORD_KINDS}}


@dataclass(frozen=True)
class TaskVerdict:
    task_id: int | None
    status: str
    consensus: dict[str, Any]
    annotations: tuple[AnnotationVerdict, ...]
    judge: dict[str, str]

    @property
    def rejected_ids(self) -> tuple[int, ...]:
        """Ids of the annotations this verdict proposes to reject (those that have an id)."""
        return tuple(a.annotation_id for a in self.annotations if a.rejected and a.annotation_id is not None)

    def judge_meta(self) -> JudgeMeta:
        """The verdict as the pool task's meta["clesc"] carries it (label_config.meta)."""
        return JudgeMeta(
            status=self.status,
            consensus=self.to_json()["consensus"],
            rejected=self.rejected_ids,
            reasons={a.annotation_id: tuple((r.code, r.detail) for r in a.reasons)
                     for a in self.annotations if a.reasons and a.annotation_id is not None},
            judge=dict(self.judge),
            confidence={a.annotation_id: a.confidence for a in self.annotations
                        if a.annotation_id is not None and a.confidence is not None},
            reliability={a.annotation_id: a.reliability for a in self.annotations
                         if a.annotation_id is not None and a.reliability is not None},
        )

    def to_json(self) -> dict[str, Any]:
        """One object of VERDICTS.json; a fresh structure the caller may change."""
        return {
            "task_id": self.task_id,
            "status": self.status,
            "consensus": {
                **{a: self.consensus.get(a) for a in ATTRIBUTES},
                **{k: list(self.consensus.get(k, ())) for k in WORD_KINDS},
            },
            "annotations": [a.to_json() for a in self.annotations],
            "judge": {"backend": self.judge["backend"], "version": self.judge["version"]},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskVerdict:
        """Read back one VERDICTS.json object; ValueError names what is missing or unknown."""
        try:
            status = data["status"]
            if status not in TASK_STATUSES:
                raise ValueError(f"unknown status {status!r} (expected one of {', '.join(TASK_STATUSES)})")
            annotations = []
            for a in data["annotations"]:
                if a["verdict"] not in ANNOTATION_VERDICTS:
                    raise ValueError(f"unknown verdict {a['verdict']!r} (expected accept or reject)")
                reasons = tuple(Reason(r["code"], r["detail"]) for r in a["reasons"])
                annotations.append(AnnotationVerdict(a["annotation_id"], a["annotator"], a["verdict"], reasons,
                                                     confidence=a.get("confidence"), reliability=a.get("reliability")))
            consensus = data["consensus"]
            return cls(
                task_id=data["task_id"],
                status=status,
                consensus={
                    **{a: consensus[a] for a in ATTRIBUTES},
                    **{k: list(consensus[k]) for k in WORD_KINDS},
                },
                annotations=tuple(annotations),
                judge={"backend": data["judge"]["backend"], "version": data["judge"]["version"]},
            )
        except KeyError as e:
            raise ValueError(f"task verdict lacks the key {e.args[0]!r}") from None
        except TypeError as e:
            raise ValueError(f"task verdict has the wrong shape: {e}") from None
