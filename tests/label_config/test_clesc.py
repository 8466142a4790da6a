"""The CLESC cell format (label_config.clesc): parsing free text to the pool, errors, round trips."""

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from label_config import ATTRIBUTES, WORD_KINDS, LabelRecord, load_taxonomy
from label_config.clesc import (
    CELL_COLUMNS,
    CELL_KEYS,
    COLUMNS,
    CellError,
    CellRecord,
    PoolMatcher,
    format_cell,
    parse_cell,
)

TAX = load_taxonomy()

# Words seen in the CLESC dataset's own rows (docs/platform-notes.md).
FACTS_EMOTION = ("sad, disappointed, displeased, frustrated, regretful, dismayed, guilty, serene, insecure, "
                 "determined, hurt, depressed, agonized, stimulated, passionate, gloomy, astonished").split(", ")
FACTS_VOICE = ("narrating, monotonous, husky, guttural, throaty, matter-of-fact, softly spoken, grating, tight, "
               "flat, taut, croaky, shrill, adenoidal, resonant, modulated, appealing, hoarse").split(", ")


def cell(**over):
    base = {"pace": "normal", "pitch": "low", "voice": "Husky", "volume": "quiet", "emotion": "Sad", "worker_id": "t1"}
    base.update(over)
    return repr(base)


def test_columns_and_keys():
    assert CELL_COLUMNS == ("Crowd_Worker_1", "Crowd_Worker_2", "Crowd_Worker_3", "Expert_1", "Expert_2", "Expert_3")
    assert COLUMNS == ("audio", *CELL_COLUMNS, "source_dataset")
    assert CELL_KEYS == ("pace", "pitch", "voice", "volume", "emotion", "worker_id")
    assert set(CELL_KEYS) == {*ATTRIBUTES, *WORD_KINDS, "worker_id"}


def test_facts_words_parse_to_the_pool_in_mixed_case_with_stray_commas():
    text = cell(emotion=", ".join(w.title() for w in FACTS_EMOTION) + ", ",
                voice=",".join(w.upper() for w in FACTS_VOICE) + " ,, ")
    rec = parse_cell(text, TAX).record
    assert rec.emotion == tuple(FACTS_EMOTION)
    assert rec.voice == tuple(FACTS_VOICE)
    assert rec.other == ()


def test_stray_commas_case_and_spaces():
    rec = parse_cell(cell(emotion="Hurt, depressed ", voice=" ,Softly  Spoken,,hoarse,"))
    assert rec.record.emotion == ("hurt", "depressed")
    assert rec.record.voice == ("softly spoken", "hoarse")
    assert rec.raw_emotion == "Hurt, depressed "
    assert rec.raw_voice == " ,Softly  Spoken,,hoarse,"


def test_categorical_values_any_case():
    rec = parse_cell(cell(pace=" FAST", pitch="Variable", volume="Loud ")).record
    assert (rec.pace, rec.pitch, rec.volume) == ("fast", "variable", "loud")


@pytest.mark.parametrize("written, pool", [
    ("softly-spoken", "softly spoken"),
    ("softly_spoken", "softly spoken"),
    ("Matter of fact", "matter-of-fact"),
    ("high pitched", "high-pitched"),
    ("'Hoarse.'", "hoarse"),
])
def test_spelling_variants(written, pool):
    rec = parse_cell(cell(voice=written)).record
    assert rec.voice == (pool,) and rec.other == ()


def test_unknown_words_kept_in_other_normalised_once():
    rec = parse_cell(cell(emotion="Sad, Mumbly, kind of  BORED-ish, mumbly", voice="Robotic, husky")).record
    assert rec.emotion == ("sad",)
    assert rec.voice == ("husky",)
    assert rec.other == ("mumbly", "kind of bored-ish", "robotic")


def test_pool_word_lands_under_its_own_kind():
    # 'hoarse' is a voice word written in the emotion field; 'sad' an emotion word in the voice field.
    rec = parse_cell(cell(emotion="hoarse", voice="sad, sad")).record
    assert rec.emotion == ("sad",) and rec.voice == ("hoarse",) and rec.other == ()


def test_empty_word_fields():
    rec = parse_cell(cell(emotion="", voice=" , ")).record
    assert rec.emotion == rec.voice == rec.other == ()


def test_matcher_hook_is_asked_about_unmatched_normalised_words_only():
    asked = []

    def hook(word):
        asked.append(word)
        return {"sorrowful-ish": "sad"}.get(word)

    rec = parse_cell(cell(emotion="Sorrowful-ISH, hurt, zzz"), matcher=hook).record
    assert rec.emotion == ("sad", "hurt") and rec.other == ("zzz",)
    assert asked == ["sorrowful-ish", "zzz"]


def test_matcher_hook_answer_must_be_a_pool_word():
    with pytest.raises(ValueError, match="'not-a-word'"):
        parse_cell(cell(emotion="zzz"), matcher=lambda w: "not-a-word")


def test_pool_matcher_direct():
    m = PoolMatcher(TAX)
    assert m("calm") == "calm" and m(" At_Ease ") == "at ease" and m("nonsense") is None


@pytest.mark.parametrize("text, fragment", [
    (None, "expected a string"),
    (float("nan"), "expected a string"),
    ("", "not a Python dict literal"),
    ("{pace: 'fast'}", "not a Python dict literal"),
    ("__import__('os').system('true')", "not a Python dict literal"),
    ("['fast', 'low']", "expected a dict, got list"),
    ("{'pace': 'fast', 'pitch': 'low'}", "missing key(s) voice, volume, emotion, worker_id"),
    (cell(mood="sad"), "unknown key(s) 'mood'"),
    (cell(pace="brisk"), "pace 'brisk' is not one of slow, normal, fast, variable"),
    (cell(pitch="squeaky"), "pitch 'squeaky' is not one of low, medium, high, variable"),
    (cell(volume=3), "volume 3 is not one of quiet, medium, loud, variable"),
    (cell(emotion=["sad"]), "emotion must be comma-separated text, got list"),
    (cell(worker_id=" "), "worker_id must be a non-empty string"),
])
def test_bad_cells_name_the_problem(text, fragment):
    with pytest.raises(CellError) as e:
        parse_cell(text)
    assert fragment in str(e.value)
    assert isinstance(e.value, ValueError)


def test_a_cell_wraps_a_label_record():
    parsed = parse_cell(cell(emotion="Sad, Mumbly", voice="husky"))
    assert parsed.record == LabelRecord("normal", "low", "quiet", emotion=("sad",), voice=("husky",), other=("mumbly",))


def test_format_cell_is_clesc_shaped():
    rec = LabelRecord("fast", "high", "loud", emotion=("happy", "excited"), voice=("shrill",), other=("squeaky",))
    text = format_cell(rec, "t3")
    assert text.startswith("{'pace': 'fast', ")
    data = ast.literal_eval(text)
    assert list(data) == list(CELL_KEYS)
    assert data == {"pace": "fast", "pitch": "high", "voice": "shrill", "volume": "loud",
                    "emotion": "happy, excited, squeaky", "worker_id": "t3"}
    with pytest.raises(ValueError):
        format_cell(rec, "")


def test_round_trip_of_a_messy_cell():
    first = parse_cell(cell(emotion="Hurt,, depressed , Mumbly", voice="softly-spoken, HOARSE", worker_id="e2"))
    again = parse_cell(format_cell(first.record, first.worker_id))
    assert again == first
    assert again.raw_emotion == "hurt, depressed, mumbly"


_OTHER_WORDS = st.from_regex(r"[a-z]{3,8}( [a-z]{3,8})?", fullmatch=True).filter(lambda w: PoolMatcher(TAX)(w) is None)


def _pool(kind):
    return st.lists(st.sampled_from([w.word for w in TAX.words_of(kind)]), max_size=5, unique=True).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    pace=st.sampled_from(ATTRIBUTES["pace"].values),
    pitch=st.sampled_from(ATTRIBUTES["pitch"].values),
    volume=st.sampled_from(ATTRIBUTES["volume"].values),
    emotion=_pool("emotion"),
    voice=_pool("voice"),
    other=st.lists(_OTHER_WORDS, max_size=3, unique=True).map(tuple),
    worker=st.from_regex(r"[te][0-9]{1,2}", fullmatch=True),
)
def test_round_trip_format_then_parse_gives_the_same_record(pace, pitch, volume, emotion, voice, other, worker):
    rec = LabelRecord(pace, pitch, volume, emotion=emotion, voice=voice, other=other)
    back = parse_cell(format_cell(rec, worker), TAX)
    assert back == CellRecord(worker, LabelRecord(pace, pitch, volume, emotion, voice, other))
    assert back.record == rec


def test_middle_value_spellings_map_to_the_schema_value():
    parsed = parse_cell(cell(pace="Medium", pitch="normal", volume="NORMAL")).record
    assert (parsed.pace, parsed.pitch, parsed.volume) == ("normal", "medium", "medium")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=6, max_size=6))
def test_the_fast_cell_reader_reads_what_literal_eval_reads(values):
    from label_config.clesc import _read_dict

    text = repr(dict(zip(CELL_KEYS, values)))
    assert _read_dict(text) == ast.literal_eval(text)
