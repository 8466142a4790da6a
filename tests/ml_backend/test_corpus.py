"""The ML backend's rules on REAL recorded speech: the development corpus (scripts/local/corpus.py,
built from Debian packages on first use and cached in ~/.cache/clesc/corpus-v<N>), HELD-OUT part only.

The floors below are the figures the rules reach now (scripts/bench/features.py prints them); where
that is short of issue 16's target the target is named next to it (see the README's ML backend section).
"""

from __future__ import annotations

import pytest

from label_config.schema import ATTRIBUTES
from ml_backend.labels import DEFAULT_CALIBRATION, decide
from ml_backend.model import prediction
from scripts.bench import features
from scripts.local import corpus

HELD_OUT_SPEAKERS = {"fr-ca-june", "it-it-carlo", "fr-armelle", "codec2-morig", "codec2-mmt1", "codec2-vk5qi",
                     "codec2-big_dog", "codec2-g3plx"}
ORDERED_FLOOR = {  # of 20 base clips; issue 16's target: 19 each
    "unknown": {"pace": 19, "pitch": 12, "volume": 20},
    "known": {"pace": 19, "pitch": 18, "volume": 20},
}
VARIABLE_FLOOR = {"pace": 2, "pitch": 16, "volume": 19}  # of 20 splices; target 18 each (pace, pitch: not met)
UNCHANGED_VARIABLE_CEILING = 2  # of 60: the target
SWEEP_FLOOR = {"pace": 5, "pitch": 6, "volume": 6}  # of 6 triples; pace misses one (README)
SWEEP_VARIABLE_CEILING = 3  # of 54 unchanged espeak clips: one sentence's pause reads as a change of pace


@pytest.fixture(scope="module")
def rows():
    return corpus.load()


@pytest.fixture(scope="module")
def held(rows):
    return [r for r in rows if r["split"] == "heldout"]


@pytest.fixture(scope="module")
def measures(rows, held):
    return features.measure_rows(held + [r for r in rows if r["split"] in ("espeak", "voice")])


def clean(rows):
    return [r for r in rows if r["degradation"] == "clean"]


def test_the_corpus_is_real_speech_split_by_speaker_without_the_reserved_packages(rows):
    assert not [r for r in rows if r["source"].startswith(corpus.RESERVED)]
    speakers = {split: {r["speaker"] for r in rows if r["split"] == split} for split in ("dev", "heldout")}
    assert speakers["heldout"] == HELD_OUT_SPEAKERS
    assert not speakers["dev"] & speakers["heldout"]
    held = [r for r in rows if r["split"] == "heldout" and r["variant"] != "voice"]
    assert {r["variant"] for r in held} == set(corpus.VARIANTS)
    assert {r["degradation"] for r in held} == {"clean", *corpus.DEGRADATIONS}
    assert len({r["base"] for r in held}) == 20


@pytest.mark.parametrize("speaker", ["unknown", "known"])
def test_a_raised_voice_faster_tempo_or_more_gain_moves_the_label_up(held, measures, speaker):
    part = clean(held)
    checks = corpus.checks(part, features.labels_only(features.predictions(part, measures,
                                                                           with_speaker=speaker == "known")))
    got = {a: checks[a]["ordered"] for a in ATTRIBUTES}
    assert all(got[a] >= ORDERED_FLOOR[speaker][a] for a in ATTRIBUTES), got


def test_variable_is_a_change_between_the_parts_of_the_clip(held, measures):
    part = clean(held)
    checks = corpus.checks(part, features.labels_only(features.predictions(part, measures, with_speaker=True)))
    found = {a: checks[a]["variable"] for a in ATTRIBUTES}
    assert all(found[a] >= VARIABLE_FLOOR[a] for a in ATTRIBUTES), found
    unchanged = sum(checks[a]["unchanged_variable"] for a in ATTRIBUTES)
    assert unchanged <= UNCHANGED_VARIABLE_CEILING, unchanged


def test_the_espeak_sweep_stays_in_order(rows, measures):
    sweep = [r for r in rows if r["split"] == "espeak"]
    checks = corpus.checks(sweep, features.labels_only(features.predictions(sweep, measures)))
    assert all(checks[a]["triples"] == 6 and checks[a]["ordered"] >= SWEEP_FLOOR[a] for a in ATTRIBUTES), checks
    assert sum(checks[a]["unchanged_variable"] for a in ATTRIBUTES) <= SWEEP_VARIABLE_CEILING, checks


def test_scores_are_calibrated_and_low_scores_are_left_empty(held, measures):
    rows, decided = features.all_decisions(held, measures)
    table = {name: (n, share) for name, n, share in features.reliability(rows, decided)}
    n, share = table["score >= 0.8"]
    assert n >= 500 and share >= 0.9, table  # issue 16's target
    assert n < table["all"][0]  # a minimum score of 0.8 would leave some pre-fills empty
    # abstention: the backend's prediction leaves out exactly the attributes scored under the minimum
    for r in clean(held)[:40]:
        m = measures[r["file"]]
        scores = {a: d.score for a, d in decide(m, DEFAULT_CALIBRATION).items()}
        for min_score in (0.0, 0.8, 0.95):
            kept = {x["from_name"] for x in prediction(m, DEFAULT_CALIBRATION, None, min_score)["result"]
                    if x["type"] == "choices"}
            assert kept == {a for a, s in scores.items() if s >= min_score}


def test_voice_words_are_suggested_where_the_voice_shows_them(rows, measures):
    counts = features.voice_word_counts(features.voice_rows(rows), measures, min_score=0.5)
    assert counts["whispering"]["hits"] == counts["whispering"]["positives"] and counts["whispering"]["false"] == 0
    assert counts["monotonous"]["hits"] >= 18 and counts["monotonous"]["false"] <= 5, counts["monotonous"]
    assert counts["croaky"]["hits"] == counts["croaky"]["positives"] and counts["croaky"]["false"] == 0
    # and hardly ever of anything else: 2 of the 454 held-out clips of every variant and espeak-ng sweep clips (README)
    others = [r for r in rows if r["split"] in ("heldout", "espeak") and r["variant"] != "voice"]
    assert features.said_of(others, measures, "croaky", 0.5) <= 3


def test_fit_on_50_consensus_labels_improves_the_remaining_clips(held, measures):
    part = [r for r in clean(held) if r["variant"] != "voice"]
    accuracy = features.simulate_fit(part, measures, seeds=3)
    assert all(after >= before - 0.02 for before, after in accuracy.values()), accuracy
    assert accuracy["pace"][1] > accuracy["pace"][0] and accuracy["pitch"][1] > accuracy["pitch"][0], accuracy
    after = {a: v[1] for a, v in accuracy.items()}
    # issue 16's target: >= 0.90 each; pace and pitch are short of it (README: 0.75, 0.89 over these splits)
    assert after["volume"] >= 0.9 and after["pitch"] >= 0.85 and after["pace"] >= 0.72, after
