"""The `rules` judge: deterministic checks of one task's annotations against the taxonomy.

Data in, verdict out; no I/O. It runs the votes and checks of the workflow (docs/contracts.md):
majority vote over pace/pitch/volume (a tie gives no value, whatever the order), contradictions
inside each description (`opposes`, `implies`), and a "logical" majority vote over emotion and
voice words where words of one concept count together.

Concepts are `label_config.concepts.Concepts` at `Policy.concept_distance` (grouped once per judge).

>>> from label_config import LabelRecord, to_annotation
>>> def ann(id, user, pace, emotion, volume="medium", voice=()):
...     return to_annotation(LabelRecord(pace, "medium", volume, emotion=emotion, voice=voice,
...                                      annotator=user, annotation_id=id))
>>> judge = RulesJudge()
>>> v = judge.judge(1, [ann(1, 10, "fast", ("happy",)),
...                     ann(2, 11, "fast", ("joyful", "excited")),
...                     ann(3, 12, "slow", ("calm", "agitated"))])
>>> v.status, v.consensus["pace"], v.consensus["emotion"]
('needs_review', 'fast', ['happy'])
>>> [(a.annotation_id, a.verdict, [r.code for r in a.reasons]) for a in v.annotations]
[(1, 'accept', []), (2, 'accept', []), (3, 'reject', ['contradiction', 'categorical_minority', 'emotion_outlier'])]
>>> v.annotations[2].reasons[0].detail
'calm vs agitated'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from label_config import (
    InvalidLabel,
    LabelRecord,
    Taxonomy,
    load_taxonomy,
    parse_annotation,
)
from label_config.concepts import DEFAULT_DISTANCE, Concepts
from label_config.records import user_id
from label_config.schema import ATTRIBUTES, WORD_KINDS
from webhooks.judge.verdict import (
    REASON_CODES,
    AnnotationVerdict,
    Reason,
    TaskVerdict,
    empty_consensus,
    task_status,
)

RULES_VERSION = "rules-1"
"""Bump when a change to the rules can change a verdict on the same input."""


@dataclass(frozen=True)
class Policy:
    """Which findings reject an annotation, and the knobs of the votes.

    `rejects_on` lists the codes that reject on any single occurrence. `categorical_minority` is
    not among them: it rejects when the annotator is outvoted on at least
    `minority_attributes_to_reject` of pace/pitch/volume (None: never).

    >>> Policy().rejects([Reason("categorical_minority", "pace: slow vs majority fast")])
    False
    >>> Policy(minority_attributes_to_reject=1).rejects([Reason("categorical_minority", "pace: slow vs majority fast")])
    True
    """

    rejects_on: frozenset[str] = frozenset(
        {"contradiction", "inconsistent_with_choices", "emotion_outlier", "empty_description", "invalid_label"}
    )
    minority_attributes_to_reject: int | None = len(ATTRIBUTES)
    concept_distance: float = DEFAULT_DISTANCE
    overlap: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejects_on", frozenset(self.rejects_on))
        unknown = self.rejects_on - set(REASON_CODES)
        if unknown:
            raise ValueError(f"unknown reason codes {sorted(unknown)} (known: {', '.join(REASON_CODES)})")
        if "categorical_minority" in self.rejects_on:
            raise ValueError("categorical_minority is governed by minority_attributes_to_reject, not rejects_on")
        m = self.minority_attributes_to_reject
        if m is not None and not 1 <= m <= len(ATTRIBUTES):
            raise ValueError(f"minority_attributes_to_reject must be 1..{len(ATTRIBUTES)} or None, got {m}")
        if self.overlap < 1:
            raise ValueError(f"overlap must be at least 1, got {self.overlap}")
        if self.concept_distance < 0:
            raise ValueError(f"concept_distance must not be negative, got {self.concept_distance}")

    def rejects(self, reasons: Iterable[Reason]) -> bool:
        codes = Counter(r.code for r in reasons)
        if any(code in self.rejects_on for code in codes):
            return True
        m = self.minority_attributes_to_reject
        return m is not None and codes["categorical_minority"] >= m


@dataclass
class _Entry:
    """One non-cancelled annotation while it is judged."""

    annotation_id: int | None
    annotator: int | None
    record: LabelRecord | None
    reasons: list[Reason] = field(default_factory=list)


class RulesJudge:
    """Judge a task's annotations with the taxonomy's relations and a Policy.

    Build one per process and reuse it: the concepts are grouped once, here.
    """

    backend = "rules"
    version = RULES_VERSION

    def __init__(self, taxonomy: Taxonomy | None = None, policy: Policy | None = None):
        self.taxonomy = taxonomy or load_taxonomy()
        self.policy = policy or Policy()
        self.concepts = Concepts(self.taxonomy, self.policy.concept_distance)
        self._rank = self.concepts.rank

    def synonyms(self, word: str) -> tuple[str, ...]:
        """The words counted together with `word` (its concept, `word` included), in taxonomy order.

        >>> "joyful" in RulesJudge().synonyms("happy")
        True
        """
        return self.concepts.synonyms(word)

    def judge(self, task_id: int | None, annotations: Sequence[Mapping[str, Any]]) -> TaskVerdict:
        """The verdict on one task from its LS annotation JSON (export or API form)."""
        return self._judge(task_id, [self._parse(a) for a in annotations if not _cancelled(a)])

    def judge_records(self, task_id: int | None, records: Sequence[LabelRecord]) -> TaskVerdict:
        """The verdict on one task from records already parsed and valid (e.g. a CLESC file's), by their
        annotation_id and annotator; the same verdict `judge` gives on their LS JSON.

        >>> from label_config import to_annotation
        >>> recs = [LabelRecord("slow", "low", "quiet", emotion=("sad",), annotation_id=i, annotator=i) for i in (1, 2, 3)]
        >>> j = RulesJudge()
        >>> j.judge_records(9, recs) == j.judge(9, [to_annotation(r) for r in recs])
        True
        """
        return self._judge(task_id, [_Entry(r.annotation_id, r.annotator, r) for r in records])

    def _judge(self, task_id: int | None, entries: list[_Entry]) -> TaskVerdict:
        if len(entries) < self.policy.overlap:
            return self._verdict(task_id, "incomplete", empty_consensus(), self._annotation_verdicts(entries))

        valid = [e for e in entries if e.record is not None]
        records = [e.record for e in valid]
        # A strict majority of the valid annotations, and never one annotator alone.
        needed = max(2, len(records) // 2 + 1)
        majority = {a: _majority([getattr(r, a) for r in records], needed) for a in ATTRIBUTES}
        consensus_concepts = {kind: self._consensus_concepts(records, kind, needed) for kind in WORD_KINDS}
        consensus: dict[str, Any] = {
            **majority,
            **{kind: list(concepts.values()) for kind, concepts in consensus_concepts.items()},
        }

        emotion_consensus = consensus_concepts["emotion"]
        for entry in valid:
            record = entry.record
            entry.reasons += self._contradictions(record)
            entry.reasons += self._inconsistencies(record)
            for attr, winner in majority.items():
                chosen = getattr(record, attr)
                if winner is not None and chosen != winner:
                    entry.reasons.append(Reason("categorical_minority", f"{attr}: {chosen} vs majority {winner}"))
            if record.emotion and emotion_consensus and not self._concepts(record.emotion) & emotion_consensus.keys():
                entry.reasons.append(Reason(
                    "emotion_outlier",
                    f"{', '.join(record.emotion)} vs consensus {', '.join(emotion_consensus.values())}",
                ))
            if not record.emotion and not record.other:
                entry.reasons.append(Reason("empty_description", "no emotion words and no other words"))

        verdicts = self._annotation_verdicts(entries)
        return self._verdict(task_id, task_status(verdicts, consensus), consensus, verdicts)

    def _parse(self, annotation: Mapping[str, Any]) -> _Entry:
        try:
            record = parse_annotation(annotation, self.taxonomy)
        except InvalidLabel as e:
            ids = annotation if isinstance(annotation, Mapping) else {}
            problems = "; ".join(str(p) for p in e.problems)
            return _Entry(ids.get("id"), user_id(ids.get("completed_by")), None, [Reason("invalid_label", problems)])
        return _Entry(record.annotation_id, record.annotator, record)

    def _annotation_verdicts(self, entries: list[_Entry]) -> tuple[AnnotationVerdict, ...]:
        return tuple(
            AnnotationVerdict(
                e.annotation_id, e.annotator, "reject" if self.policy.rejects(e.reasons) else "accept", tuple(e.reasons)
            )
            for e in entries
        )

    def _verdict(
        self, task_id: int | None, status: str, consensus: dict[str, Any], annotations: tuple[AnnotationVerdict, ...]
    ) -> TaskVerdict:
        return TaskVerdict(task_id, status, consensus, annotations, {"backend": self.backend, "version": self.version})

    def _concepts(self, words: Iterable[str]) -> set[int]:
        return self.concepts.of_all(words)

    def _consensus_concepts(self, records: Sequence[LabelRecord], kind: str, needed: int) -> dict[int, str]:
        """Concepts backed by `needed` annotations -> canonical word, by support then taxonomy order."""
        support = Counter(c for r in records for c in self._concepts(r.words(kind)))
        usage = Counter(w for r in records for w in r.words(kind))
        canonical = {
            concept: min((w for w in self.concepts.words(concept) if usage[w]), key=lambda w: (-usage[w], self._rank[w]))
            for concept, backers in support.items()
            if backers >= needed
        }
        ranked = sorted(canonical, key=lambda c: (-support[c], self._rank[canonical[c]]))
        return {c: canonical[c] for c in ranked}

    def _contradictions(self, record: LabelRecord) -> list[Reason]:
        words = record.emotion + record.voice
        return [
            Reason("contradiction", f"{a} vs {b}")
            for i, a in enumerate(words)
            for b in words[i + 1:]
            if b in self.taxonomy[a].opposes
        ]

    def _inconsistencies(self, record: LabelRecord) -> list[Reason]:
        reasons = []
        for word in record.emotion + record.voice:
            for attr, allowed in self.taxonomy[word].implies.items():
                chosen = getattr(record, attr)
                if chosen not in allowed:
                    reasons.append(Reason(
                        "inconsistent_with_choices", f"{word} implies {attr} {' or '.join(allowed)}, chose {chosen}"
                    ))
        return reasons


def _majority(values: Sequence[str], needed: int) -> str | None:
    """The value chosen at least `needed` times; `needed` is over half, so at most one can be."""
    if not values:
        return None
    value, count = Counter(values).most_common(1)[0]
    return value if count >= needed else None


def _cancelled(annotation: Any) -> bool:
    return isinstance(annotation, Mapping) and bool(annotation.get("was_cancelled"))
