"""Agreement statistics (scripts/stats/agreement.py): hand-computed values, the `krippendorff` library,
Fleiss' textbook example, MASI, bootstrap and ties."""

import math
import time

import numpy as np
import pytest

from scripts.stats.agreement import (
    alpha_nominal_sums,
    alpha_sets_sums,
    bootstrap_ci,
    code_rows,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    fleiss_kappa_sums,
    jaccard_distance,
    krippendorff_alpha,
    krippendorff_alpha_nominal,
    krippendorff_alpha_sets,
    majority_vote,
    masi_distance,
    percent_agreement,
    percent_agreement_sums,
    task_sums_ci,
)


def rows_of(tasks):
    """{task: [label, ...]} -> tidy rows, workers w0, w1, ... within each task."""
    return [(t, f"w{i}", y) for t, labels in tasks.items() for i, y in enumerate(labels)]


def matrix_to_rows(data):
    """coders x units matrix (NaN = missing), as the krippendorff library takes it -> rows."""
    return [(u, c, data[c, u]) for c in range(data.shape[0]) for u in range(data.shape[1]) if not np.isnan(data[c, u])]


# --- percent agreement, majority vote ---------------------------------------------------------

def test_percent_agreement_by_hand():
    rows = rows_of({
        1: ["a", "a", "a"],  # all agree, majority
        2: ["a", "a", "b"],  # majority (2 of 3 > 1.5)
        3: ["a", "b", "c"],  # neither
        4: ["a", "b"],       # neither: 1 of 2 is not more than half
        5: ["a"],            # one label: not counted
    })
    # 4 tasks counted: all agree 1/4 = 25 %, majority 2/4 = 50 %
    assert percent_agreement(rows) == {"percent_all_agree": 25.0, "percent_majority": 50.0, "tasks": 4}


def test_percent_agreement_ignores_missing_and_handles_nothing():
    assert percent_agreement([(1, "w", None), (1, "v", "a")])["tasks"] == 0
    assert math.isnan(percent_agreement([])["percent_majority"])


def test_majority_vote_reports_ties_as_none_whatever_the_order():
    tasks = {1: ["a", "a", "b"], 2: ["a", "b", "c"], 3: ["c", "b", "a"], 4: ["x"], 5: ["a", "b"], 6: ["b", "b", "a", "a"]}
    assert majority_vote(rows_of(tasks)) == {1: "a", 2: None, 3: None, 4: "x", 5: None, 6: None}
    assert majority_vote(list(reversed(rows_of(tasks)))) == {6: None, 5: None, 4: "x", 3: None, 2: None, 1: "a"}


def test_rows_as_mappings():
    rows = [{"task": 1, "worker": "a", "label": "x"}, {"task": 1, "worker": "b", "label": "x"}]
    assert majority_vote(rows) == {1: "x"}
    with pytest.raises(ValueError, match="task, worker, label"):
        majority_vote([(1, "x")])


# --- Fleiss' kappa ----------------------------------------------------------------------------

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa", worked example): 10 subjects,
# 14 raters each, 5 categories. P_bar = 0.378, P_e = 0.213, kappa = 0.210.
WIKIPEDIA_FLEISS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def wikipedia_rows():
    return [(s, f"r{k}", c) for s, counts in enumerate(WIKIPEDIA_FLEISS)
            for c, n in enumerate(counts) for k in range(n)]


def test_fleiss_kappa_textbook_example():
    assert fleiss_kappa_from_counts(WIKIPEDIA_FLEISS) == pytest.approx(0.20993, abs=5e-5)
    assert fleiss_kappa(wikipedia_rows()) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_kappa_by_hand_and_uses_the_most_common_rater_count():
    # 3 tasks of 3 labels: [a,a,a] [a,a,b] [b,b,b]; one task of 2 labels is left out.
    # P_i = (sum n_ij^2 - 3) / 6: 1, (4+1-3)/6 = 1/3, 1 -> P_bar = 7/9
    # p_a = 5/9, p_b = 4/9 -> P_e = 41/81; kappa = (7/9 - 41/81) / (40/81) = (63-41)/40 = 0.55
    rows = rows_of({1: ["a", "a", "a"], 2: ["a", "a", "b"], 3: ["b", "b", "b"], 4: ["a", "b"]})
    assert fleiss_kappa(rows) == pytest.approx(0.55)


def test_fleiss_kappa_undefined_cases():
    assert math.isnan(fleiss_kappa(rows_of({1: ["a", "a"], 2: ["a", "a"]})))  # P_e = 1
    assert math.isnan(fleiss_kappa(rows_of({1: ["a"], 2: ["b"]})))  # nobody pairs
    with pytest.raises(ValueError):
        fleiss_kappa_from_counts([[1, 1], [2, 1]])


# --- Krippendorff's alpha ---------------------------------------------------------------------

def test_alpha_nominal_by_hand():
    # u1: a a a, u2: a b, u3: b b b; u4: a (one value, not pairable). n = 8 pairable values.
    # o_aa = 3*2/2 = 3, o_bb = 3, o_ab = o_ba = 1*1/1 = 1;  n_a = n_b = 4
    # D_o = 2/8;  D_e = (8^2 - 4^2 - 4^2) / (8*7) = 32/56;  alpha = 1 - (1/4)/(4/7) = 9/16
    rows = rows_of({"u1": "aaa", "u2": "ab", "u3": "bbb", "u4": "a"})
    assert krippendorff_alpha_nominal(rows) == pytest.approx(9 / 16, abs=1e-12)
    assert krippendorff_alpha(rows, lambda x, y: float(x != y)) == pytest.approx(9 / 16, abs=1e-12)


def test_alpha_undefined_when_one_value():
    assert math.isnan(krippendorff_alpha_nominal(rows_of({1: "aa", 2: "aaa"})))
    assert math.isnan(krippendorff_alpha_nominal([]))


@pytest.mark.parametrize("seed", range(8))
def test_alpha_nominal_matches_the_krippendorff_library(seed):
    krippendorff = pytest.importorskip("krippendorff")  # the test extra should pin krippendorff==0.9.0
    rng = np.random.default_rng(seed)
    coders, units, k = rng.integers(2, 7), rng.integers(5, 200), rng.integers(2, 6)
    data = rng.integers(0, k, size=(coders, units)).astype(float)
    data[rng.random(data.shape) < 0.3] = np.nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    rows = matrix_to_rows(data)
    assert krippendorff_alpha_nominal(rows) == pytest.approx(expected, abs=1e-9)
    assert krippendorff_alpha(rows, lambda x, y: float(x != y)) == pytest.approx(expected, abs=1e-9)
    # singleton sets: MASI and Jaccard are then the nominal distance
    sets = [(t, w, {y}) for t, w, y in rows]
    assert krippendorff_alpha_sets(sets) == pytest.approx(expected, abs=1e-9)
    assert krippendorff_alpha_sets(sets, "jaccard") == pytest.approx(expected, abs=1e-9)


def test_alpha_with_an_interval_distance_matches_the_library():
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(42)
    data = rng.integers(1, 6, size=(3, 60)).astype(float)
    data[rng.random(data.shape) < 0.2] = np.nan
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert krippendorff_alpha(matrix_to_rows(data), lambda x, y: (x - y) ** 2) == pytest.approx(expected, abs=1e-9)


def test_masi_examples():
    assert masi_distance({"sad"}, {"sad"}) == 0.0
    assert masi_distance(["sad", "hurt"], ("hurt", "sad")) == 0.0              # order does not matter
    assert masi_distance({"sad"}, {"sad", "hurt"}) == pytest.approx(1 - 0.5 * 0.67)   # subset: J 1/2, M 0.67
    assert masi_distance({"sad", "hurt"}, {"sad", "tired"}) == pytest.approx(1 - 0.33 / 3)  # overlap: J 1/3
    assert masi_distance({"sad"}, {"calm"}) == 1.0                              # disjoint
    assert masi_distance(set(), set()) == 0.0
    assert masi_distance(set(), {"sad"}) == 1.0
    assert jaccard_distance({"a", "b"}, {"b", "c"}) == pytest.approx(2 / 3)


def test_alpha_sets_masi_by_hand():
    # u1: {a}, {a,b};  u2: {a}, {b}.  Values: {a} x2, {a,b} x1, {b} x1; n = 4.
    # d({a},{a,b}) = d({a,b},{b}) = 1 - 0.5*0.67 = 0.665, d({a},{b}) = 1.
    # sum o d = u1: 2*0.665 + u2: 2*1 = 3.33   (m_u - 1 = 1)
    # sum e d * (n-1) = sum_{c!=k} n_c n_k d = 2*(2*1*0.665) + 2*(2*1*1) + 2*(1*1*0.665) = 7.99
    # alpha = 1 - (n-1) * 3.33 / 7.99 = 1 - 9.99/7.99
    rows = [(1, "x", {"a"}), (1, "y", {"a", "b"}), (2, "x", {"a"}), (2, "y", {"b"})]
    assert krippendorff_alpha_sets(rows) == pytest.approx(1 - 9.99 / 7.99, abs=1e-12)
    assert krippendorff_alpha_sets(rows, masi_distance) == pytest.approx(1 - 9.99 / 7.99, abs=1e-12)


def test_alpha_sets_vectorised_matches_the_scalar_function_on_random_sets():
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(8)]
    rows = [(t, k, frozenset(rng.choice(words, size=rng.integers(0, 4), replace=False)))
            for t in range(150) for k in range(rng.integers(1, 5))]
    for name, fn in (("masi", masi_distance), ("jaccard", jaccard_distance)):
        assert krippendorff_alpha_sets(rows, name) == pytest.approx(krippendorff_alpha_sets(rows, fn), abs=1e-12)
    with pytest.raises(ValueError, match="unknown set distance"):
        krippendorff_alpha_sets(rows, "cosine")


def random_set_rows(seed, tasks=100, words="abcdefg"):
    rng = np.random.default_rng(seed)
    return [(t, k, frozenset(rng.choice(list(words), size=rng.integers(1, 4), replace=False)))
            for t in range(tasks) for k in range(3)]


def test_alpha_sets_sampled_expected_disagreement_is_close_to_the_exact_one():
    rows = random_set_rows(11, tasks=300)
    exact = krippendorff_alpha_sets(rows)
    sampled = krippendorff_alpha_sets(rows, exact_limit=0, sample_pairs=400_000, seed=3)
    assert sampled != exact  # it really took the sampled path
    assert sampled == pytest.approx(exact, abs=0.01)
    assert krippendorff_alpha_sets(rows, exact_limit=0, sample_pairs=400_000, seed=3) == sampled
    stat = alpha_sets_sums(*code_rows(rows, frozenset)[:2], 300, code_rows(rows, frozenset).values, exact_limit=0,
                           sample_pairs=1000)
    assert "1,000 sampled pairs" in stat.note


def drawn_rows(rows, drawn):
    """The rows of the drawn tasks, a task drawn twice counting as two tasks."""
    groups = {}
    for t, w, y in rows:
        groups.setdefault(t, []).append((w, y))
    return [((k, t), w, y) for k, t in enumerate(drawn) for w, y in groups[t]]


@pytest.mark.parametrize("seed", range(4))
def test_reweighting_tasks_is_resampling_them(seed):
    # A TaskSums statistic of weighted sums equals the statistic recomputed on the resampled rows.
    rng = np.random.default_rng(seed)
    # sizes 1 or 3: Fleiss' rater count (the most common size, 3) is the same in the resample
    rows = [(t, w, str(rng.integers(0, 3))) for t in range(40) for w in range(rng.choice([1, 3], p=[0.2, 0.8]))]
    sets = random_set_rows(seed, tasks=40)
    drawn = rng.integers(0, 40, size=40)
    weights = np.bincount(drawn, minlength=40).astype(float)
    c = code_rows(rows)
    cases = [
        (alpha_nominal_sums, krippendorff_alpha_nominal),
        (fleiss_kappa_sums, fleiss_kappa),
        (lambda *a: percent_agreement_sums(*a, which="majority"), lambda r: percent_agreement(r)["percent_majority"]),
    ]
    for form, statistic in cases:
        stat = form(c.tasks, c.labels, len(c.task_ids), len(c.values))
        by_form = float(stat.formula(weights @ stat.per_task))
        by_rows = statistic(drawn_rows(rows, [c.task_ids[i] for i in drawn]))
        assert by_form == pytest.approx(by_rows, abs=1e-9, nan_ok=True)
    s = code_rows(sets, frozenset)
    stat = alpha_sets_sums(s.tasks, s.labels, len(s.task_ids), s.values)
    assert float(stat.formula(weights @ stat.per_task)) == pytest.approx(
        krippendorff_alpha_sets(drawn_rows(sets, [s.task_ids[i] for i in drawn])), abs=1e-9)


def test_alpha_sets_linearised_bootstrap_is_close_to_the_exact_one(monkeypatch):
    from scripts.stats import agreement

    rows = random_set_rows(5, tasks=400)
    s = code_rows(rows, frozenset)
    exact = alpha_sets_sums(s.tasks, s.labels, len(s.task_ids), s.values)
    monkeypatch.setattr(agreement, "EXACT_BOOTSTRAP_CELLS", 0)
    linear = alpha_sets_sums(s.tasks, s.labels, len(s.task_ids), s.values)
    assert linear.per_task.shape[1] == 3 < exact.per_task.shape[1]
    assert linear.estimate() == pytest.approx(exact.estimate(), abs=1e-12)
    (lo_e, hi_e), (lo_l, hi_l) = task_sums_ci([exact, linear], n=400, seed=0)
    assert lo_l == pytest.approx(lo_e, abs=0.01) and hi_l == pytest.approx(hi_e, abs=0.01)
    assert lo_e < exact.estimate() < hi_e


def test_alpha_perfect_agreement_is_one():
    rows = rows_of({1: "aaa", 2: "bbb", 3: "cc"})
    assert krippendorff_alpha_nominal(rows) == 1.0
    assert krippendorff_alpha_sets([(t, w, {y}) for t, w, y in rows]) == 1.0


# --- bootstrap --------------------------------------------------------------------------------

def test_bootstrap_ci_contains_the_estimate_and_is_deterministic():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, size=80)
    rows = [(t, w, int(truth[t]) if rng.random() < 0.7 else int(rng.integers(0, 3))) for t in range(80) for w in range(3)]
    ci = bootstrap_ci(rows, krippendorff_alpha_nominal, n=300, seed=1)
    assert ci.estimate == krippendorff_alpha_nominal(rows)
    assert ci.low < ci.estimate < ci.high
    assert bootstrap_ci(rows, krippendorff_alpha_nominal, n=300, seed=1) == ci
    assert bootstrap_ci(rows, krippendorff_alpha_nominal, n=300, seed=2) != ci
    narrow = bootstrap_ci(rows, krippendorff_alpha_nominal, n=300, seed=1, level=0.5)
    assert ci.low <= narrow.low <= narrow.high <= ci.high


def test_bootstrap_resamples_tasks_not_rows():
    # Every task is unanimous, so any resample of whole tasks is 100 % agreement; resampling
    # rows would break tasks apart and give less.
    rows = rows_of({t: [t % 2] * 3 for t in range(20)})
    ci = bootstrap_ci(rows, lambda r: percent_agreement(r)["percent_all_agree"], n=50)
    assert (ci.estimate, ci.low, ci.high) == (100.0, 100.0, 100.0)


# --- benchmark (printed, never asserted) ------------------------------------------------------

def test_print_time_of_nominal_alpha_on_100k_tasks(capsys):
    rng = np.random.default_rng(0)
    labels = rng.choice(["slow", "normal", "fast", "variable"], size=(100_000, 3)).tolist()
    rows = [(t, w, y) for t, row in enumerate(labels) for w, y in enumerate(row)]
    start = time.perf_counter()
    alpha = krippendorff_alpha_nominal(rows)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nkrippendorff_alpha_nominal: 100,000 tasks x 3 labels in {seconds:.2f} s (alpha {alpha:.4f})")
