import itertools
import json
import math

import pytest

from label_config import ATTRIBUTES, LabelRecord, load_taxonomy, to_annotation
from webhooks.judge import (
    REASON_CODES,
    RULES_VERSION,
    AnnotationVerdict,
    Policy,
    Reason,
    RulesJudge,
    TaskVerdict,
    judge_export,
    load_export,
)

TAX = load_taxonomy()


@pytest.fixture(scope="module")
def judge():
    return RulesJudge(TAX)


def ann(id, pace="normal", pitch="medium", volume="medium", emotion=("happy",), voice=(), other=(), user=None, **extra):
    record = LabelRecord(pace, pitch, volume, emotion=tuple(emotion), voice=tuple(voice), other=tuple(other),
                         annotator=100 + id if user is None else user, annotation_id=id, task_id=1)
    return {**to_annotation(record, TAX), "was_cancelled": False, **extra}


def codes(verdict, annotation_id):
    return [r.code for r in by_id(verdict, annotation_id).reasons]


def by_id(verdict, annotation_id):
    return next(a for a in verdict.annotations if a.annotation_id == annotation_id)


def test_unanimous_task_is_accepted_with_consensus(judge):
    v = judge.judge(1, [ann(1, "fast", "high", "loud"), ann(2, "fast", "high", "loud"), ann(3, "fast", "high", "loud")])
    assert v.status == "accepted"
    assert v.consensus == {"pace": "fast", "pitch": "high", "volume": "loud", "emotion": ["happy"], "voice": []}
    assert [(a.annotation_id, a.annotator, a.verdict, a.reasons) for a in v.annotations] == [
        (1, 101, "accept", ()), (2, 102, "accept", ()), (3, 103, "accept", ())]
    assert v.judge == {"backend": "rules", "version": RULES_VERSION}


def test_two_one_split_wins_and_the_minority_is_noted_but_accepted(judge):
    v = judge.judge(1, [ann(1, pace="slow"), ann(2, pace="fast"), ann(3, pace="fast")])
    assert v.consensus["pace"] == "fast"
    assert v.status == "accepted"
    assert by_id(v, 1).verdict == "accept"
    assert by_id(v, 1).reasons == (Reason("categorical_minority", "pace: slow vs majority fast"),)
    assert codes(v, 2) == codes(v, 3) == []


def test_one_one_one_split_is_a_tie_in_every_order(judge):
    annotations = [ann(1, pace="slow"), ann(2, pace="normal"), ann(3, pace="fast")]
    for order in itertools.permutations(annotations):
        v = judge.judge(1, list(order))
        assert v.consensus["pace"] is None
        assert v.consensus["pitch"] == "medium"
        assert v.status == "no_consensus"
        assert all(a.verdict == "accept" and not a.reasons for a in v.annotations)


def test_verdicts_do_not_depend_on_annotation_order(judge):
    annotations = [
        ann(1, "slow", "low", "quiet", emotion=("sad", "tired"), voice=("husky",)),
        ann(2, "slow", "high", "quiet", emotion=("unhappy",), voice=("throaty", "whispering")),
        ann(3, "fast", "low", "loud", emotion=("gloomy", "weary"), voice=("gravelly", "whispering")),
    ]
    expected = judge.judge(9, annotations).to_json()
    for order in itertools.permutations(annotations):
        got = judge.judge(9, list(order)).to_json()
        assert got["consensus"] == expected["consensus"]
        assert got["status"] == expected["status"]
        assert sorted(got["annotations"], key=lambda a: a["annotation_id"]) == expected["annotations"]


def test_minority_on_every_attribute_rejects(judge):
    v = judge.judge(1, [ann(1, "slow", "low", "quiet"), ann(2, "fast", "high", "loud"), ann(3, "fast", "high", "loud")])
    assert codes(v, 1) == ["categorical_minority"] * 3
    assert by_id(v, 1).verdict == "reject"
    assert v.status == "needs_review"
    assert v.rejected_ids == (1,)


def test_minority_on_two_attributes_does_not_reject_by_default(judge):
    v = judge.judge(1, [ann(1, "slow", "low", "loud"), ann(2, "fast", "high", "loud"), ann(3, "fast", "high", "loud")])
    assert codes(v, 1) == ["categorical_minority"] * 2
    assert v.status == "accepted"
    assert 0 < by_id(v, 1).confidence < 0.5


def test_a_lower_confidence_threshold_rejects_more():
    strict = RulesJudge(TAX, Policy(review_min_confidence=0.05))
    v = strict.judge(1, [ann(1, "slow", "low", "loud"), ann(2, "fast", "high", "loud"), ann(3, "fast", "high", "loud")])
    assert by_id(v, 1).verdict == "reject"
    assert v.status == "needs_review"


def test_a_lenient_policy_keeps_contradictions_as_information():
    lenient = RulesJudge(TAX, Policy(rejects_on={"invalid_label"}))
    v = lenient.judge(1, [ann(1, "slow", "low", "quiet", emotion=("calm", "agitated")),
                          ann(2, "fast", "high", "loud"), ann(3, "fast", "high", "loud")])
    assert codes(v, 1) == ["contradiction"] + ["categorical_minority"] * 3 + ["emotion_outlier"]
    assert by_id(v, 1).verdict == "accept"
    assert by_id(v, 1).confidence > 0.9  # what the findings say, though the policy acts on none of them
    assert v.status == "accepted"


def test_policy_refuses_unknown_codes_and_impossible_thresholds():
    with pytest.raises(ValueError, match="unknown reason codes"):
        Policy(rejects_on={"contradiction", "bad_mood"})
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="review_min_confidence"):
            Policy(review_min_confidence=bad)
    with pytest.raises(ValueError, match="overlap"):
        Policy(overlap=0)


def test_opposed_words_in_one_description_are_a_contradiction(judge):
    assert "agitated" in TAX["calm"].opposes
    v = judge.judge(1, [ann(1, emotion=("calm", "agitated")), ann(2, emotion=("calm",)), ann(3, emotion=("calm",))])
    assert by_id(v, 1).reasons == (Reason("contradiction", "calm vs agitated"),)
    assert by_id(v, 1).verdict == "reject"
    assert v.status == "needs_review"


def test_opposition_across_emotion_and_voice_words(judge):
    assert "booming" in TAX["timid"].opposes and TAX["booming"].kind == "voice"
    v = judge.judge(1, [ann(1, volume="loud", emotion=("timid",), voice=("booming",)),
                        ann(2, volume="loud", emotion=("timid",)), ann(3, volume="loud", emotion=("timid",))])
    assert by_id(v, 1).reasons == (Reason("contradiction", "timid vs booming"),)


def test_a_word_whose_implies_disallows_the_chosen_value_is_inconsistent(judge):
    assert TAX["whispering"].implies["volume"] == ("quiet",)
    v = judge.judge(1, [ann(1, volume="loud", voice=("whispering",)), ann(2, volume="loud"), ann(3, volume="loud")])
    assert by_id(v, 1).reasons == (Reason("inconsistent_with_choices", "whispering implies volume quiet, chose loud"),)
    assert by_id(v, 1).verdict == "reject"


def test_implies_allows_each_listed_value(judge):
    assert TAX["softly spoken"].implies["volume"] == ("quiet", "medium")
    ok = judge.judge(1, [ann(i, volume="medium", voice=("softly spoken",)) for i in (1, 2, 3)])
    assert ok.status == "accepted"
    bad = judge.judge(1, [ann(i, volume="variable", voice=("softly spoken",)) for i in (1, 2, 3)])
    assert by_id(bad, 1).reasons == (
        Reason("inconsistent_with_choices", "softly spoken implies volume quiet or medium, chose variable"),)


def test_close_words_of_one_family_are_one_concept(judge):
    happy, joyful = TAX["happy"], TAX["joyful"]
    assert happy.family == joyful.family == "joy"
    assert math.dist((happy.valence, happy.arousal), (joyful.valence, joyful.arousal)) <= Policy().concept_distance
    assert "joyful" in judge.synonyms("happy")
    assert judge.synonyms("happy") == judge.synonyms("joyful")
    assert "sad" not in judge.synonyms("happy")


def test_concepts_never_span_families_nor_exceed_the_distance(judge):
    for word in TAX:
        group = judge.synonyms(word)
        assert word in group
        assert {TAX[w].family for w in group} == {TAX[word].family}
        for a, b in itertools.combinations(group, 2):
            d = math.dist((TAX[a].valence, TAX[a].arousal), (TAX[b].valence, TAX[b].arousal))
            assert d <= Policy().concept_distance + 1e-9, (a, b, d)


def test_same_family_words_too_far_apart_are_not_synonyms(judge):
    assert TAX["satisfied"].family == TAX["ecstatic"].family
    assert "ecstatic" not in judge.synonyms("satisfied")


def test_synonyms_are_counted_together_in_the_emotion_vote(judge):
    v = judge.judge(1, [ann(1, emotion=("happy",)), ann(2, emotion=("joyful",)), ann(3, emotion=("sad",))])
    assert v.consensus["emotion"] == ["happy"]
    assert codes(v, 3) == ["emotion_outlier"]
    assert by_id(v, 3).reasons[0].detail == "sad vs consensus happy"


def test_an_emotion_outlier_who_agrees_on_everything_else_is_honest_disagreement(judge):
    """Hearing another feeling is no rejection when the annotator agrees on pace, pitch and volume."""
    v = judge.judge(1, [ann(1, emotion=("happy",)), ann(2, emotion=("joyful",)), ann(3, emotion=("sad",))])
    assert by_id(v, 3).verdict == "accept" and by_id(v, 3).confidence < 0.5
    assert v.status == "accepted"


def test_an_outlier_on_everything_is_rejected_as_random(judge):
    v = judge.judge(1, [ann(1, "fast", "high", "loud", emotion=("happy",)), ann(2, "fast", "high", "loud", emotion=("joyful",)),
                        ann(3, "slow", "low", "quiet", emotion=("furious",))])
    assert codes(v, 3) == ["categorical_minority"] * 3 + ["emotion_outlier"]
    assert by_id(v, 3).verdict == "reject" and by_id(v, 3).confidence > 0.9


def test_a_near_neighbour_word_is_no_outlier(judge):
    """A word of a neighbouring concept of the same family names the same feeling."""
    assert "depressed" not in judge.synonyms("sad") and TAX["depressed"].family == TAX["sad"].family
    v = judge.judge(1, [ann(1, emotion=("sad",)), ann(2, emotion=("unhappy",)), ann(3, emotion=("depressed",))])
    assert codes(v, 3) == [] and v.status == "accepted"


def test_a_concept_needs_two_annotators_not_two_words_of_one(judge):
    v = judge.judge(1, [ann(1, emotion=("happy", "joyful")), ann(2, emotion=("sad",)), ann(3, emotion=("angry",))])
    assert v.consensus["emotion"] == []
    assert all(a.verdict == "accept" for a in v.annotations)


def test_canonical_word_is_the_most_used_then_taxonomy_order(judge):
    most_used = judge.judge(1, [ann(1, emotion=("joyful",)), ann(2, emotion=("joyful", "tired")),
                                ann(3, emotion=("happy", "tired"))])
    assert most_used.consensus["emotion"] == ["joyful", "tired"]
    tied = [ann(1, emotion=("cheerful",)), ann(2, emotion=("joyful",)), ann(3, emotion=("happy",))]
    for order in itertools.permutations(tied):
        assert judge.judge(1, list(order)).consensus["emotion"] == ["happy"]


def test_consensus_is_sorted_by_support_then_taxonomy_order(judge):
    assert list(TAX).index("sad") < list(TAX).index("tired")
    v = judge.judge(1, [ann(1, emotion=("tired", "sad")), ann(2, emotion=("tired", "sad")), ann(3, emotion=("tired",))])
    assert v.consensus["emotion"] == ["tired", "sad"]
    v = judge.judge(1, [ann(1, emotion=("tired", "sad")), ann(2, emotion=("sad", "tired")), ann(3, emotion=("angry",))])
    assert v.consensus["emotion"] == ["sad", "tired"]


def test_voice_consensus_is_reported_but_a_voice_outlier_is_not_rejected(judge):
    v = judge.judge(1, [ann(1, voice=("husky",)), ann(2, voice=("throaty",)), ann(3, voice=("nasal",))])
    assert v.consensus["voice"] == ["husky"]
    assert codes(v, 3) == []
    assert v.status == "accepted"


def test_an_outlier_sharing_one_concept_is_not_an_outlier(judge):
    v = judge.judge(1, [ann(1, emotion=("happy",)), ann(2, emotion=("happy",)), ann(3, emotion=("sad", "cheerful"))])
    assert codes(v, 3) == []


def test_empty_description_is_rejected_but_free_words_count(judge):
    v = judge.judge(1, [ann(1, emotion=(), voice=("husky",)), ann(2, emotion=(), other=("giggly",)), ann(3)])
    assert codes(v, 1) == ["empty_description"]
    assert by_id(v, 1).verdict == "reject"
    # Free words cannot be compared with the consensus, so they are no outlier either.
    assert codes(v, 2) == []


def test_invalid_label_is_rejected_and_takes_no_part_in_the_votes(judge):
    bad = ann(3, pace="slow")
    bad["result"][0]["value"]["choices"] = ["sluggish"]
    v = judge.judge(1, [ann(1, pace="fast"), ann(2, pace="normal"), bad])
    invalid = by_id(v, 3)
    assert invalid.annotator == 103
    assert invalid.verdict == "reject"
    assert [r.code for r in invalid.reasons] == ["invalid_label"]
    assert "pace" in invalid.reasons[0].detail and "'sluggish'" in invalid.reasons[0].detail
    # With the invalid one out, the two valid ones disagree: no majority rather than a 1-1 pick.
    assert v.consensus["pace"] is None
    assert v.status == "needs_review"


def test_two_valid_annotations_that_agree_make_a_majority(judge):
    bad = ann(3)
    bad["result"].append({"from_name": "emotion", "to_name": "audio", "type": "taxonomy",
                          "value": {"taxonomy": [["joy", "sad"]]}})
    v = judge.judge(1, [ann(1, pace="fast"), ann(2, pace="fast"), bad])
    assert codes(v, 3) == ["invalid_label"]
    assert "belongs to family 'sadness'" in by_id(v, 3).reasons[0].detail
    assert v.consensus["pace"] == "fast"
    assert v.consensus["emotion"] == ["happy"]


def test_cancelled_annotations_are_ignored(judge):
    skipped = {"id": 4, "completed_by": 9, "was_cancelled": True, "result": []}
    v = judge.judge(1, [ann(1), skipped, ann(2), ann(3)])
    assert [a.annotation_id for a in v.annotations] == [1, 2, 3]
    assert v.status == "accepted"


def test_a_was_cancelled_that_is_no_boolean_is_an_invalid_label_not_a_skip(judge):
    odd = ann(3, pace="slow", was_cancelled="false")
    v = judge.judge(1, [ann(1), ann(2), odd])
    assert [a.annotation_id for a in v.annotations] == [1, 2, 3]
    assert codes(v, 3) == ["invalid_label"]
    assert "was_cancelled" in by_id(v, 3).reasons[0].detail and "'false'" in by_id(v, 3).reasons[0].detail
    assert v.status == "needs_review"


def test_one_vote_per_annotator_the_newest_counts(judge):
    # one user submitted three times "slow"; two others say "fast": the user is one vote, not three
    same = [ann(i, pace="slow", user=7) for i in (11, 12, 13)]
    v = judge.judge(1, [*same, ann(2, pace="fast"), ann(3, pace="fast")])
    assert v.consensus["pace"] == "fast"
    assert [(a.annotation_id, a.verdict) for a in v.annotations] == [
        (11, "reject"), (12, "reject"), (13, "accept"), (2, "accept"), (3, "accept")]
    assert by_id(v, 11).reasons == (Reason("duplicate_annotation", "superseded by annotation 13 of the same annotator"),)
    assert by_id(v, 11).confidence == 1.0
    assert codes(v, 13) == ["categorical_minority"]  # the newest is judged in the votes, as one of three
    assert v.status == "needs_review"  # ops sees the duplicates
    # the newest by id, wherever it stands in the list
    v = judge.judge(1, [same[2], ann(2, pace="fast"), same[0], ann(3, pace="fast"), same[1]])
    assert [a.annotation_id for a in v.annotations if a.verdict == "accept"] == [13, 2, 3]
    # one without an id (not LS's) never outranks one with an id, in any order
    odd = {**ann(14, pace="slow", user=7), "id": None}
    for order in itertools.permutations([same[0], odd, same[2]]):
        v = judge.judge(1, [*order, ann(2, pace="fast"), ann(3, pace="fast")])
        assert [a.annotation_id for a in v.annotations if a.verdict == "accept"][0] == 13


def test_several_annotations_of_one_user_do_not_complete_a_task(judge):
    v = judge.judge(1, [ann(1, user=7), ann(2, user=7), ann(3, user=8)])
    assert v.status == "incomplete"
    assert [(a.annotation_id, a.verdict, [r.code for r in a.reasons]) for a in v.annotations] == [
        (1, "reject", ["duplicate_annotation"]), (2, "accept", []), (3, "accept", [])]
    # a policy that does not reject on duplicates only notes them, and they still do not vote
    lenient = RulesJudge(TAX, Policy(rejects_on=set(REASON_CODES) - {"duplicate_annotation"}))
    v = lenient.judge(1, [ann(1, pace="slow", user=7), ann(2, pace="slow", user=7), ann(3, pace="fast"), ann(4, pace="fast")])
    assert v.consensus["pace"] == "fast" and by_id(v, 1).verdict == "accept"
    assert codes(v, 1) == ["duplicate_annotation"]
    # an annotation of unknown author is never merged with another
    nobody = [{**ann(i), "completed_by": None} for i in (1, 2, 3)]
    assert judge.judge(1, nobody).status == "accepted"


def test_one_vote_per_annotator_in_a_batch_as_on_the_webhook(judge):
    tasks = [{"id": 1, "annotations": [ann(11, pace="slow", user=7), ann(12, pace="slow", user=7), ann(2, pace="fast"),
                                       ann(3, pace="fast")]},
             {"id": 2, "annotations": [ann(4), ann(5), ann(6)]}]
    batch = [v.to_json() for v in judge.judge_many(tasks)]
    assert batch[0]["consensus"]["pace"] == "fast"
    assert [a["verdict"] for a in batch[0]["annotations"]] == ["reject", "accept", "accept", "accept"]
    assert batch[0]["annotations"][1]["reasons"][0]["code"] == "categorical_minority"


def test_fewer_than_the_overlap_is_incomplete(judge):
    skipped = {"id": 4, "completed_by": 9, "was_cancelled": True, "result": []}
    bad = ann(2)
    bad["result"] = "nonsense"
    v = judge.judge(5, [ann(1, emotion=("calm", "agitated")), skipped, bad])
    assert v.status == "incomplete"
    assert v.consensus == {"pace": None, "pitch": None, "volume": None, "emotion": [], "voice": []}
    assert [(a.annotation_id, a.verdict) for a in v.annotations] == [(1, "accept"), (2, "reject")]
    assert by_id(v, 1).reasons == ()
    assert codes(v, 2) == ["invalid_label"]
    assert judge.judge(5, []).status == "incomplete"


def test_a_fourth_annotation_is_judged_too(judge):
    v = judge.judge(1, [ann(1, pace="fast"), ann(2, pace="fast"), ann(3, pace="slow"), ann(4, pace="slow")])
    assert len(v.annotations) == 4
    assert v.consensus["pace"] is None  # 2-2 is no strict majority of four
    v = judge.judge(1, [ann(1, pace="fast"), ann(2, pace="fast"), ann(3, pace="fast"), ann(4, pace="slow")])
    assert v.consensus["pace"] == "fast"
    assert codes(v, 4) == ["categorical_minority"]


def test_overlap_comes_from_the_policy():
    two = RulesJudge(TAX, Policy(overlap=2))
    assert two.judge(1, [ann(1), ann(2)]).status == "accepted"
    assert RulesJudge(TAX).judge(1, [ann(1), ann(2)]).status == "incomplete"


def test_annotator_may_be_a_user_object(judge):
    a = ann(1)
    a["completed_by"] = {"id": 42, "email": "x@example.com"}
    assert by_id(judge.judge(1, [a, ann(2), ann(3)]), 1).annotator == 42


def test_to_json_is_exactly_the_contract(judge):
    v = judge.judge(12, [ann(1, emotion=("calm", "agitated")), ann(2), ann(3)]).to_json()
    assert list(v) == ["task_id", "status", "consensus", "annotations", "judge"]
    assert list(v["consensus"]) == ["pace", "pitch", "volume", "emotion", "voice"]
    # the contract's fields first, in order; the judge's confidence and the annotator's reliability added
    assert all(list(a) == ["annotation_id", "annotator", "verdict", "reasons", "confidence", "reliability"]
               for a in v["annotations"])
    assert all(0 <= a["confidence"] <= 1 and 0 < a["reliability"] <= 1 for a in v["annotations"])
    assert v["annotations"][0]["reasons"] == [{"code": "contradiction", "detail": "calm vs agitated"},
                                              {"code": "emotion_outlier", "detail": "calm, agitated vs consensus happy"}]
    assert list(v["judge"]) == ["backend", "version"]
    assert v["task_id"] == 12 and v["status"] == "needs_review"
    assert json.loads(json.dumps(v)) == v
    assert {r["code"] for a in v["annotations"] for r in a["reasons"]} <= set(REASON_CODES)


def test_from_json_round_trips(judge):
    v = judge.judge(12, [ann(1, pace="slow", voice=("whispering",), volume="loud"), ann(2), ann(3)])
    assert TaskVerdict.from_json(json.loads(json.dumps(v.to_json()))) == v


def test_from_json_names_what_is_wrong():
    good = TaskVerdict(1, "accepted", {"pace": "fast", "pitch": "low", "volume": "loud", "emotion": [], "voice": []},
                       (AnnotationVerdict(1, 2, "accept"),), {"backend": "rules", "version": "rules-1"}).to_json()
    with pytest.raises(ValueError, match="'consensus'"):
        TaskVerdict.from_json({k: v for k, v in good.items() if k != "consensus"})
    with pytest.raises(ValueError, match="unknown status"):
        TaskVerdict.from_json({**good, "status": "fine"})
    with pytest.raises(ValueError, match="unknown verdict"):
        TaskVerdict.from_json({**good, "annotations": [{**good["annotations"][0], "verdict": "maybe"}]})


def export():
    return [
        {"id": 1, "data": {"audio": "/a.wav"}, "annotations": [ann(1), ann(2), ann(3)]},
        {"id": 2, "data": {"audio": "/b.wav"}, "annotations": [ann(4, pace="slow"), ann(5), ann(6, pace="fast")]},
        {"id": 3, "data": {"audio": "/c.wav"}},
        {"id": 4, "data": {"audio": "/d.wav"}, "annotations": [ann(7, emotion=()), ann(8), ann(9)]},
    ]


def test_judge_export_gives_one_verdict_per_task_in_order(judge):
    seen = []
    verdicts = judge_export(export(), judge, progress=lambda done, total: seen.append((done, total)))
    assert [(v["task_id"], v["status"]) for v in verdicts] == [
        (1, "accepted"), (2, "no_consensus"), (3, "incomplete"), (4, "needs_review")]
    assert verdicts[2]["annotations"] == []
    assert verdicts[3]["annotations"][0]["reasons"][0]["code"] == "empty_description"
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [TaskVerdict.from_json(v).to_json() for v in verdicts] == verdicts


def test_load_export_reads_a_file_and_refuses_what_is_not_an_export(tmp_path):
    good = tmp_path / "export.json"
    good.write_text(json.dumps(export()))
    assert [t["id"] for t in load_export(good)] == [1, 2, 3, 4]
    cases = {
        "not JSON": "{oops",
        "expected a JSON list": json.dumps({"id": 1}),
        "task #1 has no 'id'": json.dumps([{"id": 1}, {"annotations": []}]),
        "task #0 is str": json.dumps(["task"]),
        "'annotations' must be a list": json.dumps([{"id": 3, "annotations": {}}]),
        "task #0 is NoneType": "[null]",
        r"task #1: 'id' must be a Label Studio task id .* got '7'": json.dumps([{"id": 6}, {"id": "7"}]),
        "must be a Label Studio task id .* got True": json.dumps([{"id": True}]),
        "must be a Label Studio task id .* got -1": json.dumps([{"id": -1}]),
        "task 5 is listed twice \\(#0 and #2\\)": json.dumps([{"id": 5}, {"id": 6}, {"id": 5}]),
    }
    for message, text in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_export(bad)


def test_attribute_values_come_from_the_schema(judge):
    for attr, spec in ATTRIBUTES.items():
        for value in spec.values:
            v = judge.judge(1, [ann(i, **{attr: value}) for i in (1, 2, 3)])
            assert v.consensus[attr] == value
