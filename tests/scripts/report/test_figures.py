"""The pools report (scripts/report/figures.py): figures computed by hand on a tiny fixed dataset, the
libraries' own values (krippendorff, crowd-kit), the report's shape, ties, an empty pool and the
bootstrap. Also the synthetic dataset (scripts/bench/synthetic.py) and the numpy Dawid-Skene."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from label_config.records import LabelRecord
from scripts.bench.synthetic import synthetic_clesc_rows, synthetic_dataset
from scripts.pools.dataset import Annotation, Dataset
from scripts.pools.sources import from_clesc_rows
from scripts.report.figures import Rate, build_report
from scripts.stats.dawid_skene import DawidSkene

# --- the tiny dataset: 4 clips x 3 experts (e1..e3) + 3 crowd (t1..t3) -------------------------
# pitch and volume are "medium" for everybody (one value: alpha undefined -> None).
#            pace                       emotion words                          lead times
EXPERT = {
    "c1": (("fast", "fast", "fast"),    (("happy",), ("happy",), ("joyful",)),  (60, 60, 60)),
    "c2": (("slow", "slow", "normal"),  (("sad",), ("sad",), ("sad",)),         (60, 60, 60)),
    "c3": (("normal", "fast", "slow"),  (("angry",), ("calm",), ("angry",)),    (60, 60, 60)),
    "c4": (("slow", "slow", "slow"),    ((), (), ()),                           (60, 60, 60)),
}
CROWD = {
    "c1": (("fast", "fast", "normal"),  (("happy",), ("cheerful",), ("happy",)), (10, 20, 30)),
    "c2": (("normal", "normal", "slow"), (("sad",), ("angry",), ("sad",)),       (10, 20, 30)),
    "c3": (("fast", "fast", "fast"),    (("calm",), ("calm",), ("calm",)),      (10, 20, 30)),
    "c4": (("slow", "normal", "fast"),  (("sad",), (), ()),                     (10, 20, 30)),
}
# crowd extras: t1 adds the voice word "breathy" on c1; t2 writes the free word "mumbly" on c4.
# the judge (as if from Label Studio) rejected t2 on c2 (emotion_outlier) and t2 on c4 (empty_description).
REJECTED = {("c2", "t2"): ("emotion_outlier",), ("c4", "t2"): ("empty_description",)}


def tiny_dataset(pools=("expert", "crowd")) -> Dataset:
    ds = Dataset(source="tiny", judged=True)
    for clip in ("c1", "c2", "c3", "c4"):
        ds.clip(clip).status["crowd"] = "needs_review" if clip in ("c2", "c4") else "accepted"
    for pool, table, workers in (("expert", EXPERT, ("e1", "e2", "e3")), ("crowd", CROWD, ("t1", "t2", "t3"))):
        if pool not in pools:
            continue
        for clip, (paces, emotions, times) in table.items():
            for worker, pace, emotion, seconds in zip(workers, paces, emotions, times):
                record = LabelRecord(pace, "medium", "medium", emotion=emotion,
                                     voice=("breathy",) if (clip, worker) == ("c1", "t1") else (),
                                     other=("mumbly",) if (clip, worker) == ("c4", "t2") else ())
                reasons = REJECTED.get((clip, worker), ())
                ds.annotations.append(Annotation(pool, clip, worker, record, verdict="reject" if reasons else "accept",
                                                 reasons=reasons, lead_time=float(seconds)))
    return ds


RATES = {"expert": Rate(per_hour=30.0), "crowd": Rate(per_annotation=0.1)}


@pytest.fixture(scope="module")
def report():
    return build_report(tiny_dataset(), rates=RATES, bootstrap=300, seed=1)


def test_pace_agreement_by_hand(report):
    expert = report["expert"]["agreement"]["pace"]
    # all agree: c1, c4 of 4 -> 50 %; a strict majority: c1, c2, c4 -> 75 %
    assert expert["percent_all_agree"] == 50.0 and expert["percent_majority"] == 75.0
    # Fleiss: counts (slow, normal, fast) c1 [0,0,3] c2 [2,1,0] c3 [1,1,1] c4 [3,0,0]
    # P_i = (sum n^2 - 3) / 6 = 1, 1/3, 0, 1 -> P_bar = 7/12; p = 1/2, 1/6, 1/3 -> P_e = 7/18
    # kappa = (7/12 - 7/18) / (1 - 7/18) = 7/22
    assert expert["fleiss_kappa"] == pytest.approx(7 / 22)
    # alpha: n = 12, sum_c o_cc = 3 + 1 + 0 + 3 = 7, n_c = 6, 2, 4 -> n^2 - sum n_c^2 = 144 - 56 = 88
    # alpha = 1 - 11 * (12 - 7) / 88 = 3/8
    assert expert["krippendorff_alpha"] == pytest.approx(3 / 8)
    assert expert["distribution"] == {"slow": 6, "normal": 2, "fast": 4, "variable": 0}
    assert expert["clips"] == 4
    crowd = report["crowd"]["agreement"]["pace"]
    assert crowd["percent_all_agree"] == 25.0 and crowd["percent_majority"] == 75.0  # c3; c1, c2, c3


def test_one_value_attribute_gives_none_not_nan(report):
    pitch = report["expert"]["agreement"]["pitch"]
    assert pitch["percent_all_agree"] == 100.0
    assert pitch["fleiss_kappa"] is None and pitch["krippendorff_alpha"] is None
    assert pitch["ci"]["krippendorff_alpha"] == [None, None]


def test_alpha_matches_the_krippendorff_library():
    krippendorff = pytest.importorskip("krippendorff")
    ds = synthetic_dataset(60, seed=4)
    report = build_report(ds, bootstrap=0)
    for pool in ("expert", "crowd"):
        for name, values in (("pace", ("slow", "normal", "fast", "variable")),
                             ("volume", ("quiet", "medium", "loud", "variable"))):
            workers = sorted({a.worker for a in ds.annotations if a.pool == pool})
            clips = list(ds.clips)
            data = np.full((len(workers), len(clips)), np.nan)
            for a in ds.annotations:
                if a.pool == pool:
                    data[workers.index(a.worker), clips.index(a.clip)] = values.index(getattr(a.record, name))
            expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
            assert report[pool]["agreement"][name]["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)


def test_emotion_set_alpha_by_hand_and_with_the_library(report):
    krippendorff = pytest.importorskip("krippendorff")
    emotion = report["expert"]["agreement"]["emotion"]
    # all sets are singletons or empty, so MASI is the nominal distance over h, j, s, a, c, {}:
    # sum o_cc = c1 1 + c2 3 + c3 1 + c4 3 = 8; n_c = 2,1,3,2,1,3 -> 144 - 28 = 116
    # alpha = 1 - 11 * (12 - 8) / 116 = 18/29
    assert emotion["krippendorff_alpha"] == pytest.approx(18 / 29)
    values = ["happy", "joyful", "sad", "angry", "calm", ""]
    data = np.array([[values.index(w[0] if w else "") for w in EXPERT[c][1]] for c in EXPERT], dtype=float).T
    assert emotion["krippendorff_alpha"] == pytest.approx(krippendorff.alpha(reliability_data=data,
                                                                             level_of_measurement="nominal"))
    assert emotion["distance"] == "masi" and emotion["expected_disagreement"] == "exact"
    assert emotion["percent_identical_sets"] == 50.0  # c2, c4


def test_consensus_ties_and_expert_vs_crowd_by_hand(report):
    # crowd pace majorities: c1 fast, c2 normal, c3 fast; c4 is a 1-1-1 tie
    assert report["crowd"]["consensus"]["pace"] == {"majority": 3, "ties": 1, "clips": 4}
    # expert: c1 fast, c2 slow, c4 slow; c3 a tie
    assert report["expert"]["consensus"]["pace"] == {"majority": 3, "ties": 1, "clips": 4}
    pace = report["comparison"]["consensus_agreement"]["pace"]
    # both pools have a majority on c1 (fast, fast) and c2 (slow, normal): 1 of 2 agree
    assert pace["clips"] == 2 and pace["agreement"] == 0.5
    assert pace["confusion"]["labels"] == ["slow", "normal", "fast", "variable"]
    assert pace["confusion"]["expert_by_crowd"] == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert report["comparison"]["consensus_agreement"]["pitch"]["agreement"] == 1.0


def test_majorities_match_crowd_kit_where_there_is_no_tie():
    from crowdkit.aggregation import MajorityVote

    ds = tiny_dataset()
    rows = [(a.clip, a.worker, a.record.pace) for a in ds.annotations if a.pool == "crowd"]
    by_crowd_kit = MajorityVote().fit_predict(pd.DataFrame(rows, columns=["task", "worker", "label"]))
    # c1 fast, c2 normal, c3 fast: the same; c4 (1-1-1) crowd-kit breaks by order, the report calls it a tie
    assert [by_crowd_kit[c] for c in ("c1", "c2", "c3")] == ["fast", "normal", "fast"]
    workers = {w["worker"]: w for w in build_report(ds, bootstrap=0)["crowd"]["workers"]}
    assert workers["t3"]["agreement_with_consensus"] == pytest.approx(9 / 11)


def test_word_overlap_by_hand(report):
    emotion = report["comparison"]["emotion_overlap"]
    # per clip, the union of each pool's words: c1 {happy, joyful} vs {happy, cheerful}: 1/3;
    # c2 {sad} vs {sad, angry}: 1/2; c3 {angry, calm} vs {calm}: 1/2; c4: no expert word, left out
    assert emotion["clips"] == 3
    assert emotion["jaccard_words"]["mean"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    # concepts: joyful and cheerful are happy's synonyms: c1 1; c2 1/2; c3 1/2
    assert emotion["jaccard_concepts"]["mean"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert report["comparison"]["voice_overlap"]["clips"] == 0  # only the crowd used a voice word
    assert report["comparison"]["voice_overlap"]["jaccard_words"]["mean"] is None


def test_vocabulary_by_hand(report):
    expert, crowd = report["expert"]["vocabulary"], report["crowd"]["vocabulary"]
    # expert: happy 2, joyful 1, sad 3, angry 2, calm 1 -> 5 distinct, 9 words in 12 annotations
    assert expert["distinct_words"] == 5 and expert["words_per_annotation"] == 0.75
    assert expert["by_kind"]["emotion"]["top"][:2] == [["sad", 3], ["angry", 2]]  # ties alphabetical
    # crowd: 10 emotion words (happy, cheerful, sad, angry, calm), breathy, mumbly: 7 distinct, 12 words
    assert crowd["distinct_words"] == 7 and crowd["words_per_annotation"] == 1.0
    assert crowd["by_kind"]["voice"] == {"distinct_words": 1, "words_per_annotation": 1 / 12, "top": [["breathy", 1]]}
    assert crowd["by_kind"]["other"]["top"] == [["mumbly", 1]]
    assert crowd["top_words"][:2] == [["calm", 3], ["sad", 3]] and len(crowd["top_words"]) == 7
    ratios = report["comparison"]["ratios"]
    assert ratios["distinct_words"] == pytest.approx(5 / 7) and ratios["words_per_annotation"] == 0.75


def test_time_and_cost_by_hand(report):
    expert, crowd = report["expert"], report["crowd"]
    assert crowd["time"]["lead_time_seconds"] == {"mean": 20.0, "median": 20.0, "p10": 10.0, "p90": 30.0, "total": 240.0}
    assert sum(crowd["time"]["histogram"]["counts"]) == 12
    # expert: 12 x 60 s = 0.2 h at 30/h = 6.0; per annotation 0.5, per clip 1.5
    assert expert["cost"]["total"] == pytest.approx(6.0)
    assert expert["cost"]["per_annotation"] == pytest.approx(0.5) and expert["cost"]["per_clip"] == pytest.approx(1.5)
    # crowd: 12 x 0.1 = 1.2
    assert crowd["cost"]["total"] == pytest.approx(1.2) and crowd["cost"]["currency"] == "USD"
    ratios = report["comparison"]["ratios"]
    assert ratios["seconds_per_annotation"] == 3.0 and ratios["cost_per_annotation"] == pytest.approx(5.0)
    assert build_report(tiny_dataset(), bootstrap=0)["crowd"]["cost"]["total"] is None  # no rate: unknown


def test_judge_section(report):
    judge = report["crowd"]["judge"]
    assert judge["source"] == "label-studio"
    assert (judge["annotations_judged"], judge["rejected"]) == (12, 2)
    assert judge["rejection_rate"] == pytest.approx(1 / 6)
    assert judge["by_reason"] == {"emotion_outlier": 1, "empty_description": 1}
    assert judge["task_status"] == {"accepted": 2, "needs_review": 2}
    assert judge["by_annotator"][0] == {"worker": "t2", "email": None, "annotations": 4, "rejected": 2, "rate": 0.5,
                                        "upheld": 0, "overturned": 0, "ranked": False}  # 4 annotations < 5
    assert report["expert"]["judge"]["rejected"] == 0


def test_workers_sorted_by_agreement_with_consensus(report):
    crowd = report["crowd"]["workers"]
    # t3: pace c1 normal (fast), c2 slow (normal), c3 fast (fast); c4 a tie: 1 of 3, + pitch, volume 8 of 8
    assert [w["worker"] for w in crowd] == ["t3", "t1", "t2"]
    assert crowd[0]["agreement_with_consensus"] == pytest.approx(9 / 11)
    assert crowd[2]["rejected"] == 2 and crowd[0]["annotations"] == 4
    assert set(crowd[0]["skill"]) == {"pace", "pitch", "volume"}


def test_report_shape_and_json(report):
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert {"source", "clips", "clips_in_both", "settings", "error_count", "errors", "expert", "crowd",
            "comparison"} <= set(report)
    assert report["clips"] == 4 and report["clips_in_both"] == 4
    assert report["settings"]["rates"]["expert"] == {"per_hour": 30.0, "per_annotation": None, "currency": "USD",
                                                     "per_hour_placeholder": False}
    for pool in ("expert", "crowd"):
        section = report[pool]
        assert {"clips", "annotations", "annotators", "agreement", "consensus", "vocabulary", "time", "cost",
                "judge", "workers"} <= set(section)
        for name in ("pace", "pitch", "volume"):
            assert set(section["agreement"][name]["ci"]) == {"percent_all_agree", "percent_majority", "fleiss_kappa",
                                                             "krippendorff_alpha"}
            assert set(section["workers"][0]["skill"]) == {"pace", "pitch", "volume"}
        for kind in ("emotion", "voice"):
            assert {"krippendorff_alpha", "ci", "distance", "percent_identical_sets"} <= set(section["agreement"][kind])
    comparison = report["comparison"]
    assert set(comparison["ratios"]) == {"distinct_words", "words_per_annotation", "seconds_per_annotation",
                                         "cost_per_annotation"}
    assert "skipped" in comparison["semantic_similarity"]


def test_similarity_gets_the_pools_texts():
    seen = {}

    def similarity(pairs):
        seen.update(pairs)
        return {"model": "fake", "clips": len(pairs)}

    report = build_report(tiny_dataset(), bootstrap=0, similarity=similarity)
    assert report["comparison"]["semantic_similarity"] == {"model": "fake", "clips": 4}
    # words once each, most given first: c1 expert happy x2, joyful; crowd happy x2, breathy, cheerful
    assert seen["c1"] == ("happy, joyful", "happy, breathy, cheerful")
    assert seen["c4"] == ("", "mumbly, sad")


def test_empty_pool_gives_none_without_crashing():
    ds = tiny_dataset(pools=("expert",))
    report = build_report(ds, bootstrap=50, rates=RATES)
    json.dumps(report, allow_nan=False)
    crowd = report["crowd"]
    assert crowd["annotations"] == 0 and crowd["workers"] == []
    assert crowd["agreement"]["pace"]["krippendorff_alpha"] is None
    assert crowd["agreement"]["pace"]["ci"]["fleiss_kappa"] == [None, None]
    assert crowd["vocabulary"]["words_per_annotation"] is None and crowd["time"]["lead_time_seconds"]["mean"] is None
    assert report["comparison"]["consensus_agreement"]["pace"] == {
        "clips": 0, "agreement": None, "ci": [None, None], "ci_method": "wilson",
        "confusion": {"labels": ["slow", "normal", "fast", "variable"], "expert_by_crowd": [[0] * 4] * 4}}
    assert report["comparison"]["ratios"]["distinct_words"] is None
    assert report["clips_in_both"] == 0
    assert report["expert"]["agreement"]["pace"]["krippendorff_alpha"] == pytest.approx(3 / 8)


def test_empty_dataset():
    report = build_report(Dataset(source="nothing"), bootstrap=10)
    json.dumps(report, allow_nan=False)
    assert report["clips"] == 0 and report["expert"]["agreement"]["emotion"]["krippendorff_alpha"] is None


def test_bootstrap_intervals_contain_the_estimate_and_are_deterministic():
    ds = synthetic_dataset(300, seed=2)
    report = build_report(ds, bootstrap=200, seed=5)
    for pool in ("expert", "crowd"):
        for name in ("pace", "pitch", "volume"):
            figures = report[pool]["agreement"][name]
            for key, (low, high) in figures["ci"].items():
                assert low < figures[key] < high or low == figures[key] == high, (pool, name, key)
        emotion = report[pool]["agreement"]["emotion"]
        low, high = emotion["ci"]["krippendorff_alpha"]
        assert low < emotion["krippendorff_alpha"] < high
    overlap = report["comparison"]["emotion_overlap"]["jaccard_concepts"]
    assert overlap["ci"][0] < overlap["mean"] < overlap["ci"][1]
    assert build_report(ds, bootstrap=200, seed=5) == report
    other = build_report(ds, bootstrap=200, seed=6)
    assert other["expert"]["agreement"]["pace"]["ci"] != report["expert"]["agreement"]["pace"]["ci"]
    assert other["expert"]["agreement"]["pace"]["krippendorff_alpha"] == report["expert"]["agreement"]["pace"]["krippendorff_alpha"]


def test_skill_matches_crowd_kit_dawid_skene():
    from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

    ds = synthetic_dataset(150, seed=3)
    rows = [(a.clip, a.worker, a.record.pace) for a in ds.annotations if a.pool == "crowd"]
    ours = DawidSkene().fit(rows)
    theirs = CrowdKitDawidSkene(100).fit(pd.DataFrame(rows, columns=["task", "worker", "label"]))
    assert len(ours.loss_history_) == len(theirs.loss_history_)
    assert ours.loss_history_[-1] == pytest.approx(theirs.loss_history_[-1], abs=1e-9)
    priors = theirs.priors_
    errors = theirs.errors_
    expected = {w: sum(priors[c] * errors.loc[(w, c), c] for c in priors.index if (w, c) in errors.index)
                for w in ours.worker_ids}
    assert ours.skills() == pytest.approx(expected, abs=1e-9)
    assert ours.labels() == theirs.labels_.to_dict()
    report = build_report(ds, bootstrap=0)
    assert {w["worker"]: w["skill"]["pace"] for w in report["crowd"]["workers"]} == pytest.approx(expected, abs=1e-9)
    # the synthetic skills grow with the worker number: the ranking recovers it roughly
    ranked = sorted(expected, key=expected.get)
    assert int(ranked[0][1:]) < int(ranked[-1][1:])


def test_synthetic_dataset_shape_and_pools():
    ds = synthetic_dataset(200, seed=0)
    assert len(ds.clips) == 200 and len(ds.annotations) == 1200
    assert synthetic_dataset(200, seed=0).annotations == ds.annotations
    for clip in list(ds.clips)[:20]:
        experts = {a.worker for a in ds.annotations if a.clip == clip and a.pool == "expert"}
        crowd = {a.worker for a in ds.annotations if a.clip == clip and a.pool == "crowd"}
        assert len(experts) == 3 and all(w.startswith("e") for w in experts)
        assert len(crowd) == 3 and all(w.startswith("t") for w in crowd)
    report = build_report(ds, bootstrap=0)
    expert, crowd = report["expert"], report["crowd"]
    assert expert["agreement"]["pace"]["krippendorff_alpha"] > crowd["agreement"]["pace"]["krippendorff_alpha"]
    assert expert["vocabulary"]["by_kind"]["other"]["words_per_annotation"] < crowd["vocabulary"]["by_kind"]["other"]["words_per_annotation"]
    assert expert["time"]["lead_time_seconds"]["median"] > crowd["time"]["lead_time_seconds"]["median"]


def test_synthetic_clesc_rows_import_back():
    rows = list(synthetic_clesc_rows(40, seed=1))
    assert set(rows[0]) == {"audio", "Crowd_Worker_1", "Crowd_Worker_2", "Crowd_Worker_3",
                            "Expert_1", "Expert_2", "Expert_3", "source_dataset"}
    imported = from_clesc_rows(rows)
    original = synthetic_dataset(40, seed=1)
    assert not imported.errors
    strip = lambda a: (a.pool, a.clip, a.worker, a.record.categorical(), a.record.emotion, a.record.voice, a.record.other)  # noqa: E731
    assert [strip(a) for a in imported.annotations] == [strip(a) for a in original.annotations]
    assert not math.isnan(build_report(imported, bootstrap=0)["crowd"]["agreement"]["pace"]["fleiss_kappa"])
