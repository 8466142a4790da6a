"""The `rules` judge: deterministic checks and annotator-aware votes over one task's annotations, or many.

Data in, verdicts out; no I/O (crowd-kit's spirit: small estimators over tidy data). It runs the steps of
the workflow (docs/contracts.md):

- hard findings inside each description: an invalid label, words that contradict each other (`opposes`),
  a word whose implied pace/pitch/volume the annotator's own choice contradicts (`implies`), an empty
  description;
- P(the annotation was filled in at random), from its agreement with the other annotations on pace,
  pitch and volume and on the words, and from the annotator's record across the project
  (webhooks/judge/inference.py, webhooks/judge/reliability.py);
- skill-weighted votes over pace/pitch/volume (a tie gives no value, whatever the order) and a graded
  "logical" majority over emotion and voice words (near-synonyms back each other);
- a verdict per annotation with its confidence (P(bad)): rejected when a finding the policy acts on
  reaches `Policy.review_min_confidence`, else its findings are only noted.

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
>>> v.annotations[2].reasons[0].detail, v.annotations[2].confidence
('calm vs agitated', 0.99)
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, combinations
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from label_config import (
    InvalidLabel,
    LabelRecord,
    Taxonomy,
    is_cancelled,
    load_taxonomy,
    parse_annotation,
    superseded_by,
)
from label_config.concepts import DEFAULT_DISTANCE, Concepts
from label_config.records import user_id
from label_config.schema import ATTRIBUTES, CATEGORICAL
from webhooks.judge import reliability
from webhooks.judge.inference import EMOTION_BINS, K, Batch, Inference, infer
from webhooks.judge.reliability import Evidence, Skill
from webhooks.judge.similarity import WordSimilarity
from webhooks.judge.verdict import (
    REASON_CODES,
    AnnotationVerdict,
    Reason,
    TaskVerdict,
    empty_consensus,
)

RULES_VERSION = "rules-4"
"""Bump when a change to the rules can change a verdict on the same input."""

ALONE_CODES = ("invalid_label", "duplicate_annotation")
"""The findings an annotation gets judged on its own, outside the votes (certain: confidence 1.0)."""
HARD_CONFIDENCE = {"invalid_label": 1.0, "contradiction": 0.99, "empty_description": 0.99,
                   "inconsistent_with_choices": 0.95}
"""How sure a hard finding is that the annotation is bad (the taxonomy's relations are definitions)."""
RANDOM_CODES = ("categorical_minority", "emotion_outlier", "unreliable_annotator")
"""The findings behind P(random): a rejection for randomness needs one of them in the policy."""
WIDTH = 6
"""Words per kind and annotation the votes look at (descriptions are 1-3 words; more are cut). A batch's
arrays are as wide as its longest description, up to this."""
PACE, PITCH, VOLUME = CATEGORICAL
FIT_ITERATIONS = 8
FIT_TOLERANCE = 0.002
"""EM stops after FIT_ITERATIONS, or once no annotator's random rate moves by more than this."""
BULK = 1000
"""From this many tasks on, a batch is judged with Python's cyclic garbage collector paused (`_bulk`)."""


@dataclass(frozen=True)
class Policy:
    """Which findings may reject an annotation, and how sure the judge must be.

    `rejects_on`: the reason codes that may reject (default all). `review_min_confidence`: an annotation
    whose P(bad) from those findings reaches it is rejected (and goes to ops); below, its findings are
    only noted in the verdict.

    >>> Policy(review_min_confidence=0.9).review_min_confidence
    0.9
    """

    rejects_on: frozenset[str] = frozenset(REASON_CODES)
    review_min_confidence: float = 0.5
    concept_distance: float = DEFAULT_DISTANCE
    overlap: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejects_on", frozenset(self.rejects_on))
        unknown = self.rejects_on - set(REASON_CODES)
        if unknown:
            raise ValueError(f"unknown reason codes {sorted(unknown)} (known: {', '.join(REASON_CODES)})")
        if not 0 < self.review_min_confidence <= 1:
            raise ValueError(f"review_min_confidence must be in (0, 1], got {self.review_min_confidence}")
        if self.overlap < 1:
            raise ValueError(f"overlap must be at least 1, got {self.overlap}")
        if self.concept_distance < 0:
            raise ValueError(f"concept_distance must not be negative, got {self.concept_distance}")


@dataclass
class _Encoded:
    batch: Batch
    positions: list[list[int | None]]
    """Per task, each entry's row in the batch (None: not in it: an invalid label, or an incomplete task)."""
    complete: list[bool]
    records: list[LabelRecord]
    entries: list[_Entry]
    """Per row, its entry (the annotation's ids, its record)."""
    hard: np.ndarray
    """Per row: a contradiction, choices its words rule out, or an empty description."""
    findings: np.ndarray
    """Per row, which of those (N x 3: contradiction, inconsistent_with_choices, empty_description)."""


@dataclass
class _Decided:
    """The verdicts of a batch's annotations as arrays (N: the batch's rows), before any Python object."""

    consensus: np.ndarray
    """N x 3: the value codes of each row's task consensus (-1: no value)."""
    minority: np.ndarray
    """N x 3: outvoted on pace, pitch, volume (a categorical_minority finding each)."""
    far: np.ndarray
    """an emotion_outlier finding"""
    flagged: np.ndarray
    """the annotator is flagged unreliable_annotator"""
    reject: np.ndarray
    confidence: np.ndarray
    """P(bad) by the findings (unrounded)"""
    p_random: np.ndarray
    """P(random) from the inference (the evidence the annotation adds to its annotator's skill)"""


class _Entry(NamedTuple):
    """One non-cancelled annotation while it is judged (a tuple: a batch builds one per annotation)."""

    annotation_id: int | None
    annotator: Hashable | None
    record: LabelRecord | None
    reasons: tuple[Reason, ...] = ()


Skills = Mapping[Hashable, Skill]
"""Annotator (LS user id, or any key) -> their Skill; annotators missing get the prior."""


class RulesJudge:
    """Judge tasks' annotations with the taxonomy's relations, the annotators' skills and a Policy.

    Build one per process and reuse it: the concepts and the word similarity are computed once, here.
    `judge` (one task, LS JSON) and `judge_records` take the annotators' skills as they stand; `judge_many`
    (an LS export) and `judge_tasks` (records) can first estimate them from the tasks themselves (`fit`).
    """

    backend = "rules"
    version = RULES_VERSION

    def __init__(self, taxonomy: Taxonomy | None = None, policy: Policy | None = None):
        self.taxonomy = taxonomy or load_taxonomy()
        self.policy = policy or Policy()
        self.concepts = Concepts(self.taxonomy, self.policy.concept_distance)
        self.similarity = WordSimilarity(self.taxonomy, self.concepts)
        self._rank = self.concepts.rank
        self._value_code = {a: {v: i for i, v in enumerate(spec.values)} for a, spec in ATTRIBUTES.items()}
        # the taxonomy's relations as arrays over word ids (the similarity's; its pad id has none)
        words, pad = self.similarity.words, self.similarity.pad
        self._opposes = np.zeros((pad + 1, pad + 1), dtype=bool)
        self._allowed = np.ones((pad + 1, len(CATEGORICAL), 4), dtype=bool)
        for i, w in enumerate(words):
            for o in self.taxonomy[w].opposes:
                self._opposes[i, self.similarity.index[o]] = True
            for x, attr in enumerate(CATEGORICAL):
                allowed = self.taxonomy[w].implies.get(attr)
                if allowed is not None:
                    self._allowed[i, x] = [v in allowed for v in ATTRIBUTES[attr].values]

    def synonyms(self, word: str) -> tuple[str, ...]:
        """The words counted together with `word` (its concept, `word` included), in taxonomy order.

        >>> "joyful" in RulesJudge().synonyms("happy")
        True
        """
        return self.concepts.synonyms(word)

    # --- entry points ------------------------------------------------------------------------

    def judge(self, task_id: int | None, annotations: Sequence[Mapping[str, Any]],
              skills: Skills | None = None) -> TaskVerdict:
        """The verdict on one task from its LS annotation JSON (export or API form)."""
        entries = [self._parse(a) for a in annotations if not is_cancelled(a)]
        return self._judge_entries([(task_id, entries)], skills or {})[0]

    def judge_records(self, task_id: int | None, records: Sequence[LabelRecord],
                      skills: Skills | None = None) -> TaskVerdict:
        """The verdict on one task from records already parsed and valid (e.g. a CLESC file's), by their
        annotation_id and annotator; the same verdict `judge` gives on their LS JSON.

        >>> from label_config import to_annotation
        >>> recs = [LabelRecord("slow", "low", "quiet", emotion=("sad",), annotation_id=i, annotator=i) for i in (1, 2, 3)]
        >>> j = RulesJudge()
        >>> j.judge_records(9, recs) == j.judge(9, [to_annotation(r) for r in recs])
        True
        """
        return self._judge_entries([(task_id, _entries(records))], skills or {})[0]

    def judge_tasks(self, tasks: Sequence[tuple[int | None, Sequence[LabelRecord]]], *, skills: Skills | None = None,
                    fit: bool = True, timings: dict[str, float] | None = None,
                    ) -> tuple[list[TaskVerdict], dict[Hashable, Skill]]:
        """Verdicts on many tasks of valid records, and the annotators' skills they were judged with.

        `fit`: estimate the skills from these tasks first (EM over all of them, starting from `skills`),
        as a batch judge does; otherwise judge with `skills` as they are. `timings`, when given, receives
        the CPU seconds each step took (`STEPS`): where the time goes (`bench judge-quality`).
        """
        with _bulk(len(tasks)):
            clock = _Clock(timings)
            entries = [(tid, _entries(records)) for tid, records in tasks]
            clock("entries")
            return self._judge_many(entries, skills or {}, fit, clock=clock)

    def judge_many(self, tasks: Sequence[Mapping[str, Any]], progress: Callable[[int, int], None] | None = None,
                   ) -> list[TaskVerdict]:
        """An LS export's tasks (with their annotations), the annotators' skills estimated from the export."""
        with _bulk(len(tasks)):
            parsed = [(t.get("id"), [self._parse(a) for a in t.get("annotations") or [] if not is_cancelled(a)])
                      for t in tasks]
            verdicts, _ = self._judge_many(parsed, {}, fit=True, progress=progress)
        return verdicts

    # --- the work ------------------------------------------------------------------------------

    def _judge_entries(self, tasks, skills: Skills, progress: Callable[[int, int], None] | None = None,
                       ) -> list[TaskVerdict]:
        return self._judge_many(tasks, skills, fit=False, progress=progress)[0]

    def _judge_many(self, tasks, skills: Skills, fit: bool, progress: Callable[[int, int], None] | None = None,
                    clock: _Clock | None = None) -> tuple[list[TaskVerdict], dict[Hashable, Skill]]:
        clock = clock or _Clock(None)
        tasks, superseded = _one_vote_each(tasks)
        keys = sorted({e.annotator for _, entries in tasks for e in entries if e.record is not None},
                      key=lambda k: (str(type(k)), k))
        enc = self._encode(tasks, keys, superseded)
        clock("encode")
        if fit:
            known = self._fit(enc.batch, [skills.get(k) or Skill() for k in keys])
        else:
            known = [skills.get(k) or Skill() for k in keys]
        r = np.array([s.random_rate for s in known], dtype=float)
        acc = np.array([[s.accuracy[a] for a in CATEGORICAL] for s in known], dtype=float).reshape(len(keys), len(CATEGORICAL))
        clock("fit")
        result = infer(enc.batch, r, acc, self.similarity)
        clock("infer")
        decided = self._decide(enc, result, known)
        clock("decide")
        verdicts = self._build(tasks, enc, result, known, decided, progress)
        clock("build")
        return verdicts, dict(zip(keys, known))

    def _fit(self, batch: Batch, start: list[Skill]) -> list[Skill]:
        """EM over the batch: the annotators' skills that best explain it, starting from (and adding to) `start`."""
        prior = np.array([[s.evidence.annotations, s.evidence.random, s.evidence.defects, 0.0, *s.evidence.weight,
                           *s.evidence.agree] for s in start], dtype=float).reshape(len(start), 10)
        evidence, last = prior, None
        for _ in range(FIT_ITERATIONS):
            r = reliability.random_rate(evidence[:, 1], evidence[:, 0])
            if last is not None and len(r) and np.abs(r - last).max() < FIT_TOLERANCE:
                break
            acc = reliability.accuracy(evidence[:, 7:10], evidence[:, 4:7])
            evidence, last = prior + _sums(batch, infer(batch, r, acc, self.similarity, words=False), len(start)), r
        return [Skill(Evidence(e[0], e[1], tuple(e[4:7]), tuple(e[7:10]), e[2])) for e in evidence.tolist()]

    def _encode(self, tasks, keys, superseded: Mapping[int, int]) -> _Encoded:
        """The valid annotations of the complete tasks as a Batch, with their hard findings (vectorised).
        `superseded`: per task (index) with any, how many of its annotations were superseded (they do not
        count towards the overlap)."""
        index = {k: i for i, k in enumerate(keys)}
        word_index, pad, overlap = self.similarity.index, self.similarity.pad, self.policy.overlap
        codes = [self._value_code[a] for a in CATEGORICAL]
        records: list[LabelRecord] = []
        row_entries: list[_Entry] = []
        task_col: list[int] = []
        annotator: list[int] = []
        positions: list[list[int | None]] = []
        complete: list[bool] = []
        for t, (_, entries) in enumerate(tasks):
            if len(entries) - superseded.get(t, 0) < overlap:
                complete.append(False)
                positions.append([None] * len(entries))
                continue
            complete.append(True)
            rows: list[int | None] = []
            for e in entries:
                if e.record is None:
                    rows.append(None)
                    continue
                rows.append(len(records))
                records.append(e.record)
                row_entries.append(e)
                task_col.append(t)
                annotator.append(index[e.annotator])
            positions.append(rows)
        n = len(records)
        # one pass over the records (scattered in memory), then by column
        *values, emotions, voices, others = (list(zip(*map(attrgetter(*CATEGORICAL, "emotion", "voice", "other"), records)))
                                             or [()] * (len(CATEGORICAL) + 3))
        labels = np.column_stack([np.fromiter(map(code.__getitem__, column), np.int64, n)
                                  for column, code in zip(values, codes)]).reshape(n, len(CATEGORICAL))
        emotion, voice = _word_ids(emotions, word_index, pad), _word_ids(voices, word_index, pad)
        has_other = np.fromiter(map(len, others), np.int64, n) > 0
        words = np.concatenate([emotion, voice], axis=1)
        contradiction = np.zeros(n, dtype=bool)  # a word opposed by one after it (pairs, not a words x words block)
        for i, j in combinations(range(words.shape[1]), 2):
            contradiction |= self._opposes[words[:, i], words[:, j]]
        allowed = self._allowed[words[:, :, None], np.arange(len(CATEGORICAL))[None, None, :],
                                labels[:, None, :]]                          # (n, words, 3)
        inconsistent = ~allowed.all(axis=(1, 2))
        empty = (emotion == pad).all(axis=1) & ~has_other
        hard = contradiction | inconsistent | empty
        batch = Batch(tasks=len(tasks), task=np.array(task_col, dtype=np.int64),
                      annotator=np.array(annotator, dtype=np.int64), labels=labels, emotion=emotion, voice=voice,
                      weight_words=(~hard).astype(float)).group()
        return _Encoded(batch, positions, complete, records, row_entries, hard,
                        np.column_stack([contradiction, inconsistent, empty]))

    def _decide(self, enc: _Encoded, result: Inference, known: list[Skill]) -> _Decided:
        """Per annotation of the batch, as arrays: which findings it has, its P(bad) and whether it is rejected
        (the verdicts without their Python objects: `_build` makes those)."""
        batch, policy = enc.batch, self.policy
        rejects_on = policy.rejects_on
        task_consensus = result.consensus[batch.task] if len(batch.task) else result.consensus[:0]
        minority = (batch.labels != task_consensus) & (task_consensus >= 0)
        far = result.emotion_bin == EMOTION_BINS.index("far")
        flagged_by = np.array([s.flagged for s in known], dtype=bool)
        flag_confidence = np.array([s.flag_confidence for s in known], dtype=float)
        flagged = flagged_by[batch.annotator]
        p = np.where(flagged, np.maximum(result.p_random, flag_confidence[batch.annotator]), result.p_random)
        # the surest hard finding the policy acts on (the encoded flags; _findings where words were cut)
        hard_confidence = np.zeros(len(batch.task))
        for column, code in enumerate(("contradiction", "inconsistent_with_choices", "empty_description")):
            if code in rejects_on:
                hard_confidence = np.where(enc.findings[:, column],
                                           np.maximum(hard_confidence, HARD_CONFIDENCE[code]), hard_confidence)
        for row in np.flatnonzero(enc.hard).tolist():
            record = enc.records[row]
            if len(record.emotion) > WIDTH or len(record.voice) > WIDTH:
                hard_confidence[row] = max((HARD_CONFIDENCE[r.code] for r in self._findings(record)
                                            if r.code in rejects_on), default=0.0)
        random_allowed = ((minority.any(axis=1) & ("categorical_minority" in rejects_on))
                          | (far & ("emotion_outlier" in rejects_on))
                          | (flagged & ("unreliable_annotator" in rejects_on)))
        top = np.maximum(hard_confidence, p)
        reject = np.where(random_allowed, top, hard_confidence) >= policy.review_min_confidence
        return _Decided(task_consensus, minority, far, flagged, reject, top, result.p_random)

    def _build(self, tasks, enc: _Encoded, result: Inference, known: list[Skill], decided: _Decided,
               progress: Callable[[int, int], None] | None) -> list[TaskVerdict]:
        """The verdict objects from the decided arrays: the reasons' texts made once (per value pair, per
        annotator), one pass making each row's AnnotationVerdict, one pass making each task's TaskVerdict."""
        word = self.similarity.words.__getitem__
        values = [(*ATTRIBUTES[a].values, None) for a in CATEGORICAL]   # code -1 (no value): None
        v_pace, v_pitch, v_volume = values
        batch = enc.batch
        consensus_codes = result.consensus.tolist()
        unreliable = [Reason("unreliable_annotator", s.describe()) if s.flagged else None for s in known]
        reliability_of = [round(s.reliability, 4) for s in known]
        # the categorical_minority reasons of each row, one tuple per distinct (attribute, own value, consensus)
        # combination: most rows have no other finding
        reasons_of = self._minority_reasons(batch.labels, decided.consensus, decided.minority, values)
        verdict_of = np.where(decided.reject, "reject", "accept").tolist()
        confidence = _round4(decided.confidence)
        random = decided.p_random.tolist()
        honest = (1 - decided.p_random).tolist()
        weight = list(zip(honest, honest, honest))
        agree = list(zip(*((1 - decided.p_random)[:, None] * result.agree).T.tolist()))
        defects = enc.hard.astype(float).tolist()
        reliability = np.array(reliability_of)[batch.annotator].tolist() if known else []
        # task_status's rule, by task (an invalid label rejected below makes its task needs_review too)
        rejecting = np.bincount(batch.task, decided.reject, minlength=len(tasks)) > 0
        status_of = np.where(rejecting, "needs_review",
                             np.where((result.consensus < 0).any(axis=1), "no_consensus", "accepted")).tolist()
        complete, positions, row_entries = enc.complete, enc.positions, enc.entries
        # the rows with another finding (hard, emotion_outlier, unreliable_annotator: a few), one by one
        for row in np.flatnonzero(enc.hard | decided.far | decided.flagged).tolist():
            e, t = row_entries[row], int(batch.task[row])
            found = self._findings(e.record) if enc.hard[row] else []
            found.extend(reasons_of[row])
            if decided.far[row]:
                against = list(map(word, result.emotion[t])) or sorted(
                    {w for o in tasks[t][1] if o is not e and o.record for w in o.record.emotion})
                found.append(Reason("emotion_outlier", f"{', '.join(e.record.emotion)} vs consensus {', '.join(against)}"))
            flagged = unreliable[batch.annotator[row]]
            if flagged is not None:
                found.append(flagged)
            reasons_of[row] = tuple(found)
        # one AnnotationVerdict (and its Evidence) per row: the frozen dataclasses' fields set at once (tested)
        new, set_fields = object.__new__, object.__setattr__
        row_verdicts = []
        for (annotation_id, who, _, _), reasons, verdict_, confidence_, reliability_, random_, weight_, agree_, \
                defects_ in zip(row_entries, reasons_of, verdict_of, confidence, reliability, random, weight, agree,
                                defects):
            evidence = new(Evidence)
            set_fields(evidence, "__dict__", {"annotations": 1.0, "random": random_, "weight": weight_,
                                              "agree": agree_, "defects": defects_})
            verdict = new(AnnotationVerdict)
            set_fields(verdict, "__dict__", {"annotation_id": annotation_id, "annotator": who, "verdict": verdict_,
                                             "reasons": reasons, "confidence": confidence_,
                                             "reliability": reliability_, "evidence": evidence})
            row_verdicts.append(verdict)
        info = self._judge_info()
        out = []
        for t, (task_id, entries) in enumerate(tasks):
            if not complete[t]:
                verdicts = tuple(self._hard_only(e) for e in entries)
                out.append(TaskVerdict(task_id, "incomplete", empty_consensus(), verdicts, info))
                if progress is not None:
                    progress(t + 1, len(tasks))
                continue
            codes = consensus_codes[t]
            consensus: dict[str, Any] = {PACE: v_pace[codes[0]], PITCH: v_pitch[codes[1]], VOLUME: v_volume[codes[2]],
                                         "emotion": list(map(word, result.emotion[t])),
                                         "voice": list(map(word, result.voice[t]))}
            status, rows = status_of[t], positions[t]
            if None in rows:  # an invalid or superseded label: judged on its own, it takes no part in the votes
                anns = []
                for e, row in zip(entries, rows):
                    if row is None:
                        verdict = self._hard_only(e)
                        if verdict.rejected:
                            status = "needs_review"
                        anns.append(verdict)
                    else:
                        anns.append(row_verdicts[row])
                annotations = tuple(anns)
            else:  # a task's rows are consecutive
                annotations = tuple(row_verdicts[rows[0]:rows[0] + len(rows)])
            verdict = new(TaskVerdict)
            set_fields(verdict, "__dict__", {"task_id": task_id, "status": status, "consensus": consensus,
                                             "annotations": annotations, "judge": info})
            out.append(verdict)
            if progress is not None:
                progress(t + 1, len(tasks))
        return out

    @staticmethod
    def _minority_reasons(labels: np.ndarray, consensus: np.ndarray, minority: np.ndarray,
                          values: list[tuple[str | None, ...]]) -> list[tuple[Reason, ...]]:
        """Per row, its categorical_minority reasons ("pace: slow vs majority normal", in attribute order)."""
        digits = np.where(minority, 1 + labels * (K + 1) + consensus + 1, 0)   # per attribute: 0, or which pair
        base = 1 + K * (K + 1)
        keys = (digits * base ** np.arange(len(CATEGORICAL))).sum(axis=1).tolist()
        made: dict[int, tuple[Reason, ...]] = {}
        for key in set(keys):
            reasons, rest = [], key
            for x, attr in enumerate(CATEGORICAL):
                rest, digit = divmod(rest, base)
                if digit:
                    own, value = divmod(digit - 1, K + 1)
                    reasons.append(Reason("categorical_minority", f"{attr}: {values[x][own]} vs majority {values[x][value - 1]}"))
            made[key] = tuple(reasons)
        return [made[key] for key in keys]

    def _hard_only(self, e: _Entry) -> AnnotationVerdict:
        """An annotation judged on its own (its task is incomplete, it is invalid, or superseded): only those
        findings (ALONE_CODES) reject."""
        found = tuple(r for r in e.reasons if r.code in ALONE_CODES)
        rejected = any(r.code in self.policy.rejects_on for r in found)
        return AnnotationVerdict(e.annotation_id, e.annotator, "reject" if rejected else "accept", found,
                                 confidence=1.0 if found else None)

    def _judge_info(self) -> dict[str, str]:
        return {"backend": self.backend, "version": self.version}

    def _parse(self, annotation: Mapping[str, Any]) -> _Entry:
        try:
            record = parse_annotation(annotation, self.taxonomy)
        except InvalidLabel as e:
            ids = annotation if isinstance(annotation, Mapping) else {}
            problems = "; ".join(str(p) for p in e.problems)
            return _Entry(ids.get("id"), user_id(ids.get("completed_by")), None, (Reason("invalid_label", problems),))
        return _Entry(record.annotation_id, record.annotator, record)

    def _findings(self, record: LabelRecord) -> list[Reason]:
        """The hard findings inside one description: contradictions, choices its words rule out, emptiness."""
        words = record.emotion + record.voice
        reasons = [Reason("contradiction", f"{a} vs {b}")
                   for i, a in enumerate(words) for b in words[i + 1:] if b in self.taxonomy[a].opposes]
        for word in words:
            for attr, allowed in self.taxonomy[word].implies.items():
                chosen = getattr(record, attr)
                if chosen not in allowed:
                    reasons.append(Reason("inconsistent_with_choices",
                                          f"{word} implies {attr} {' or '.join(allowed)}, chose {chosen}"))
        if not record.emotion and not record.other:
            reasons.append(Reason("empty_description", "no emotion words and no other words"))
        return reasons


def _sums(batch: Batch, result: Inference, n_annotators: int) -> np.ndarray:
    """Per annotator: [annotations, random, defects, 0, weight x3, agree x3] summed over the batch (the M-step)."""
    a = batch.annotator
    p = result.p_random
    honest = 1 - p
    cols = [np.bincount(a, minlength=n_annotators).astype(float), np.bincount(a, p, n_annotators),
            np.bincount(a, 1 - batch.weight_words, n_annotators), np.zeros(n_annotators)]
    cols += [np.bincount(a, honest, n_annotators)] * len(CATEGORICAL)
    cols += [np.bincount(a, honest * result.agree[:, x], n_annotators) for x in range(len(CATEGORICAL))]
    return np.column_stack(cols)


STEPS = {"entries": "records to entries", "encode": "encoding (records to arrays, hard findings)",
         "fit": "skills fitted by EM", "infer": "inference (P(random), votes, word consensus)",
         "decide": "verdicts as arrays (findings, confidence, rejection)", "build": "verdict objects"}
"""The steps of a batch `judge_tasks` times (`timings`); fit + infer + decide are its core, arrays to arrays."""


class _Clock:
    """Adds the CPU seconds since the last step to `timings[step]` (None: measures nothing)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings
        self.last = time.process_time()

    def __call__(self, step: str) -> None:
        if self.timings is not None:
            now = time.process_time()
            self.timings[step] = self.timings.get(step, 0.0) + now - self.last
            self.last = now


@contextmanager
def _bulk(tasks: int) -> Iterator[None]:
    """Pause the cyclic garbage collector while a large batch is judged (`tasks` >= BULK).

    A batch builds a few objects per annotation (entries, verdicts, evidence, dicts), none in a reference
    cycle, so a collection finds nothing to free; but each one walks every object the process holds (the
    export, the records), and they ran every 700 allocations: most of the time of building 20,000 tasks'
    verdicts went there. Reference counting still frees what is dropped; the collector resumes after.
    The objects made meanwhile (the verdicts the caller keeps) then go straight to the oldest generation
    (freeze + unfreeze) instead of being scanned once more in the youngest (15% of judging with known
    skills); not when something else froze objects (a pre-fork server), whose freeze that would undo.
    """
    if tasks < BULK or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _word_ids(descriptions: Sequence[tuple[str, ...]], index: Mapping[str, int], pad: int) -> np.ndarray:
    """The word ids of each description (n x width, padded with `pad`), cut at WIDTH words; width is the
    longest description's (at least 1): a padding column changes no result, and costs in every
    (words x words) step of the inference.

    >>> _word_ids([("a", "b"), (), ("c",)], {"a": 0, "b": 1, "c": 2}, 9).tolist()
    [[0, 1], [9, 9], [2, 9]]
    """
    lengths = np.fromiter(map(len, descriptions), np.int64, len(descriptions))
    width = max(1, min(WIDTH, int(lengths.max(initial=0))))
    out = np.full((len(descriptions), width), pad, dtype=np.int64)
    words = np.fromiter(map(index.__getitem__, chain.from_iterable(descriptions)), np.int64, int(lengths.sum()))
    row = np.repeat(np.arange(len(descriptions)), lengths)
    column = np.arange(len(words)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = column < width
    out[row[keep], column[keep]] = words[keep]
    return out


def _round4(x: np.ndarray) -> list[float]:
    """[round(v, 4) for v in x.tolist()], vectorised: numpy's rounding, except within a hair of a half, where
    it may differ from Python's correctly rounded one (0.00015 is 1.49999...e-4), which decides there.

    >>> v = [0.00015, 0.12345, 0.5, 0.99995, 1 / 3, 0.0, 1.0]
    >>> _round4(np.array(v)) == [round(x, 4) for x in v]
    True
    """
    scaled = x * 1e4
    out = (np.rint(scaled) / 1e4).tolist()
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6).tolist():
        out[i] = round(float(x[i]), 4)
    return out


def _entries(records: Iterable[LabelRecord], _new=tuple.__new__) -> list[_Entry]:
    """`_Entry(r.annotation_id, r.annotator, r)` for each record (made as the tuple it is: a batch makes many)."""
    return [_new(_Entry, (r.annotation_id, r.annotator, r, ())) for r in records]


def _one_vote_each(tasks: Sequence[tuple[Any, list[_Entry]]]) -> tuple[list[tuple[Any, list[_Entry]]], dict[int, int]]:
    """The tasks with one vote per annotator (`label_config.superseded_by`: the newest counts): the
    others become `duplicate_annotation` findings, judged on their own. Also returns, per task (index)
    with any, how many were superseded.

    >>> r = LabelRecord("slow", "low", "quiet", emotion=("sad",))
    >>> tasks, superseded = _one_vote_each([(1, [_Entry(5, "u", r), _Entry(7, "u", r), _Entry(6, "v", r)])])
    >>> [(e.annotation_id, e.record is None) for e in tasks[0][1]], superseded
    ([(5, True), (7, False), (6, False)], {0: 1})
    >>> tasks[0][1][0].reasons[-1].detail
    'superseded by annotation 7 of the same annotator'
    """
    out, superseded = list(tasks), {}
    for t, (task_id, entries) in enumerate(tasks):
        who = [e.annotator for e in entries if e.annotator is not None]
        if len(set(who)) == len(who):  # the usual case, checked first: a batch has many tasks
            continue
        gone = superseded_by([(e.annotator, e.annotation_id) for e in entries])
        kept = list(entries)
        for i, j in gone.items():
            e = entries[i]
            kept[i] = _Entry(e.annotation_id, e.annotator, None, (*e.reasons, Reason(
                "duplicate_annotation", f"superseded by annotation {entries[j].annotation_id} of the same annotator")))
        superseded[t] = len(gone)
        out[t] = (task_id, kept)
    return out, superseded
