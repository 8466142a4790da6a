import json

import pytest

from label_config import (
    InvalidLabel,
    LabelRecord,
    load_taxonomy,
    parse_annotation,
    to_result,
)
from label_config.records import to_annotation


def choice(name, *values):
    return {"from_name": name, "to_name": "audio", "type": "choices", "value": {"choices": list(values)}}


def taxo(name, *paths):
    return {"from_name": name, "to_name": "audio", "type": "taxonomy", "value": {"taxonomy": [list(p) for p in paths]}}


def ann(*extra, drop=()):
    base = {"pace": choice("pace", "slow"), "pitch": choice("pitch", "low"), "volume": choice("volume", "quiet")}
    result = [r for k, r in base.items() if k not in drop] + list(extra)
    return {"id": 7, "task": 3, "completed_by": 11, "lead_time": 4.5, "result": result}


def problems(annotation):
    with pytest.raises(InvalidLabel) as e:
        parse_annotation(annotation)
    return e.value


def test_webhook_example_annotation_parses():
    # The annotation part of a real LS 1.23.2 ANNOTATION_CREATED payload (../shared/examples).
    a = json.loads("""{"id": 1, "task": 1, "completed_by": 1, "lead_time": 12.5, "was_cancelled": false,
      "result": [{"from_name": "pace", "to_name": "audio", "type": "choices", "value": {"choices": ["slow"]}},
       {"from_name": "pitch", "to_name": "audio", "type": "choices", "value": {"choices": ["low"]}},
       {"from_name": "volume", "to_name": "audio", "type": "choices", "value": {"choices": ["quiet"]}},
       {"from_name": "emotion", "to_name": "audio", "type": "taxonomy",
        "value": {"taxonomy": [["sadness", "sad"], ["low-energy", "tired"]]}}]}""")
    rec = parse_annotation(a)
    assert rec == LabelRecord("slow", "low", "quiet", emotion=("sad", "tired"), annotator=1,
                              annotation_id=1, task_id=1, lead_time=12.5)


def test_round_trip_with_every_field():
    tax = load_taxonomy()
    rec = LabelRecord("fast", "variable", "loud", emotion=("happy", "excited"), voice=("husky", "shrill"),
                      other=("giggly", "sing song"), annotator=4, annotation_id=9, task_id=2, lead_time=30.0)
    assert parse_annotation(to_annotation(rec, tax), tax) == rec
    paths = next(r for r in to_result(rec) if r["from_name"] == "voice")["value"]["taxonomy"]
    assert paths == [[tax["husky"].family, "husky"], [tax["shrill"].family, "shrill"]]


def test_other_words_are_split_normalised_and_deduplicated():
    other = {"from_name": "other", "to_name": "audio", "type": "textarea",
             "value": {"text": ["Giggly,  Sing   song ;", "giggly\nwry"]}}
    assert parse_annotation(ann(other)).other == ("giggly", "sing song", "wry")


def test_completed_by_may_be_a_user_object():
    a = ann()
    a["completed_by"] = {"id": 42, "email": "x@example.com"}
    assert parse_annotation(a).annotator == 42


def test_unknown_choice_names_field_and_value():
    err = problems(ann(choice("pace", "superfast"), drop=("pace",)))
    assert [(p.field, p.value) for p in err.problems] == [("pace", "superfast")]
    assert "pace" in str(err) and "superfast" in str(err) and "annotation 7" in str(err)


def test_word_outside_the_pool():
    err = problems(ann(taxo("emotion", ["joy", "not-an-emotion"])))
    assert [(p.field, p.value) for p in err.problems] == [("emotion", "not-an-emotion")]


def test_family_that_does_not_own_the_word():
    err = problems(ann(taxo("emotion", ["anger", "happy"])))
    assert err.problems[0].field == "emotion"
    assert "belongs to family 'joy'" in err.problems[0].message


def test_voice_word_in_the_emotion_control():
    tax = load_taxonomy()
    err = problems(ann(taxo("emotion", [tax["husky"].family, "husky"])))
    assert "not a word of the emotion pool" in str(err)


def test_family_alone_is_not_a_word():
    err = problems(ann(taxo("emotion", ["joy"])))
    assert "family alone" in str(err)


@pytest.mark.parametrize("extra", [
    [choice("pace", "slow", "fast")],
    [choice("pace", "fast")],
])
def test_two_pace_values(extra):
    err = problems(ann(*extra, drop=("pace",) if len(extra[0]["value"]["choices"]) > 1 else ()))
    assert any(p.field == "pace" and "single choice" in p.message for p in err.problems)


def test_missing_required_and_several_problems_reported_together():
    err = problems(ann(taxo("voice", ["texture", "nope"]), drop=("volume",)))
    fields = {p.field for p in err.problems}
    assert fields == {"volume", "voice"}
    assert "volume: required, missing" in str(err)


@pytest.mark.parametrize("bad, field", [
    ({"from_name": "mood", "to_name": "audio", "type": "choices", "value": {"choices": ["x"]}}, "mood"),
    ({"from_name": "pace", "to_name": "audio", "type": "labels", "value": {"labels": ["slow"]}}, "pace"),
    ({"from_name": "emotion", "to_name": "text", "type": "taxonomy", "value": {"taxonomy": [["joy", "happy"]]}}, "emotion"),
    ({"from_name": "emotion", "to_name": "audio", "type": "taxonomy", "value": {"taxonomy": "happy"}}, "emotion"),
    ("not an object", "result"),
])
def test_malformed_results(bad, field):
    assert field in {p.field for p in problems(ann(bad)).problems}


def test_result_must_be_a_list():
    assert problems({"id": 1, "result": {"pace": "slow"}}).problems[0].field == "result"
