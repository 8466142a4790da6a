"""Agreement statistics over one pool's labels, in plain numpy.

In crowd-kit's spirit, every function takes tidy rows `(task, worker, label)`: an iterable of
3-tuples, of mappings with keys task/worker/label, or a DataFrame with those columns (used
through `itertuples`, so pandas itself is not needed here). A row whose label is None is a
missing value and is ignored. Only the labels grouped by task matter; `worker` is carried for
the caller's bookkeeping.

Nominal labels are any hashable values (pace, pitch, volume); set-valued labels (the emotion
words of one annotation) are any collections of hashables, compared as sets.

>>> rows = [(1, "a", "fast"), (1, "b", "fast"), (1, "c", "slow"), (2, "a", "low"), (2, "b", "low")]
>>> percent_agreement(rows)
{'percent_all_agree': 50.0, 'percent_majority': 100.0, 'tasks': 2}
>>> majority_vote(rows + [(3, "a", "x"), (3, "b", "y")])
{1: 'fast', 2: 'low', 3: None}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

Row = tuple[Hashable, Hashable, Any]
SetDistance = Callable[[frozenset, frozenset], float]

__all__ = [
    "BootstrapCI",
    "bootstrap_ci",
    "by_task",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "jaccard_distance",
    "krippendorff_alpha",
    "krippendorff_alpha_nominal",
    "krippendorff_alpha_sets",
    "majority_vote",
    "masi_distance",
    "percent_agreement",
    "rows_by_task",
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


def _coded(rows: Any, as_label: Callable[[Any], Hashable] = lambda x: x) -> tuple[np.ndarray, np.ndarray, list]:
    rows = tidy(rows)
    tasks, _ = _codes(r[0] for r in rows)
    labels, distinct = _codes(as_label(r[2]) for r in rows)
    return tasks, labels, distinct


# ---------------------------------------------------------------------------------------------
# percent agreement, majority vote


def percent_agreement(rows: Any) -> dict[str, float | int]:
    """Over tasks with >= 2 labels: the percent where all labels agree and where a strict majority
    (more than half of the task's labels) agrees; `tasks` is how many tasks counted (NaN percents
    when none). With 3 labels, a 2-1 split is a majority, 1-1-1 is not; with 2, only 2-0 is.
    """
    top, sizes = [], []
    for labels in by_task(rows).values():
        if len(labels) >= 2:
            top.append(Counter(labels).most_common(1)[0][1])
            sizes.append(len(labels))
    if not sizes:
        return {"percent_all_agree": float("nan"), "percent_majority": float("nan"), "tasks": 0}
    top_a, sizes_a = np.array(top), np.array(sizes)
    return {
        "percent_all_agree": float(100 * np.mean(top_a == sizes_a)),
        "percent_majority": float(100 * np.mean(2 * top_a > sizes_a)),
        "tasks": len(sizes),
    }


def majority_vote(rows: Any) -> dict[Hashable, Any]:
    """task -> the label given most often, or None where two or more labels tie for most
    (a 1-1-1 split of 3, a 1-1 of 2): a tie is reported, never broken by order."""
    out: dict[Hashable, Any] = {}
    for task, labels in by_task(rows).items():
        ranked = Counter(labels).most_common(2)
        out[task] = ranked[0][0] if len(ranked) == 1 or ranked[0][1] > ranked[1][1] else None
    return out


# ---------------------------------------------------------------------------------------------
# Fleiss' kappa


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
    tasks, labels, distinct = _coded(rows)
    if not len(tasks):
        return float("nan")
    sizes = np.bincount(tasks)
    count_of_size = np.bincount(sizes)
    count_of_size[:2] = 0
    if not count_of_size.any():
        return float("nan")
    m = int(np.flatnonzero(count_of_size == count_of_size.max())[-1])
    keep = sizes[tasks] == m
    matrix = np.zeros((len(sizes), len(distinct)), dtype=np.int64)
    np.add.at(matrix, (tasks[keep], labels[keep]), 1)
    return fleiss_kappa_from_counts(matrix[sizes == m])


# ---------------------------------------------------------------------------------------------
# Krippendorff's alpha
#
# From the coincidence matrix (Krippendorff, "Computing Krippendorff's alpha-reliability"):
# only units (tasks) with m_u >= 2 values are pairable; n_uc = values c in unit u;
#   o_ck = sum_u n_uc (n_uk - [c = k]) / (m_u - 1)      (observed coincidences; sum = n)
#   e_ck = n_c (n_k - [c = k]) / (n - 1)                 (expected, n_c = sum_u n_uc)
#   alpha = 1 - D_o / D_e = 1 - sum o_ck d_ck / sum e_ck d_ck.


def _unit_value_counts(tasks: np.ndarray, labels: np.ndarray, n_values: int):
    """Per pairable unit and value: unit, value, n_uc and m_u, sorted by unit."""
    sizes = np.bincount(tasks)
    keep = sizes[tasks] >= 2
    keys, n_uc = np.unique(tasks[keep] * n_values + labels[keep], return_counts=True)
    unit, value = np.divmod(keys, n_values)
    return unit, value, n_uc.astype(float), sizes[unit].astype(float)


def krippendorff_alpha_nominal(rows: Any) -> float:
    """Krippendorff's alpha for nominal labels; NaN when fewer than 2 distinct values are pairable.

    Closed form of the coincidence matrix for the nominal distance (d_ck = [c != k]):
    alpha = 1 - (n - 1) (n - sum_c o_cc) / (n^2 - sum_c n_c^2).
    """
    tasks, labels, distinct = _coded(rows)
    if not len(tasks):
        return float("nan")
    _, value, n_uc, m_u = _unit_value_counts(tasks, labels, len(distinct))
    n_c = np.bincount(value, weights=n_uc, minlength=len(distinct))
    n = n_c.sum()
    o_diag = (n_uc * (n_uc - 1) / (m_u - 1)).sum()
    expected = n * n - (n_c**2).sum()
    return float("nan") if expected <= 0 else float(1 - (n - 1) * (n - o_diag) / expected)


class _Distances:
    """Distances between the distinct values (by code), from a function of two values."""

    def __init__(self, values: Sequence[Any], distance: Callable[[Any, Any], float]):
        self.values = values
        self.distance = distance

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """d(values[a[i]], values[b[i]]) for each i."""
        v, d = self.values, self.distance
        return np.fromiter((d(v[i], v[j]) for i, j in zip(a.tolist(), b.tolist())), dtype=float, count=len(a))

    def expected(self, n_c: np.ndarray, block_rows: int = 256) -> float:
        """sum_ck n_c (n_k - [c = k]) d_ck over every pair of values present, in row blocks:
        |values|^2 distances, so the cost grows with the number of distinct values."""
        present = np.flatnonzero(n_c)
        weight = n_c[present]
        total = 0.0
        for s in range(0, len(present), block_rows):
            rows = present[s : s + block_rows]
            d = self.pairs(np.repeat(rows, len(present)), np.tile(present, len(rows))).reshape(len(rows), -1)
            own = d[np.arange(len(rows)), s + np.arange(len(rows))]
            total += float(weight[s : s + len(rows)] @ d @ weight - (weight[s : s + len(rows)] * own).sum())
        return total


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


class _SetDistances(_Distances):
    """MASI or Jaccard between frozensets, from intersection sizes.

    Both give d(c, c) = 0 and d = 1 for two different sets sharing no word, so the expected
    disagreement needs the distance only of the pairs sharing a word, found through each word's
    list of sets: sum_{c != k} n_c n_k d_ck = n^2 - sum n_c^2 - sum_{c != k, sharing} n_c n_k (1 - d_ck).
    """

    def __init__(self, values: Sequence[frozenset], name: str):
        self.values = values
        self.formula = _SET_DISTANCES[name]
        self.size = np.array([len(v) for v in values], dtype=float)

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        v = self.values
        inter = np.fromiter((len(v[i] & v[j]) for i, j in zip(a.tolist(), b.tolist())), dtype=float, count=len(a))
        return self.formula(inter, self.size[a], self.size[b])

    def expected(self, n_c: np.ndarray, max_pairs: int = 2**23) -> float:
        n_values = len(self.values)
        holders: dict[Hashable, list[int]] = {}
        for c in np.flatnonzero(n_c).tolist():
            for word in self.values[c]:
                holders.setdefault(word, []).append(c)
        groups = [np.array(g) for g in holders.values() if len(g) > 1]
        total = float(n_c.sum() ** 2 - (n_c**2).sum())
        # A pair (c, k) turns up once per word the two sets share: its count is their intersection.
        # Pairs are made for a range of c at a time, so at most about max_pairs are held at once.
        n_pairs = sum(len(g) ** 2 for g in groups)
        bounds = np.linspace(0, n_values, max(1, -(-n_pairs // max_pairs)) + 1).astype(np.int64)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            parts = [(a[:, None] * n_values + g[None, :]).ravel() for g in groups if len(a := g[(g >= lo) & (g < hi)])]
            if not parts:
                continue
            keys, inter = np.unique(np.concatenate(parts), return_counts=True)
            c, k = np.divmod(keys, n_values)
            other = c != k
            c, k, inter = c[other], k[other], inter[other].astype(float)
            d = self.formula(inter, self.size[c], self.size[k])
            total -= float((n_c[c] * n_c[k] * (1 - d)).sum())
        return total


def _alpha(tasks: np.ndarray, labels: np.ndarray, dist: _Distances) -> float:
    """Krippendorff's alpha with any distance, from the coincidence-matrix definition.

    Observed: the coincidences within each unit, as pairs of its (value, count) entries.
    Expected: `dist.expected`, over the pairable values' totals n_c.
    """
    n_values = len(dist.values)
    unit, value, n_uc, m_u = _unit_value_counts(tasks, labels, n_values)
    if not len(unit):
        return float("nan")
    observed = 0.0
    run = np.bincount(unit).max()  # entries per unit, at most
    for offset in range(int(run)):
        i = np.arange(len(unit) - offset)
        j = i + offset
        same = unit[i] == unit[j]
        i, j = i[same], j[same]
        if offset == 0:
            weight = n_uc[i] * (n_uc[i] - 1)
            d = dist.pairs(value[i], value[i])
        else:  # both orders (c, k) and (k, c)
            weight = n_uc[i] * n_uc[j]
            d = dist.pairs(value[i], value[j]) + dist.pairs(value[j], value[i])
        observed += float((weight * d / (m_u[i] - 1)).sum())

    n_c = np.bincount(value, weights=n_uc, minlength=n_values)
    expected = dist.expected(n_c)
    if expected <= 0:
        return float("nan")
    return float(1 - (n_c.sum() - 1) * observed / expected)


def krippendorff_alpha(rows: Any, distance: Callable[[Any, Any], float]) -> float:
    """Krippendorff's alpha for hashable labels with any distance function d(a, b) (d(a, a) = 0
    for a metric; the definition does not need it). NaN when the expected disagreement is 0."""
    tasks, labels, distinct = _coded(rows)
    return _alpha(tasks, labels, _Distances(distinct, distance)) if len(tasks) else float("nan")


def krippendorff_alpha_sets(rows: Any, distance: str | SetDistance = "masi") -> float:
    """Krippendorff's alpha for set-valued labels (e.g. the emotion words of each annotation).

    `distance`: "masi" (Passonneau 2006, the default), "jaccard" (both vectorised), or a
    function of two frozensets. Labels are compared as sets, so word order does not matter.
    """
    tasks, labels, distinct = _coded(rows, as_label=frozenset)
    if not len(tasks):
        return float("nan")
    if isinstance(distance, str):
        if distance not in _SET_DISTANCES:
            raise ValueError(f"unknown set distance {distance!r} (use {', '.join(_SET_DISTANCES)} or a function)")
        dist: _Distances = _SetDistances(distinct, distance)
    else:
        dist = _Distances(distinct, distance)
    return _alpha(tasks, labels, dist)


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
# bootstrap


class BootstrapCI(NamedTuple):
    estimate: float
    low: float
    high: float
    level: float
    n: int


def bootstrap_ci(
    rows: Any, statistic: Callable[[list[Row]], float], n: int = 1000, seed: int = 0, level: float = 0.95
) -> BootstrapCI:
    """Percentile bootstrap interval of `statistic(rows)`, resampling TASKS with replacement.

    Each resample draws as many tasks as there are, with all the labels of each drawn task; a
    task drawn twice counts as two tasks (renamed (draw, task)). Resamples where the statistic
    is NaN are left out of the percentiles (low/high are NaN if all are). Deterministic for a seed.
    """
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    rows = tidy(rows)
    groups = list(rows_by_task(rows).values())
    estimate = float(statistic(rows))
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    for b in range(n):
        drawn = rng.integers(0, len(groups), size=len(groups)) if groups else []
        stats[b] = statistic([((k, t), w, y) for k, g in enumerate(drawn) for t, w, y in groups[g]])
    stats = stats[~np.isnan(stats)]
    if not len(stats):
        return BootstrapCI(estimate, float("nan"), float("nan"), level, n)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return BootstrapCI(estimate, float(low), float(high), level, n)

