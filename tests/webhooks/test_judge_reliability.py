"""Annotator skills: the model's arithmetic, incremental updates, ops decisions, and a spammer caught across
tasks while honest disagreement (2-1 splits, synonyms, near-neighbour words) is accepted."""

from __future__ import annotations

import pytest

from label_config import LabelRecord
from scripts.bench.annotators import GOOD_TYPES, simulate
from webhooks.judge.reliability import FLAG_MIN_ANNOTATIONS, Evidence, Skill
from webhooks.judge.rules import Policy, RulesJudge


@pytest.fixture(scope="module")
def judge():
    return RulesJudge()


def test_the_prior_is_a_mostly_honest_newcomer():
    skill = Skill()
    assert skill.random_rate == pytest.approx(0.1)
    assert skill.accuracy == pytest.approx({"pace": 0.8, "pitch": 0.8, "volume": 0.8})
    assert not skill.flagged and skill.annotations == 0


def test_evidence_adds_and_subtracts_exactly():
    a = Evidence(1, 0.9, (0.1, 0.1, 0.1), (0.05, 0.0, 0.1), 1)
    b = Evidence(1, 0.2, (0.8, 0.8, 0.8), (0.7, 0.8, 0.6), 0)
    total = Skill() + a + b
    assert total.annotations == 2 and total.evidence.random == pytest.approx(1.1)
    back = total - b - a
    assert back.evidence.annotations == 0 and back.evidence.random == pytest.approx(0.0)
    assert all(x == pytest.approx(0.0) for x in back.evidence.weight + back.evidence.agree)


def test_an_ops_decision_replaces_the_judges_guess():
    guess = Evidence(1, 0.6, (0.4,) * 3, (0.2, 0.4, 0.3), 0)
    upheld, overturned = guess.decided(upheld=True), guess.decided(upheld=False)
    assert upheld.random == 1 and upheld.weight == (0, 0, 0)
    assert overturned.random == 0 and overturned.weight == (1, 1, 1)
    assert overturned.agree == pytest.approx((0.5, 1.0, 0.75))  # the share of agreement it had


def test_a_flag_needs_enough_annotations_and_confidence():
    spam = Evidence(1, 1.0, (0.0,) * 3, (0.0,) * 3)
    skill = Skill()
    for _ in range(FLAG_MIN_ANNOTATIONS - 1):
        skill = skill + spam
    assert not skill.flagged  # too few, however random
    for _ in range(20):
        skill = skill + spam
    assert skill.flagged and skill.flag_confidence > 0.99
    careless = Skill()
    for i in range(40):
        careless = careless + Evidence(1, 1.0 if i % 3 == 0 else 0.0, (1.0,) * 3, (0.8,) * 3)
    assert not careless.flagged and 0.25 < careless.random_rate < 0.4  # a third random is careless, not a spammer


def test_moved_says_when_other_verdicts_may_change():
    start = Skill()
    assert start.moved(start) is None
    honest = start
    for _ in range(30):
        honest = honest + Evidence(1, 0.0, (1.0,) * 3, (0.9,) * 3)
    assert honest.moved(start) == "skill"  # odds of a random annotation fell more than twofold
    spammer = start
    for _ in range(30):
        spammer = spammer + Evidence(1, 1.0, (0.0,) * 3, (0.0,) * 3)
    assert spammer.moved(start) == "flag"


def _project(mix, seed, clips=300):
    p = simulate(mix, clips=clips, seed=seed)
    return p, [(t.id, t.records) for t in p.tasks]


def test_a_spammer_is_caught_across_tasks_and_honest_people_are_not(judge):
    project, tasks = _project("heavy", 1, clips=600)
    verdicts, skills = judge.judge_tasks(tasks)
    by_type = {a.id: a.type for a in project.annotators}
    spammers = [a for a, t in by_type.items() if t == "spammer"]
    assert spammers and all(skills[a].flagged for a in spammers if skills[a].annotations >= 40)
    assert not any(skills[a].flagged for a, t in by_type.items() if t in GOOD_TYPES)
    caught = [v.rejected for t, task in zip(verdicts, project.tasks) for v, a in zip(t.annotations, task.annotations)
              if a.annotator.type == "spammer"]
    assert sum(caught) / len(caught) > 0.95
    unreliable = {r.code for t in verdicts for v in t.annotations for r in v.reasons if v.annotator in spammers}
    assert "unreliable_annotator" in unreliable
    assert all(skills[a].reliability > skills[s].reliability for a, t in by_type.items() if t == "honest" for s in spammers)


def test_honest_disagreement_is_accepted(judge):
    project, tasks = _project("typical", 3)
    verdicts, _ = judge.judge_tasks(tasks)
    honest = [(v, a) for t, task in zip(verdicts, project.tasks) for v, a in zip(t.annotations, task.annotations)
              if a.annotator.type in GOOD_TYPES and not a.bad]
    disagreeing = [v for v, _ in honest if v.reasons]  # 2-1 splits, outliers on words
    assert len(disagreeing) > 100
    assert sum(v.rejected for v, _ in honest) / len(honest) < 0.01
    assert sum(v.rejected for v in disagreeing) / len(disagreeing) < 0.03


def test_skills_given_change_the_verdict(judge):
    """The webhook path judges one task with the skills the store holds: a known spammer is rejected even where
    their answer happens to agree, a known honest annotator is trusted where a newcomer would not be."""
    rec = lambda user, pace, emotion: LabelRecord(pace, "medium", "medium", emotion=emotion, annotator=user,  # noqa: E731
                                                  annotation_id=user)
    task = [rec(1, "fast", ("happy",)), rec(2, "fast", ("joyful",)), rec(3, "fast", ("cheerful",))]
    spam = Skill()
    for _ in range(40):
        spam = spam + Evidence(1, 1.0, (0.0,) * 3, (0.0,) * 3)
    verdict = judge.judge_records(1, task, skills={3: spam})
    assert [a.verdict for a in verdict.annotations] == ["accept", "accept", "reject"]
    assert verdict.annotations[2].reasons[-1].code == "unreliable_annotator"
    assert "random on about 40 of 40 annotations" in verdict.annotations[2].reasons[-1].detail
    odd = [rec(1, "fast", ("happy",)), rec(2, "fast", ("happy",)), LabelRecord("slow", "low", "loud", emotion=("sad",),
                                                                               annotator=3, annotation_id=3)]
    newcomer = judge.judge_records(1, odd).annotations[2]
    trusted = Skill()
    for _ in range(200):
        trusted = trusted + Evidence(1, 0.0, (1.0,) * 3, (0.95,) * 3)
    known = judge.judge_records(1, odd, skills={3: trusted}).annotations[2]
    assert known.confidence < newcomer.confidence


@pytest.mark.parametrize("threshold, rejected", [(0.05, True), (0.99, False)])
def test_the_confidence_threshold_decides_what_is_rejected(threshold, rejected):
    judge = RulesJudge(policy=Policy(review_min_confidence=threshold))
    task = [LabelRecord("fast", "high", "loud", emotion=("happy",), annotator=1, annotation_id=1),
            LabelRecord("fast", "high", "loud", emotion=("joyful",), annotator=2, annotation_id=2),
            LabelRecord("slow", "high", "medium", emotion=("happy",), annotator=3, annotation_id=3)]
    third = judge.judge_records(1, task).annotations[2]
    assert 0.05 < third.confidence < 0.99
    assert third.rejected is rejected and [r.code for r in third.reasons] == ["categorical_minority"] * 2


def test_batch_and_one_task_at_a_time_agree_on_most_verdicts(judge):
    """What `clesc judge` decides (skills fitted on the whole export) and the worker (skills as they arrive)."""
    from scripts.bench.judge_quality import online

    project, tasks = _project("heavy", 1, clips=200)
    batch, _ = judge.judge_tasks(tasks)
    webhook = online(judge, project)
    same = sum(a.verdict == b.verdict for x, y in zip(batch, webhook) for a, b in zip(x.annotations, y.annotations))
    assert same / (3 * len(tasks)) > 0.97


def test_scattered_words_count_against_an_annotation_and_one_feeling_refined_does_not(judge):
    """Words picked at random are scattered (sad, excited, bored); an honest description refines one feeling."""
    others = [LabelRecord("fast", "high", "loud", emotion=("happy",), annotator=1, annotation_id=1),
              LabelRecord("fast", "high", "loud", emotion=("joyful",), annotator=2, annotation_id=2)]

    def third(*emotion):
        task = others + [LabelRecord("slow", "high", "loud", emotion=emotion, annotator=3, annotation_id=3)]
        return judge.judge_records(1, task).annotations[2]

    single, refined, scattered = third("sad"), third("sad", "gloomy"), third("sad", "amazed", "calm")
    assert refined.confidence <= single.confidence < scattered.confidence
    assert not refined.rejected and scattered.rejected


def skill(accuracy, random=0.0):
    """An annotator seen on 100 annotations with this accuracy, answering at random this often."""
    s = Skill()
    for _ in range(100):
        s = s + Evidence(1, random, (1.0 - random,) * 3, (accuracy * (1 - random),) * 3)
    return s


def test_of_two_honest_people_naming_different_feelings_the_more_careful_carries_the_word_vote(judge):
    """The third annotation is a known spammer's: their words take no part, and the two others disagree."""
    task = [LabelRecord("fast", "high", "loud", emotion=("happy",), annotator=1, annotation_id=1),
            LabelRecord("fast", "high", "loud", emotion=("angry",), annotator=2, annotation_id=2),
            LabelRecord("slow", "low", "quiet", emotion=("bored",), annotator=3, annotation_id=3)]

    spammer = skill(0.8, random=1.0)
    tie = judge.judge_records(1, task, skills={1: skill(0.8), 2: skill(0.8), 3: spammer})
    assert tie.consensus["emotion"] == [] and tie.annotations[2].rejected  # equal skills: a tie, no emotion
    # the careful one now and then answers at random too (5%): their care, not a hair of P(random), decides
    careful_first = judge.judge_records(1, task, skills={1: skill(0.95, 0.05), 2: skill(0.7), 3: spammer})
    careful_second = judge.judge_records(1, task, skills={1: skill(0.7), 2: skill(0.95, 0.05), 3: spammer})
    assert careful_first.consensus["emotion"] == ["happy"] and careful_second.consensus["emotion"] == ["angry"]


def _emotions(*descriptions):
    return [LabelRecord("fast", "high", "loud", emotion=e, annotator=i, annotation_id=i, task_id=1)
            for i, e in enumerate(descriptions, start=1)]


def test_a_feeling_only_one_person_names_leaves_the_consensus_when_two_agree_on_another(judge):
    """The careful annotator's weight alone is a majority once the spammer's words take no part: without the
    family step their second feeling (tired) would join the consensus on the strength of one person."""
    assert judge.taxonomy["tired"].family != judge.taxonomy["happy"].family
    task = _emotions(("happy", "tired"), ("joyful",), ("angry",))
    skills = {1: skill(0.95, 0.05), 2: skill(0.7), 3: skill(0.8, random=1.0)}
    assert judge.judge_records(1, task, skills=skills).consensus["emotion"] == ["happy"]
    # two people naming both feelings keep both
    both = _emotions(("happy", "tired"), ("joyful", "tired"), ("angry",))
    assert judge.judge_records(1, both, skills=skills).consensus["emotion"] == ["happy", "tired"]


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (2, 1, 0), (1, 2, 0)])
def test_two_people_agreeing_on_the_feeling_but_not_the_word_give_its_word(judge, order):
    """elated and satisfied are both joy but too far apart to back each other as words; a third person names
    another feeling. Two of three agree on joy: the consensus is joy's most supported word (a tie: taxonomy
    order, whatever the order of the annotations)."""
    tax = judge.taxonomy
    assert tax["elated"].family == tax["satisfied"].family != tax["bored"].family
    sim = judge.similarity
    concept = {w: sim.concept_of[sim.index[w]] for w in ("elated", "satisfied")}
    assert sim.concept_backing[concept["elated"], concept["satisfied"]] == 0
    descriptions = [("elated",), ("satisfied",), ("bored",)]
    verdict = judge.judge_records(1, _emotions(*(descriptions[i] for i in order)))
    assert verdict.consensus["emotion"] == ["elated"] and verdict.status == "accepted"
    # one person naming joy twice is no agreement
    assert judge.judge_records(1, _emotions(("elated", "satisfied"), ("bored",), ("angry",))).consensus["emotion"] == []
