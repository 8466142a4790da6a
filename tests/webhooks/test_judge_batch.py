"""The batch judge's plumbing (`clesc judge`, the report): the verdicts built from arrays in bulk are exactly
those of the plain per-annotation formulation, and of judging one task at a time with the same skills."""

from __future__ import annotations

import dataclasses
import gc
import random
from dataclasses import replace

import numpy as np
import pytest

from label_config import LabelRecord, load_taxonomy, to_annotation
from label_config.schema import ATTRIBUTES, CATEGORICAL
from scripts.bench.annotators import simulate
from webhooks.judge import rules
from webhooks.judge.inference import EMOTION_BINS, infer
from webhooks.judge.reliability import Evidence, Skill
from webhooks.judge.rules import HARD_CONFIDENCE, Policy, RulesJudge
from webhooks.judge.verdict import AnnotationVerdict, Reason, TaskVerdict, empty_consensus, task_status

TAX = load_taxonomy()


def _tasks(seed: int = 2, clips: int = 300) -> list[tuple[int, list[LabelRecord]]]:
    """A simulated project, roughened: long descriptions (past WIDTH), empty ones, short and long tasks."""
    rng = random.Random(seed)
    emotions = [w.word for w in TAX.words_of("emotion")]
    voices = [w.word for w in TAX.words_of("voice")]
    out = []
    for i, t in enumerate(simulate("heavy", clips=clips, seed=seed).tasks):
        recs = list(t.records)
        if rng.random() < 0.1:
            k = rng.randrange(len(recs))
            recs[k] = replace(recs[k], emotion=tuple(rng.sample(emotions, rng.randint(5, 9))),
                              voice=tuple(rng.sample(voices, rng.randint(0, 8))))
        if rng.random() < 0.05:
            k = rng.randrange(len(recs))
            recs[k] = replace(recs[k], emotion=(), other=("meh",) if rng.random() < 0.5 else ())
        if i % 17 == 0:
            recs = recs[:2]                                        # incomplete
        elif i % 19 == 0:
            recs = recs + [replace(recs[0], annotator=999, annotation_id=10_000 + i)]  # a fourth annotation
        out.append((t.id, recs))
    return out


POLICIES = [Policy(), Policy(review_min_confidence=0.9),
            Policy(rejects_on=frozenset({"contradiction", "categorical_minority"})),
            Policy(rejects_on=frozenset({"inconsistent_with_choices", "empty_description"}), review_min_confidence=0.3)]


def _json(verdicts: list[TaskVerdict]) -> list[dict]:
    return [{**v.to_json(), "evidence": [a.evidence and a.evidence.to_json() for a in v.annotations]} for v in verdicts]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{sorted(p.rejects_on)[0]}-{p.review_min_confidence}")
def test_the_batch_is_one_task_at_a_time_with_the_same_skills(policy, monkeypatch):
    monkeypatch.setattr(rules, "BULK", 10)  # the large-batch path (collector paused) on a small batch
    judge = RulesJudge(TAX, policy)
    tasks = _tasks()
    fitted, skills = judge.judge_tasks(tasks, fit=True)
    known, same = judge.judge_tasks(tasks, skills=skills, fit=False)
    single = [judge.judge_records(task_id, records, skills=skills) for task_id, records in tasks]
    assert same == skills and known == single == fitted
    assert _json(known) == _json(single)
    assert {a.verdict for v in known for a in v.annotations} == {"accept", "reject"}


def test_an_export_in_one_batch_is_its_tasks_one_at_a_time(monkeypatch):
    """The LS JSON path (`clesc judge --export`), with cancelled annotations and invalid labels."""
    monkeypatch.setattr(rules, "BULK", 10)
    judge = RulesJudge(TAX)
    export = _export(_tasks(seed=3, clips=120))
    batch = judge.judge_many(export)
    parsed = [(t["id"], [judge._parse(a) for a in t["annotations"] if not a["was_cancelled"]]) for t in export]
    again, skills = judge._judge_many(parsed, {}, fit=True)  # the skills judge_many fitted
    assert again == batch
    single = [judge.judge(t["id"], t["annotations"], skills=skills) for t in export]
    assert batch == single and _json(batch) == _json(single)
    assert any(r.code == "invalid_label" for v in batch for a in v.annotations for r in a.reasons)
    assert any(r.code == "duplicate_annotation" for v in batch for a in v.annotations for r in a.reasons)
    reference = _reference(judge, parsed, skills)
    assert batch == reference and _json(batch) == _json(reference)
    assert [v.status for v in batch] == [v.status for v in reference]


def _export(tasks) -> list[dict]:
    """The tasks as an LS export, some labels invalid (an unknown choice), some annotations cancelled, some
    submitted twice by one annotator."""
    export = []
    for task_id, records in tasks:
        annotations = [{**to_annotation(r, TAX), "was_cancelled": False} for r in records]
        if task_id % 7 == 0:
            annotations[0]["result"][0]["value"]["choices"] = ["brisk"]
        if task_id % 11 == 0:
            annotations[-1]["was_cancelled"] = True
        if task_id % 13 == 0:  # its annotator submitted again: the newer one counts, the first is superseded
            again = to_annotation(replace(records[1], pace="variable", annotation_id=10**6 + task_id), TAX)
            annotations.append({**again, "was_cancelled": False})
        export.append({"id": task_id, "annotations": annotations})
    return export


def _reference(judge: RulesJudge, entries, skills) -> list[TaskVerdict]:
    """The verdicts as the judge defines them, one annotation at a time, objects made the ordinary way (the
    rules judge before its batch was built from arrays): what the bulk build must equal exactly."""
    keys = sorted({e.annotator for _, es in entries for e in es if e.record is not None},
                  key=lambda k: (str(type(k)), k))
    entries, superseded = rules._one_vote_each(entries)
    enc = judge._encode(entries, keys, superseded)
    known = [skills.get(k) or Skill() for k in keys]
    r = np.array([s.random_rate for s in known])
    acc = np.array([[s.accuracy[a] for a in CATEGORICAL] for s in known])
    result = infer(enc.batch, r, acc, judge.similarity)
    words, values = judge.similarity.words, [ATTRIBUTES[a].values for a in CATEGORICAL]
    policy = judge.policy
    info = {"backend": judge.backend, "version": judge.version}
    out = []
    for t, (task_id, es) in enumerate(entries):
        if not enc.complete[t]:
            out.append(TaskVerdict(task_id, "incomplete", empty_consensus(), tuple(judge._hard_only(e) for e in es),
                                   info))
            continue
        consensus = {a: (values[x][c] if c >= 0 else None) for x, (a, c) in enumerate(zip(CATEGORICAL, result.consensus[t]))}
        consensus["emotion"] = [words[i] for i in result.emotion[t]]
        consensus["voice"] = [words[i] for i in result.voice[t]]
        verdicts = []
        for e, row in zip(es, enc.positions[t]):
            if row is None:
                verdicts.append(judge._hard_only(e))
                continue
            rec = e.record
            reasons = judge._findings(rec) if enc.hard[row] else []
            hard = max((HARD_CONFIDENCE[x.code] for x in reasons if x.code in policy.rejects_on), default=0.0)
            allowed = False
            for x, a in enumerate(CATEGORICAL):
                c = result.consensus[t, x]
                if c >= 0 and enc.batch.labels[row, x] != c:
                    allowed = "categorical_minority" in policy.rejects_on
                    reasons.append(Reason("categorical_minority", f"{a}: {getattr(rec, a)} vs majority {consensus[a]}"))
            if result.emotion_bin[row] == EMOTION_BINS.index("far"):
                allowed = allowed or "emotion_outlier" in policy.rejects_on
                against = consensus["emotion"] or sorted({w for o in es if o is not e and o.record for w in o.record.emotion})
                reasons.append(Reason("emotion_outlier", f"{', '.join(rec.emotion)} vs consensus {', '.join(against)}"))
            skill = known[enc.batch.annotator[row]]
            p = float(result.p_random[row])
            if skill.flagged:
                reasons.append(Reason("unreliable_annotator", skill.describe()))
                allowed = allowed or "unreliable_annotator" in policy.rejects_on
                p = max(p, skill.flag_confidence)
            confidence = max(hard, p) if allowed else hard
            honest = 1 - float(result.p_random[row])
            evidence = Evidence(1.0, float(result.p_random[row]), (honest,) * 3,
                                tuple(honest * float(a) for a in result.agree[row]), 1.0 if enc.hard[row] else 0.0)
            verdicts.append(AnnotationVerdict(e.annotation_id, e.annotator,
                                              "reject" if confidence >= policy.review_min_confidence else "accept",
                                              tuple(reasons), round(max(hard, p), 4), round(skill.reliability, 4),
                                              evidence))
        verdicts = tuple(verdicts)
        out.append(TaskVerdict(task_id, task_status(verdicts, consensus), consensus, verdicts, info))
    return out


@pytest.mark.parametrize("policy", POLICIES[:3], ids=["default", "strict", "few"])
def test_the_bulk_build_is_the_per_annotation_reference(policy, monkeypatch):
    monkeypatch.setattr(rules, "BULK", 10)
    judge = RulesJudge(TAX, policy)
    tasks = _tasks(seed=5)
    verdicts, skills = judge.judge_tasks(tasks, fit=True)
    reference = _reference(judge, [(task_id, rules._entries(records)) for task_id, records in tasks], skills)
    assert verdicts == reference and _json(verdicts) == _json(reference)
    for v, ref in zip(verdicts, reference):   # the same types and fields, not only equal values
        assert type(v) is TaskVerdict and vars(v) == vars(ref)
        for a, b in zip(v.annotations, ref.annotations):
            assert type(a) is AnnotationVerdict and vars(a).keys() == vars(b).keys()
            assert a.evidence is None or (type(a.evidence) is Evidence and vars(a.evidence) == vars(b.evidence))
            assert hash(a) == hash(b)


def test_the_objects_set_at_once_have_exactly_their_fields():
    """`_build` sets the frozen dataclasses' __dict__ in one go: a field added to them must be added there."""
    judge = RulesJudge(TAX)
    verdict = judge.judge_records(1, [LabelRecord("fast", "low", "quiet", emotion=("sad",), annotator=i, annotation_id=i)
                                      for i in range(3)])
    for obj in (verdict, verdict.annotations[0], verdict.annotations[0].evidence):
        assert list(vars(obj)) == [f.name for f in dataclasses.fields(obj)]
        assert obj == type(obj)(**vars(obj))


def test_round4_is_pythons_round():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(20_000), (np.arange(20_001) + 0.5) / 1e4, np.arange(10_001) / 1e4,
                        [0.0, 1.0, 0.99995, 0.00015, 0.12345]])
    assert rules._round4(x) == [round(v, 4) for v in x.tolist()]


def test_bulk_restores_the_collector():
    assert gc.isenabled()
    frozen = gc.get_freeze_count()  # `clesc report`, run earlier in the same session, may have frozen its data
    with rules._bulk(rules.BULK):
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    with rules._bulk(rules.BULK - 1):
        assert gc.isenabled()
    gc.disable()
    try:
        with rules._bulk(rules.BULK):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ZeroDivisionError):
        with rules._bulk(rules.BULK):
            1 / 0
    assert gc.isenabled()
