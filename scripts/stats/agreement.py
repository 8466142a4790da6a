"""Agreement statistics over one pool's labels, vectorised with numpy.

In crowd-kit's spirit, every function takes tidy rows `(task, worker, label)`: an iterable of
3-tuples, of mappings with keys task/worker/label, or a DataFrame with those columns. A row whose
label is None is a missing value and is ignored. Only the labels grouped by task matter; `worker`
is carried for the caller's bookkeeping.

Nominal labels are any hashable values (pace, pitch, volume); set-valued labels (the emotion
words of one annotation) are any collections of hashables, compared as sets.

>>> rows = [(1, "a", "fast"), (1, "b", "fast"), (1, "c", "slow"), (2, "a", "low"), (2, "b", "low")]
>>> percent_agreement(rows)
{'percent_all_agree': 50.0, 'percent_majority': 100.0, 'tasks': 2}
>>> majority_vote(rows + [(3, "a", "x"), (3, "b", "y")])
{1: 'fast', 2: 'low', 3: None}

Every statistic here is a function of SUMS over tasks of per-task figures (a `TaskSums`): the
point estimate applies the formula to the plain sums, and a bootstrap resample of tasks only
reweights the tasks, so `bootstrap_task_sums` gets all resamples' sums from one matrix product
per chunk of resamples, never re-running the statistic on rows:

>>> coded = code_rows([(t, w, y) for t, labels in enumerate(["aab", "bbb", "abc", "aaa"]) for w, y in enumerate(labels)])
>>> stat = alpha_nominal_sums(coded.tasks, coded.labels, len(coded.task_ids), len(coded.values))
>>> round(stat.estimate(), 4) == round(krippendorff_alpha_nominal(coded.rows), 4)
True
>>> low, high = task_sums_ci([stat], n=200, seed=0)[0]
>>> bool(low <= stat.estimate() <= high)
True
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

Row = tuple[Hashable, Hashable, Any]
SetDistance = Callable[[frozenset, frozenset], float]
PairDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Distances between value codes: d(values[a[i]], values[b[i]]) for each i."""

EXACT_EXPECTED_LIMIT = 4000
"""Set alpha: up to this many distinct sets, the expected disagreement is exact (all pairs of sets)."""
SAMPLED_PAIRS = 2_000_000
"""Set alpha beyond EXACT_EXPECTED_LIMIT distinct sets: value pairs sampled for the expected disagreement."""
EXACT_BOOTSTRAP_CELLS = 4_000_000
"""Set alpha bootstrap: the expected disagreement is recomputed exactly per resample when
tasks x distinct sets is at most this (small data); otherwise it is linearised in the task weights."""

__all__ = [
    "BootstrapCI",
    "Coded",
    "TaskSums",
    "alpha_nominal_sums",
    "alpha_sets_sums",
    "bootstrap_ci",
    "bootstrap_task_sums",
    "by_task",
    "code_rows",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "fleiss_kappa_sums",
    "identical_sets_sums",
    "jaccard_distance",
    "krippendorff_alpha",
    "krippendorff_alpha_nominal",
    "krippendorff_alpha_sets",
    "majority_codes",
    "majority_vote",
    "masi_distance",
    "percent_agreement",
    "percent_agreement_sums",
    "rows_by_task",
    "task_sums_ci",
    "tidy",
]


# ---------------------------------------------------------------------------------------------
# rows


def tidy(rows: Any) -> list[Row]:
    """Rows as a list of (task, worker, label) tuples, missing labels (None) dropped."""
    if hasattr(rows, "itertuples"):  # a DataFrame with columns task, worker, label
        rows = rows[["task", "worker", "label"]].itertuples(index=False, name=None)
    out: list[Row] = []
    for row in rows:
        if isinstance(row, Mapping):
            row = (row["task"], row["worker"], row["label"])
        elif len(row) != 3:
            raise ValueError(f"each row must be (task, worker, label), got {row!r}")
        if row[2] is not None:
            out.append(tuple(row))
    return out


def rows_by_task(rows: Any) -> dict[Hashable, list[Row]]:
    """task -> its rows, tasks in first-seen order."""
    out: dict[Hashable, list[Row]] = {}
    for row in tidy(rows):
        out.setdefault(row[0], []).append(row)
    return out


def by_task(rows: Any) -> dict[Hashable, list[Any]]:
    """task -> its labels, tasks in first-seen order."""
    return {task: [label for _, _, label in group] for task, group in rows_by_task(rows).items()}


def _codes(values: Iterable[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """Integer codes for values, and the distinct values in first-seen order."""
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64)
    return codes, list(index)


class Coded(NamedTuple):
    """Rows with tasks and labels coded as integers (codes index `task_ids` and `values`)."""

    tasks: np.ndarray
    labels: np.ndarray
    task_ids: list
    values: list
    rows: list


def code_rows(rows: Any, as_label: Callable[[Any], Hashable] = lambda x: x) -> Coded:
    """Tidy rows coded once: task and label codes in first-seen order."""
    rows = tidy(rows)
    tasks, task_ids = _codes(r[0] for r in rows)
    labels, values = _codes(as_label(r[2]) for r in rows)
    return Coded(tasks, labels, task_ids, values, rows)


def _task_value_counts(tasks: np.ndarray, labels: np.ndarray, n_values: int, min_size: int = 1):
    """Per (task, value) present, for tasks with >= min_size labels: task, value, count n_uc and
    the task's size m_u, sorted by task."""
    n_tasks = int(tasks.max()) + 1 if len(tasks) else 0
    sizes = np.bincount(tasks, minlength=n_tasks)
    keep = sizes[tasks] >= min_size
    keys, n_uc = np.unique(tasks[keep] * n_values + labels[keep], return_counts=True)
    unit, value = np.divmod(keys, n_values)
    return unit, value, n_uc.astype(float), sizes[unit].astype(float)


# ---------------------------------------------------------------------------------------------
# statistics as functions of sums over tasks


@dataclass(frozen=True)
class TaskSums:
    """A statistic that is `formula(per_task.sum(axis=0))`.

    `per_task` is (tasks x k): each task's figures; `formula` maps sums (..., k) to the statistic
    (...), NaN where undefined. Reweighting tasks (a bootstrap resample) reweights the rows.
    `note` says how the statistic was computed where that matters (a sampled expected disagreement).
    """

    per_task: np.ndarray
    formula: Callable[[np.ndarray], np.ndarray]
    note: str | None = None

    def estimate(self) -> float:
        return float(self.formula(self.per_task.sum(axis=0)))


def _ratio(numerator: np.ndarray, denominator: np.ndarray, scale: float = 1.0) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, scale * numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _top_counts(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int):
    """Per task: its number of labels, the count of its most given label, and that label's code
    (-1 where two or more labels share the top count, or where the task has no label)."""
    unit, value, n_uc, _ = _task_value_counts(tasks, labels, max(n_values, 1))
    sizes = np.bincount(tasks, minlength=n_tasks)
    top = np.zeros(n_tasks)
    second = np.zeros(n_tasks)
    label = np.full(n_tasks, -1, dtype=np.int64)
    if len(unit):
        order = np.lexsort((-n_uc, unit))  # by task, most given first
        unit, value, n_uc = unit[order], value[order], n_uc[order]
        first = np.ones(len(unit), dtype=bool)
        first[1:] = unit[1:] != unit[:-1]
        top[unit[first]] = n_uc[first]
        label[unit[first]] = value[first]
        runner_up = np.zeros(len(unit), dtype=bool)
        runner_up[1:] = first[:-1] & ~first[1:]
        second[unit[runner_up]] = n_uc[runner_up]
    label[(second == top) & (top > 0)] = -1
    return sizes.astype(float), top, label


def majority_codes(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int,
                   strict: bool = True) -> np.ndarray:
    """Per task, the code of its consensus label, or -1 (a tie, no label, or no majority).

    strict=True: a label given by more than half of the task's labels and by at least two
    annotators (2 of 3 is a majority, 1-1-1 and a lone label are not). strict=False: the most
    given label unless two labels tie for it (a lone label counts).
    """
    sizes, top, label = _top_counts(tasks, labels, n_tasks, n_values)
    if strict:
        label = np.where((2 * top > sizes) & (top >= 2), label, -1)
    return label


def percent_agreement_sums(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int,
                           which: str = "all") -> TaskSums:
    """Percent of tasks with >= 2 labels where all labels agree (`which="all"`) or where a strict
    majority agrees (`which="majority"`)."""
    sizes, top, _ = _top_counts(tasks, labels, n_tasks, n_values)
    counted = sizes >= 2
    agree = (top == sizes) if which == "all" else (2 * top > sizes)
    per_task = np.column_stack([counted, counted & agree]).astype(float)
    return TaskSums(per_task, lambda s: _ratio(s[..., 1], s[..., 0], 100.0))


def fleiss_kappa_sums(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int) -> TaskSums:
    """Fleiss' kappa over the tasks with exactly the most common number (>= 2) of labels.

    Per task: kept, P_i and the category counts; kappa = (P_bar - P_e) / (1 - P_e),
    P_bar = sum P_i / N, p_j = sum n_ij / (N m), P_e = sum p_j^2. The rater count m is chosen on
    the whole data, so a resample keeps the same tasks' kind.
    """
    sizes = np.bincount(tasks, minlength=n_tasks)
    count_of_size = np.bincount(sizes)
    count_of_size[:2] = 0
    m = int(np.flatnonzero(count_of_size == count_of_size.max())[-1]) if count_of_size.any() else 0
    kept = sizes == m if m else np.zeros(n_tasks, dtype=bool)
    counts = np.zeros((n_tasks, max(n_values, 1)))
    keep_rows = kept[tasks]
    np.add.at(counts, (tasks[keep_rows], labels[keep_rows]), 1)
    p_i = ((counts**2).sum(axis=1) - m) / (m * (m - 1)) if m else np.zeros(n_tasks)
    per_task = np.column_stack([kept.astype(float), np.where(kept, p_i, 0.0), counts])

    def kappa(s: np.ndarray) -> np.ndarray:
        n_kept = s[..., 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            p_bar = s[..., 1] / n_kept
            p_j = s[..., 2:] / (n_kept * m)[..., None]
            p_e = (p_j**2).sum(axis=-1)
            value = (p_bar - p_e) / (1 - p_e)
        return np.where((n_kept > 0) & ~np.isclose(p_e, 1.0), value, np.nan)

    return TaskSums(per_task, kappa)


def alpha_nominal_sums(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int) -> TaskSums:
    """Krippendorff's alpha, nominal. Per pairable task (>= 2 labels): its value counts n_uc and
    its observed coincidences on the diagonal, sum_c n_uc (n_uc - 1) / (m_u - 1). Then
    alpha = 1 - (n - 1) (n - sum_c o_cc) / (n^2 - sum_c n_c^2), NaN when the denominator is 0."""
    unit, value, n_uc, m_u = _task_value_counts(tasks, labels, max(n_values, 1), min_size=2)
    per_task = np.zeros((n_tasks, max(n_values, 1) + 1))
    per_task[unit, value] = n_uc
    per_task[:, -1] = np.bincount(unit, weights=n_uc * (n_uc - 1) / (m_u - 1), minlength=n_tasks)

    def alpha(s: np.ndarray) -> np.ndarray:
        n_c = s[..., :-1]
        n = n_c.sum(axis=-1)
        expected = n * n - (n_c**2).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = 1 - (n - 1) * (n - s[..., -1]) / expected
        return np.where(expected > 0, value, np.nan)

    return TaskSums(per_task, alpha)


def _observed_per_task(unit, value, n_uc, m_u, n_tasks: int, distance: PairDistance) -> np.ndarray:
    """Each pairable task's observed disagreement sum_ck n_uc (n_uk - [c=k]) d_ck / (m_u - 1),
    as pairs of the task's (value, count) entries, one offset between entries at a time."""
    observed = np.zeros(n_tasks)
    run = int(np.bincount(unit).max()) if len(unit) else 0
    for offset in range(run):
        i = np.arange(len(unit) - offset)
        j = i + offset
        same = unit[i] == unit[j]
        i, j = i[same], j[same]
        if offset == 0:
            weight = n_uc[i] * (n_uc[i] - 1)
            d = distance(value[i], value[i])
        else:  # both orders (c, k) and (k, c)
            weight = n_uc[i] * n_uc[j]
            d = distance(value[i], value[j]) + distance(value[j], value[i])
        observed += np.bincount(unit[i], weights=weight * d / (m_u[i] - 1), minlength=n_tasks)
    return observed


def _alpha_sums(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int, distance: PairDistance, *,
                exact_limit: float = EXACT_EXPECTED_LIMIT, sample_pairs: int = SAMPLED_PAIRS,
                seed: int = 0) -> TaskSums:
    """Krippendorff's alpha with any distance between value codes.

    alpha = 1 - (n - 1) D_o / E, D_o the summed observed disagreement of the pairable tasks and
    E = sum_ck n_c (n_k - [c=k]) d_ck, over the pairable values' totals n_c. E needs the distances
    between distinct values: all pairs up to `exact_limit` distinct values, else the mean distance
    of `sample_pairs` random pairs of pairable labels (E = n (n - 1) x that mean).
    """
    unit, value, n_uc, m_u = _task_value_counts(tasks, labels, max(n_values, 1), min_size=2)
    observed = _observed_per_task(unit, value, n_uc, m_u, n_tasks, distance)
    sizes = np.bincount(unit, weights=n_uc, minlength=n_tasks)
    n_c = np.bincount(value, weights=n_uc, minlength=n_values)
    present = np.flatnonzero(n_c)
    if n_c.sum() < 2:
        return TaskSums(np.zeros((n_tasks, 1)), lambda s: np.full(np.shape(s)[:-1], np.nan))

    def alpha_from(s_observed, s_size, expected):
        with np.errstate(divide="ignore", invalid="ignore"):
            value_ = 1 - (s_size - 1) * s_observed / expected
        return np.where((expected > 1e-12 * np.maximum(s_size * s_size, 1)) & (s_size >= 2), value_, np.nan)

    if len(present) <= exact_limit:
        weight = n_c[present]
        g = np.zeros(len(present))  # g_c = sum_k n_k d_ck
        own = distance(present, present)
        matrix = np.zeros((len(present), len(present))) if len(present) * n_tasks <= EXACT_BOOTSTRAP_CELLS else None
        block = max(1, 2**20 // max(len(present), 1))
        for s in range(0, len(present), block):
            rows = present[s : s + block]
            d = distance(np.repeat(rows, len(present)), np.tile(present, len(rows))).reshape(len(rows), -1)
            g[s : s + len(rows)] = d @ weight
            if matrix is not None:
                matrix[s : s + len(rows)] = d
        if matrix is not None:
            # Small data: E per resample from the resampled value totals, exactly.
            counts = np.zeros((n_tasks, len(present)))
            position = np.searchsorted(present, value)
            np.add.at(counts, (unit, position), n_uc)
            per_task = np.column_stack([observed, sizes, counts])

            def alpha_exact(s):
                totals = s[..., 2:]
                expected = ((totals @ matrix) * totals).sum(axis=-1) - totals @ own
                return alpha_from(s[..., 0], s[..., 1], expected)

            return TaskSums(per_task, alpha_exact)
        # E(w) = sum_ck n_c(w) n_k(w) d_ck - sum_c n_c(w) d_cc is quadratic in the task weights w;
        # its first-order expansion around w = 1 is exact at w = 1 and off by O(1/tasks) elsewhere.
        quadratic = float(weight @ g)
        code_gain = np.zeros(n_values)
        code_gain[present] = 2 * g - own
        gain = np.bincount(unit, weights=n_uc * code_gain[value], minlength=n_tasks)
        per_task = np.column_stack([observed, sizes, gain])
        return TaskSums(per_task, lambda s: alpha_from(s[..., 0], s[..., 1], s[..., 2] - quadratic))

    # Many distinct values: the mean distance between two different pairable labels, from a fixed
    # random sample of pairs, as a ratio whose numerator and denominator are linear in the weights.
    slot_value = np.repeat(value, n_uc.astype(np.int64))
    slot_unit = np.repeat(unit, n_uc.astype(np.int64))
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(slot_value), size=sample_pairs)
    second = rng.integers(0, len(slot_value) - 1, size=sample_pairs)
    second += second >= first
    d = np.concatenate([distance(slot_value[first[s : s + 2**20]], slot_value[second[s : s + 2**20]])
                        for s in range(0, sample_pairs, 2**20)])
    ends = np.concatenate([slot_unit[first], slot_unit[second]])
    distance_at = np.bincount(ends, weights=np.concatenate([d, d]), minlength=n_tasks)
    ends_at = np.bincount(ends, minlength=n_tasks).astype(float)
    per_task = np.column_stack([observed, sizes, distance_at, ends_at])
    total_distance = float(d.sum())

    def alpha_sampled(s):
        mean = _ratio(s[..., 2] - total_distance, s[..., 3] - sample_pairs)
        return alpha_from(s[..., 0], s[..., 1], s[..., 1] * (s[..., 1] - 1) * mean)

    return TaskSums(per_task, alpha_sampled, note=f"expected disagreement from {sample_pairs:,} sampled pairs "
                                                  f"({len(present):,} distinct values)")


# --- set distances ---------------------------------------------------------------------------


def _masi_from(inter: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """MASI distance, 1 - J * M, from intersection and set sizes (two empty sets: distance 0)."""
    union = size_a + size_b - inter
    jaccard = np.divide(inter, union, out=np.ones_like(inter, dtype=float), where=union > 0)
    monotonicity = np.select(
        [(inter == size_a) & (inter == size_b), inter == np.minimum(size_a, size_b), inter > 0],
        [1.0, 0.67, 0.33],
        0.0,
    )
    return 1.0 - jaccard * monotonicity


def _jaccard_from(inter: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    union = size_a + size_b - inter
    return 1.0 - np.divide(inter, union, out=np.ones_like(inter, dtype=float), where=union > 0)


_SET_DISTANCES = {"masi": _masi_from, "jaccard": _jaccard_from}


class SetBits:
    """Distinct sets as bit masks over their items, so that intersection sizes of many pairs of
    sets are an AND and a popcount."""

    def __init__(self, sets: Sequence[Collection[Hashable]]):
        items: dict[Hashable, int] = {}
        members = [[items.setdefault(x, len(items)) for x in s] for s in sets]
        self.words = max(1, -(-len(items) // 64))
        self.bits = np.zeros((len(sets), self.words), dtype=np.uint64)
        rows = np.repeat(np.arange(len(sets)), [len(m) for m in members])
        flat = np.fromiter((x for m in members for x in m), dtype=np.int64, count=len(rows))
        np.bitwise_or.at(self.bits, (rows, flat // 64), np.left_shift(np.uint64(1), (flat % 64).astype(np.uint64)))
        self.size = np.array([len(m) for m in members], dtype=float)

    def intersection(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.bitwise_count(self.bits[a] & self.bits[b]).sum(axis=1, dtype=np.int64).astype(float)

    def distance(self, name: str) -> PairDistance:
        formula = _SET_DISTANCES[name]
        return lambda a, b: formula(self.intersection(a, b), self.size[a], self.size[b])


def _python_distance(values: Sequence[Any], distance: Callable[[Any, Any], float]) -> PairDistance:
    def pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.fromiter((distance(values[i], values[j]) for i, j in zip(a.tolist(), b.tolist())),
                           dtype=float, count=len(a))
    return pairs


def alpha_sets_sums(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, sets: Sequence[frozenset],
                    distance: str | SetDistance = "masi", *, exact_limit: float = EXACT_EXPECTED_LIMIT,
                    sample_pairs: int = SAMPLED_PAIRS, seed: int = 0) -> TaskSums:
    """Krippendorff's alpha for set-valued labels; `labels` are codes into `sets` (each distinct set
    once). `distance`: "masi", "jaccard" or a function of two frozensets. Exact expected
    disagreement up to `exact_limit` distinct sets, else from `sample_pairs` sampled pairs (`note`)."""
    if isinstance(distance, str):
        if distance not in _SET_DISTANCES:
            raise ValueError(f"unknown set distance {distance!r} (use {', '.join(_SET_DISTANCES)} or a function)")
        pair_distance = SetBits(sets).distance(distance)
    else:
        pair_distance = _python_distance(sets, distance)
    return _alpha_sums(tasks, labels, n_tasks, len(sets), pair_distance, exact_limit=exact_limit,
                       sample_pairs=sample_pairs, seed=seed)


def identical_sets_sums(tasks: np.ndarray, labels: np.ndarray, n_tasks: int, n_values: int) -> TaskSums:
    """Percent of tasks with >= 2 labels where every label is the same set (same code)."""
    return percent_agreement_sums(tasks, labels, n_tasks, n_values, which="all")


# ---------------------------------------------------------------------------------------------
# bootstrap over tasks


def bootstrap_task_sums(per_task: np.ndarray, n: int = 1000, seed: int = 0, *, cells: int = 2**23) -> np.ndarray:
    """(n x k) sums of `per_task` (tasks x k) over n bootstrap resamples of the tasks.

    A resample draws as many tasks as there are, with replacement; its sums are its draw counts
    (np.bincount) times `per_task`. Resamples are made `cells // tasks` at a time, as one matrix
    product each. Deterministic for a seed.
    """
    per_task = np.asarray(per_task, dtype=float)
    n_tasks, k = per_task.shape
    out = np.zeros((n, k))
    if n_tasks == 0 or n == 0:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n, cells // n_tasks))
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        drawn = rng.integers(0, n_tasks, size=(b, n_tasks))
        drawn += (np.arange(b) * n_tasks)[:, None]
        weights = np.bincount(drawn.ravel(), minlength=b * n_tasks).reshape(b, n_tasks)
        out[start : start + b] = weights.astype(float) @ per_task
    return out


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def task_sums_ci(statistics: Sequence[TaskSums], n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> list[tuple[float, float]]:
    """Percentile bootstrap intervals of several statistics over the SAME tasks, from one set of
    resamples (all `per_task` arrays must have the same number of rows). NaN resamples are left
    out; (NaN, NaN) when all are NaN."""
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    if not statistics:
        return []
    widths = [s.per_task.shape[1] for s in statistics]
    sums = bootstrap_task_sums(np.hstack([s.per_task for s in statistics]), n, seed)
    out, start = [], 0
    for stat, width in zip(statistics, widths):
        out.append(_percentiles(np.asarray(stat.formula(sums[:, start : start + width]), dtype=float), level))
        start += width
    return out


# ---------------------------------------------------------------------------------------------
# the row-level functions


def percent_agreement(rows: Any) -> dict[str, float | int]:
    """Over tasks with >= 2 labels: the percent where all labels agree and where a strict majority
    (more than half of the task's labels) agrees; `tasks` is how many tasks counted (NaN percents
    when none). With 3 labels, a 2-1 split is a majority, 1-1-1 is not; with 2, only 2-0 is.
    """
    c = code_rows(rows)
    n_tasks, n_values = len(c.task_ids), len(c.values)
    every = percent_agreement_sums(c.tasks, c.labels, n_tasks, n_values, "all")
    most = percent_agreement_sums(c.tasks, c.labels, n_tasks, n_values, "majority")
    return {"percent_all_agree": every.estimate(), "percent_majority": most.estimate(),
            "tasks": int(every.per_task[:, 0].sum())}


def majority_vote(rows: Any) -> dict[Hashable, Any]:
    """task -> the label given most often, or None where two or more labels tie for most
    (a 1-1-1 split of 3, a 1-1 of 2): a tie is reported, never broken by order."""
    c = code_rows(rows)
    codes = majority_codes(c.tasks, c.labels, len(c.task_ids), len(c.values), strict=False)
    return {task: (c.values[code] if code >= 0 else None) for task, code in zip(c.task_ids, codes.tolist())}


def fleiss_kappa_from_counts(counts: Any) -> float:
    """Fleiss' kappa from a subjects x categories matrix of rater counts (every row the same sum).

    NaN when the expected agreement is 1 (every rating in one category).
    """
    n_ij = np.asarray(counts, dtype=float)
    if n_ij.ndim != 2 or len(n_ij) == 0:
        raise ValueError("counts must be a non-empty subjects x categories matrix")
    m = n_ij.sum(axis=1)
    if not np.all(m == m[0]) or m[0] < 2:
        raise ValueError("every subject needs the same number of ratings, at least 2")
    m = m[0]
    p_i = ((n_ij**2).sum(axis=1) - m) / (m * (m - 1))
    p_j = n_ij.sum(axis=0) / n_ij.sum()
    p_bar, p_e = p_i.mean(), (p_j**2).sum()
    return float("nan") if np.isclose(p_e, 1.0) else float((p_bar - p_e) / (1 - p_e))


def fleiss_kappa(rows: Any) -> float:
    """Fleiss' kappa (nominal labels).

    Fleiss' kappa needs the same number of raters per task: it uses only the tasks with exactly
    the most common number of labels (the larger count if two are equally common), and ignores
    the others. NaN when no task has 2 or more labels, or when all ratings are in one category.
    """
    c = code_rows(rows)
    return fleiss_kappa_sums(c.tasks, c.labels, len(c.task_ids), len(c.values)).estimate()


def krippendorff_alpha_nominal(rows: Any) -> float:
    """Krippendorff's alpha for nominal labels; NaN when fewer than 2 distinct values are pairable."""
    c = code_rows(rows)
    return alpha_nominal_sums(c.tasks, c.labels, len(c.task_ids), len(c.values)).estimate()


def krippendorff_alpha(rows: Any, distance: Callable[[Any, Any], float]) -> float:
    """Krippendorff's alpha for hashable labels with any distance function d(a, b) (d(a, a) = 0
    for a metric; the definition does not need it). Exact: |distinct values|^2 calls of `distance`.
    NaN when the expected disagreement is 0."""
    c = code_rows(rows)
    return _alpha_sums(c.tasks, c.labels, len(c.task_ids), len(c.values), _python_distance(c.values, distance),
                       exact_limit=float("inf")).estimate()


def krippendorff_alpha_sets(rows: Any, distance: str | SetDistance = "masi", *,
                            exact_limit: float = EXACT_EXPECTED_LIMIT, sample_pairs: int = SAMPLED_PAIRS,
                            seed: int = 0) -> float:
    """Krippendorff's alpha for set-valued labels (e.g. the emotion words of each annotation).

    `distance`: "masi" (Passonneau 2006, the default), "jaccard" (both vectorised), or a
    function of two frozensets. Labels are compared as sets, so word order does not matter.
    Beyond `exact_limit` distinct sets the expected disagreement is the mean distance of
    `sample_pairs` random pairs of labels (deterministic for `seed`).
    """
    c = code_rows(rows, as_label=frozenset)
    return alpha_sets_sums(c.tasks, c.labels, len(c.task_ids), c.values, distance, exact_limit=exact_limit,
                           sample_pairs=sample_pairs, seed=seed).estimate()


def masi_distance(a: Collection[Hashable], b: Collection[Hashable]) -> float:
    """MASI distance (Passonneau 2006) between two label sets: 1 - J * M, J the Jaccard index,
    M = 1 if equal, 0.67 if one is a subset of the other, 0.33 if they overlap, 0 if disjoint
    (the rounded weights NLTK's masi_distance uses). Two empty sets are at distance 0.

    >>> masi_distance({"sad"}, {"sad"}), masi_distance({"sad"}, {"sad", "hurt"}), masi_distance({"sad"}, {"calm"})
    (0.0, 0.665, 1.0)
    >>> round(masi_distance({"sad", "hurt"}, {"sad", "tired"}), 4)  # J = 1/3, M = 0.33
    0.89
    """
    return _scalar(_masi_from, a, b)


def jaccard_distance(a: Collection[Hashable], b: Collection[Hashable]) -> float:
    """1 - |a & b| / |a | b| (two empty sets: 0)."""
    return _scalar(_jaccard_from, a, b)


def _scalar(formula, a, b) -> float:
    a, b = set(a), set(b)
    return float(formula(np.array([len(a & b)]), np.array([len(a)]), np.array([len(b)]))[0])


# ---------------------------------------------------------------------------------------------
# bootstrap of a statistic of rows


class BootstrapCI(NamedTuple):
    estimate: float
    low: float
    high: float
    level: float
    n: int


def _vectorised(statistic: Callable) -> Callable[[Coded], TaskSums] | None:
    """The TaskSums form of a row-level statistic of this module, if it has one."""
    forms = {
        krippendorff_alpha_nominal: lambda c: alpha_nominal_sums(c.tasks, c.labels, len(c.task_ids), len(c.values)),
        fleiss_kappa: lambda c: fleiss_kappa_sums(c.tasks, c.labels, len(c.task_ids), len(c.values)),
    }
    return forms.get(statistic)


def bootstrap_ci(
    rows: Any, statistic: Callable[[list[Row]], float], n: int = 1000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Percentile bootstrap interval of `statistic(rows)`, resampling TASKS with replacement.

    Each resample draws as many tasks as there are, with all the labels of each drawn task; a
    task drawn twice counts as two tasks. Resamples where the statistic is NaN are left out of the
    percentiles (low/high are NaN if all are). Deterministic for a seed. Alpha (nominal) and
    Fleiss' kappa go through their TaskSums form (one matrix product per chunk of resamples);
    any other function is re-run on each resample's rows (renamed (draw, task)).
    """
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    rows = tidy(rows)
    estimate = float(statistic(rows))
    form = _vectorised(statistic)
    if form is not None:
        low, high = task_sums_ci([form(code_rows(rows))], n, seed, level)[0]
        return BootstrapCI(estimate, low, high, level, n)
    groups = list(rows_by_task(rows).values())
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    for b in range(n):
        drawn = rng.integers(0, len(groups), size=len(groups)) if groups else []
        stats[b] = statistic([((k, t), w, y) for k, g in enumerate(drawn) for t, w, y in groups[g]])
    low, high = _percentiles(stats, level)
    return BootstrapCI(estimate, low, high, level, n)
