import itertools

import pytest

from label_config import ATTRIBUTES, TaxonomyError, load_taxonomy
from label_config.taxonomy import WORD_RE, parse_taxonomy

CLESC_EMOTION = ("sad disappointed displeased frustrated regretful dismayed guilty serene insecure determined "
                 "hurt depressed agonized stimulated passionate gloomy astonished").split()
CLESC_VOICE = ["narrating", "monotonous", "husky", "guttural", "throaty", "matter-of-fact", "softly spoken",
               "grating", "tight", "flat", "taut", "croaky", "shrill", "adenoidal", "resonant", "modulated",
               "appealing", "hoarse"]


@pytest.fixture(scope="module")
def tax():
    return load_taxonomy()


def test_pool_sizes_and_families(tax):
    assert len(tax.words_of("emotion")) >= 200
    assert len(tax.words_of("voice")) >= 40
    families = {f.name for f in tax.families_of("emotion")}
    assert {"joy", "calm", "sadness", "anger", "fear", "surprise", "disgust", "confidence",
            "tenderness", "low-energy"} <= families
    assert all(f.hint for f in tax.families)


def test_words_lowercase_and_unique_across_kinds(tax):
    words = [w for f in tax.families for w in f.words]
    assert len(words) == len(set(words)) == len(tax)
    assert all(WORD_RE.match(w) and w == w.lower() for w in words)


def test_clesc_words_are_in_the_pool(tax):
    assert [w for w in CLESC_EMOTION if w not in tax or tax[w].kind != "emotion"] == []
    assert [w for w in CLESC_VOICE if w not in tax or tax[w].kind != "voice"] == []


def test_valence_arousal_in_range(tax):
    for w in tax.values():
        assert -1 <= w.valence <= 1 and -1 <= w.arousal <= 1, w


def test_opposes_symmetric_and_meaningful(tax):
    pairs = 0
    for w in tax.values():
        for other in w.opposes:
            pairs += 1
            assert w.word in tax[other].opposes, (w.word, other)
            assert tax[other].family != w.family, (w.word, other)
            if w.kind == tax[other].kind == "emotion":
                a, b = w, tax[other]
                assert (a.valence * b.valence < 0 and min(abs(a.valence), abs(b.valence)) >= 0.3) or (
                    a.arousal * b.arousal < 0 and min(abs(a.arousal), abs(b.arousal)) >= 0.3
                ), f"{a.word} vs {b.word} do not differ in valence or arousal"
    assert pairs >= 100
    assert "agitated" in tax["calm"].opposes


def test_implies_are_strict_subsets_of_valid_values(tax):
    implying = [w for w in tax.values() if w.implies]
    assert len(implying) >= 10
    for w in implying:
        for attr, allowed in w.implies.items():
            assert set(allowed) < set(ATTRIBUTES[attr].values), (w.word, attr, allowed)
    assert tax["whispering"].implies["volume"] == ("quiet",)
    assert "variable" not in tax["monotonous"].implies["pitch"]


def test_contract_shape(tax):
    contract = tax.to_contract()
    assert set(contract) == {"emotion", "voice"}
    for kind, words in contract.items():
        for w in words:
            assert set(w) == {"word", "family", "valence", "arousal", "opposes", "implies"}
            assert tax[w["word"]].kind == kind


GOOD = """
emotion:
  joy: {hint: h, words: {happy: {valence: 0.8, arousal: 0.5, opposes: [sad]}}}
  sadness: {hint: h, words: {sad: {valence: -0.7, arousal: -0.4}}}
voice:
  delivery: {hint: h, words: {whispering: {valence: 0, arousal: -0.3, implies: {volume: [quiet]}}}}
"""


def test_small_file_loads_and_symmetrises():
    t = parse_taxonomy(GOOD)
    assert t["sad"].opposes == {"happy"}
    assert t["whispering"].implies == {"volume": ("quiet",)}


@pytest.mark.parametrize("change, message", [
    (("opposes: [sad]", "opposes: [glad]"), "unknown word 'glad'"),
    (("valence: 0.8", "valence: 1.8"), "valence must be a number in [-1, 1]"),
    (("volume: [quiet]", "volume: [whisper]"), "values must be some of quiet, medium, loud, variable"),
    (("volume: [quiet]", "volume: [quiet, medium, loud, variable]"), "constrains nothing"),
    (("implies: {volume", "implies: {tone"), "unknown attribute 'tone'"),
    (("{sad: {valence: -0.7", "{happy: {valence: -0.7"), "appears twice"),
    (("sad: {valence: -0.7, arousal: -0.4}", "sad: {valence: -0.7, arousal: -0.4}, Sad: {valence: 0, arousal: 0}"),
     "must be lowercase"),
    (("whispering: {valence: 0,", "whispering: {valence: 0, valence: 1,"), "written twice"),
])
def test_broken_files_are_refused_with_the_word_named(change, message):
    with pytest.raises(TaxonomyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_taxonomy(GOOD.replace(*change))


def test_a_file_that_is_not_utf8_or_cannot_be_read_is_a_clear_error(tmp_path):
    latin1 = tmp_path / "taxonomy.yaml"
    latin1.write_bytes(GOOD.replace("whispering", "chuchot\u00e9").encode("latin-1"))
    with pytest.raises(TaxonomyError, match=r"taxonomy.yaml: not UTF-8 text \(byte \d+\)"):
        load_taxonomy(latin1)
    with pytest.raises(TaxonomyError, match="cannot be read"):
        load_taxonomy(tmp_path)  # a folder


def test_no_word_opposes_itself_even_if_written(tax):
    for a, b in itertools.islice(((w, o) for w in tax.values() for o in w.opposes), 1000):
        assert a.word != b
