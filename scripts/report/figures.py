"""The pools report: agreement, consensus, vocabulary, time, cost, judge and workers per pool, and
the expert-vs-crowd comparison, as one JSON-serialisable dict (`scripts/report/page.py` renders it).

Data in, figures out:

>>> from label_config.records import LabelRecord
>>> from scripts.pools.dataset import Annotation, Dataset
>>> def label(pool, clip, worker, pace, emotion):
...     return Annotation(pool, clip, worker, LabelRecord(pace, "medium", "medium", emotion=emotion), lead_time=30.0)
>>> ds = Dataset(source="example")
>>> for clip in ("c1", "c2"):
...     _ = ds.clip(clip)
>>> ds.annotations = [
...     label("expert", "c1", "e1", "fast", ("angry",)), label("expert", "c1", "e2", "fast", ("angry",)),
...     label("expert", "c1", "e3", "slow", ("calm",)), label("expert", "c2", "e1", "slow", ("sad",)),
...     label("expert", "c2", "e2", "slow", ("sad",)), label("expert", "c2", "e3", "slow", ("sad",)),
...     label("crowd", "c1", "t1", "fast", ("angry",)), label("crowd", "c1", "t2", "normal", ("happy",)),
...     label("crowd", "c1", "t3", "slow", ("angry",)), label("crowd", "c2", "t1", "slow", ("sad",)),
...     label("crowd", "c2", "t2", "slow", ("sad",)), label("crowd", "c2", "t3", "normal", ("sad",))]
>>> report = build_report(ds, bootstrap=200, rates={"crowd": Rate(per_hour=12.0)})
>>> report["expert"]["agreement"]["pace"]["percent_all_agree"], report["crowd"]["consensus"]["pace"]
(50.0, {'majority': 1, 'ties': 1, 'clips': 2})
>>> report["comparison"]["consensus_agreement"]["pace"]["clips"], report["crowd"]["cost"]["total"]
(1, 0.6)
>>> report["comparison"]["emotion_overlap"]["jaccard_words"]["mean"]  # c1: {angry, calm} vs {angry, happy}; c2: 1
0.6666666666666666
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from label_config.concepts import Concepts
from label_config.schema import ATTRIBUTES, OTHER, POOLS, WORD_KINDS
from scripts.pools.dataset import Annotation, Dataset
from scripts.stats.agreement import (
    TaskSums,
    alpha_nominal_sums,
    alpha_sets_sums,
    fleiss_kappa_sums,
    identical_sets_sums,
    majority_codes,
    percent_agreement_sums,
    task_sums_ci,
)
from scripts.stats.dawid_skene import DawidSkene

TOP_PER_KIND = 20
TOP_WORDS = 200
HISTOGRAM_BINS = 20
ERRORS_SHOWN = 100
CATEGORICAL_STATISTICS = ("percent_all_agree", "percent_majority", "fleiss_kappa", "krippendorff_alpha")


@dataclass(frozen=True)
class Rate:
    """What one pool's work costs: per hour of annotation time (summed lead_time), per annotation, or both."""

    per_hour: float | None = None
    per_annotation: float | None = None
    currency: str = "USD"


# ---------------------------------------------------------------------------------------------
# one pool's labels as integer arrays


class _PoolLabels:
    """One pool's annotations coded once: clip and worker codes per annotation, each attribute's
    value codes (the schema's values first), and each word kind's set codes (distinct sets once)."""

    def __init__(self, annotations: Sequence[Annotation], clip_index: Mapping[str, int]):
        self.annotations = annotations
        self.clip = np.fromiter((clip_index[a.clip] for a in annotations), dtype=np.int64, count=len(annotations))
        worker_index: dict[str, int] = {}
        self.worker = np.fromiter((worker_index.setdefault(a.worker, len(worker_index)) for a in annotations),
                                  dtype=np.int64, count=len(annotations))
        self.worker_ids = list(worker_index)
        self.values: dict[str, list[str]] = {}
        self.labels: dict[str, np.ndarray] = {}  # code per annotation, -1 where missing
        for name, attribute in ATTRIBUTES.items():
            index = {v: i for i, v in enumerate(attribute.values)}
            codes = np.fromiter((index.setdefault(v, len(index)) if v else -1
                                 for v in (getattr(a.record, name) for a in annotations)),
                                dtype=np.int64, count=len(annotations))
            self.values[name], self.labels[name] = list(index), codes
        self.sets: dict[str, list[frozenset]] = {}
        self.set_codes: dict[str, np.ndarray] = {}
        for kind in WORD_KINDS:
            index_of: dict[frozenset, int] = {}
            self.set_codes[kind] = np.fromiter(
                (index_of.setdefault(frozenset(getattr(a.record, kind)), len(index_of)) for a in annotations),
                dtype=np.int64, count=len(annotations))
            self.sets[kind] = list(index_of)

    def rows(self, attribute: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clip, worker, label) codes of the annotations that have a value for `attribute`."""
        labels = self.labels[attribute]
        given = labels >= 0
        return self.clip[given], self.worker[given], labels[given]


# ---------------------------------------------------------------------------------------------
# the report


def build_report(ds: Dataset, *, rates: Mapping[str, Rate] | None = None, bootstrap: int = 1000, seed: int = 0,
                 level: float = 0.95, similarity: Callable[..., dict] | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The report on `ds` (see the module docstring for an example; the keys are a contract with
    `scripts/report/page.py`). Figures that cannot be computed are None, never NaN.

    Confidence intervals are percentile bootstrap intervals at `level` from `bootstrap` resamples of
    the CLIPS (all statistics from the same resamples; deterministic for `seed`). `rates` maps a pool
    to its Rate. `similarity(pairs)` (e.g. `scripts.stats.embeddings.pool_similarity`) gets, per clip both
    pools described, the two pools' words as texts. `progress` is told what is being computed.
    """
    say = progress or (lambda message: None)
    rates = dict(rates or {})
    clip_index = {key: i for i, key in enumerate(ds.clips)}
    for a in ds.annotations:  # annotations of clips the dataset lost track of still count
        clip_index.setdefault(a.clip, len(clip_index))
    n_clips = len(clip_index)

    say("coding labels")
    pools = {pool: _PoolLabels([a for a in ds.annotations if a.pool == pool], clip_index) for pool in POOLS}
    intervals = _Intervals()
    report: dict[str, Any] = {
        "source": ds.source,
        "clips": n_clips,
        "clips_in_both": int(np.count_nonzero(np.logical_and(*(np.bincount(p.clip, minlength=n_clips) > 0
                                                                for p in pools.values())))),
        "settings": {"bootstrap": bootstrap, "seed": seed, "level": level,
                     "rates": {pool: asdict(rate) for pool, rate in rates.items()}},
        "error_count": len(ds.errors),
        "errors": [str(e) for e in ds.errors[:ERRORS_SHOWN]],
    }
    majorities: dict[str, dict[str, np.ndarray]] = {}
    for pool, labels in pools.items():
        say(f"{pool}: agreement")
        section, majorities[pool] = _pool_section(ds, pool, labels, n_clips, rates.get(pool), intervals, seed)
        report[pool] = section
    say("expert vs crowd")
    report["comparison"] = _comparison(report, pools, majorities, list(clip_index), intervals, similarity, say)
    say(f"bootstrap: {bootstrap} resamples of {n_clips} clips")
    intervals.fill(bootstrap, seed, level)
    return _plain(report)


class _Intervals:
    """Statistics waiting for their bootstrap interval: all get theirs from the same resamples of
    the clips, one matrix product per chunk of resamples, when `fill` runs."""

    def __init__(self):
        self.waiting: list[tuple[TaskSums, dict, str]] = []

    def add(self, stat: TaskSums, into: dict, key: str) -> float:
        into[key] = [None, None]
        self.waiting.append((stat, into, key))
        return stat.estimate()

    def fill(self, n: int, seed: int, level: float) -> None:
        if n <= 0 or not self.waiting:
            return
        for (_, into, key), bounds in zip(self.waiting, task_sums_ci([s for s, _, _ in self.waiting], n, seed, level)):
            into[key] = list(bounds)


def _pool_section(ds: Dataset, pool: str, labels: _PoolLabels, n_clips: int, rate: Rate | None,
                  intervals: _Intervals, seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    annotations = labels.annotations
    clips_of_pool = int(np.count_nonzero(np.bincount(labels.clip, minlength=n_clips)))
    agreement: dict[str, Any] = {}
    consensus: dict[str, Any] = {}
    majorities: dict[str, np.ndarray] = {}
    for name in ATTRIBUTES:
        clip, _, codes = labels.rows(name)
        n_values = len(labels.values[name])
        ci: dict[str, Any] = {}
        stats = {
            "percent_all_agree": percent_agreement_sums(clip, codes, n_clips, n_values, "all"),
            "percent_majority": percent_agreement_sums(clip, codes, n_clips, n_values, "majority"),
            "fleiss_kappa": fleiss_kappa_sums(clip, codes, n_clips, n_values),
            "krippendorff_alpha": alpha_nominal_sums(clip, codes, n_clips, n_values),
        }
        figures = {key: intervals.add(stat, ci, key) for key, stat in stats.items()}
        sizes = np.bincount(clip, minlength=n_clips)
        counts = np.bincount(codes, minlength=n_values)
        agreement[name] = {**figures, "ci": ci,
                           "distribution": {v: int(c) for v, c in zip(labels.values[name], counts)},
                           "clips": int(np.count_nonzero(sizes >= 2))}
        majorities[name] = majority_codes(clip, codes, n_clips, n_values)
        most_given = majority_codes(clip, codes, n_clips, n_values, strict=False)
        consensus[name] = {"majority": int(np.count_nonzero(majorities[name] >= 0)),
                           "ties": int(np.count_nonzero((most_given < 0) & (sizes > 0))),
                           "clips": int(np.count_nonzero(sizes > 0))}
    for kind in WORD_KINDS:
        codes, sets = labels.set_codes[kind], labels.sets[kind]
        alpha = alpha_sets_sums(labels.clip, codes, n_clips, sets, "masi", seed=seed)
        ci = {}
        agreement[kind] = {
            "krippendorff_alpha": intervals.add(alpha, ci, "krippendorff_alpha"),
            "ci": ci,
            "distance": "masi",
            "expected_disagreement": alpha.note or "exact",
            "percent_identical_sets": identical_sets_sums(labels.clip, codes, n_clips, len(sets)).estimate(),
            "distinct_sets": len(sets),
        }
    section = {
        "clips": clips_of_pool,
        "annotations": len(annotations),
        "annotators": len(labels.worker_ids),
        "agreement": agreement,
        "consensus": consensus,
        "vocabulary": _vocabulary(annotations),
        "time": _time(annotations),
    }
    section["cost"] = _cost(rate, section["time"], len(annotations), clips_of_pool)
    section["judge"] = _judge(ds, pool, annotations)
    section["workers"] = _workers(labels, majorities, n_clips)
    return section, majorities


def _vocabulary(annotations: Sequence[Annotation]) -> dict[str, Any]:
    kinds = (*WORD_KINDS, OTHER)
    counts = {kind: Counter(w for a in annotations for w in getattr(a.record, kind)) for kind in kinds}
    n = len(annotations)
    every = Counter()
    for kind in kinds:
        every.update(counts[kind])
    total_words = sum(every.values())
    return {
        "distinct_words": len(every),
        "words_per_annotation": total_words / n if n else None,
        "by_kind": {kind: {"distinct_words": len(counts[kind]),
                           "words_per_annotation": sum(counts[kind].values()) / n if n else None,
                           "top": _top(counts[kind], TOP_PER_KIND)} for kind in kinds},
        "top_words": _top(every, TOP_WORDS),
    }


def _top(counts: Counter, n: int) -> list[list[Any]]:
    """The n most given words, most given first, ties in alphabetical order."""
    return [[w, c] for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]]


def _time(annotations: Sequence[Annotation]) -> dict[str, Any]:
    times = np.array([t for t in (_lead_time(a) for a in annotations) if t is not None], dtype=float)
    if not len(times):
        return {"annotations_with_time": 0,
                "lead_time_seconds": dict.fromkeys(("mean", "median", "p10", "p90", "total")),
                "histogram": {"edges": [], "counts": []}}
    p10, median, p90, p99 = np.percentile(times, [10, 50, 90, 99])
    # A few forgotten-tab annotations (hours) would squash the histogram: the last bin holds all
    # times above the 99th percentile.
    top = p99 if p99 > times.min() else times.max() + 1
    counts, edges = np.histogram(np.minimum(times, top), bins=HISTOGRAM_BINS, range=(times.min(), top))
    return {"annotations_with_time": len(times),
            "lead_time_seconds": {"mean": times.mean(), "median": median, "p10": p10, "p90": p90, "total": times.sum()},
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist(), "last_bin_includes_above": True}}


def _lead_time(a: Annotation) -> float | None:
    t = a.lead_time if a.lead_time is not None else a.record.lead_time
    return float(t) if t is not None and math.isfinite(t) and t >= 0 else None


def _cost(rate: Rate | None, time: Mapping[str, Any], annotations: int, clips: int) -> dict[str, Any]:
    rate = rate or Rate()
    parts = []
    if rate.per_annotation is not None:
        parts.append(rate.per_annotation * annotations)
    hours = time["lead_time_seconds"]["total"]
    if rate.per_hour is not None and hours is not None:
        parts.append(rate.per_hour * hours / 3600)
    total = sum(parts) if parts else None
    return {"currency": rate.currency, "rate_per_hour": rate.per_hour, "rate_per_annotation": rate.per_annotation,
            "total": total,
            "per_annotation": total / annotations if total is not None and annotations else None,
            "per_clip": total / clips if total is not None and clips else None,
            "annotations_with_time": time["annotations_with_time"]}


def _judge(ds: Dataset, pool: str, annotations: Sequence[Annotation]) -> dict[str, Any]:
    judged = [a for a in annotations if a.verdict is not None]
    rejected = [a for a in judged if a.verdict == "reject"]
    per_worker: dict[str, list[int]] = {}
    for a in judged:
        counts = per_worker.setdefault(a.worker, [0, 0])
        counts[0] += 1
        counts[1] += a.verdict == "reject"
    by_annotator = [{"worker": w, "annotations": n, "rejected": r, "rate": r / n} for w, (n, r) in per_worker.items()]
    by_annotator.sort(key=lambda row: (-row["rate"], -row["rejected"], row["worker"]))
    return {
        "source": "label-studio" if ds.judged else "rules (computed)" if judged else "not judged",
        "annotations_judged": len(judged),
        "rejected": len(rejected),
        "rejection_rate": len(rejected) / len(judged) if judged else None,
        "by_reason": dict(Counter(code for a in rejected for code in a.reasons).most_common()),
        "task_status": dict(Counter(c.status[pool] for c in ds.clips.values() if pool in c.status).most_common()),
        "by_annotator": by_annotator,
    }


def _workers(labels: _PoolLabels, majorities: Mapping[str, np.ndarray], n_clips: int) -> list[dict[str, Any]]:
    n_workers = len(labels.worker_ids)
    agreed = np.zeros(n_workers)
    counted = np.zeros(n_workers)
    skills: dict[str, np.ndarray] = {}
    for name in ATTRIBUTES:
        clip, worker, codes = labels.rows(name)
        majority = majorities[name][clip]
        has = majority >= 0
        counted += np.bincount(worker[has], minlength=n_workers)
        agreed += np.bincount(worker[has], weights=(codes[has] == majority[has]), minlength=n_workers)
        skills[name] = _skill(clip, worker, codes, n_workers)
    annotations = np.bincount(labels.worker, minlength=n_workers)
    rejected = np.bincount(labels.worker, weights=[a.verdict == "reject" for a in labels.annotations],
                           minlength=n_workers) if n_workers else np.zeros(0)
    rows = [{"worker": w,
             "annotations": int(annotations[i]),
             "agreement_with_consensus": agreed[i] / counted[i] if counted[i] else None,
             "skill": {name: skills[name][i] for name in ATTRIBUTES},
             "rejected": int(rejected[i])} for i, w in enumerate(labels.worker_ids)]
    rows.sort(key=lambda r: (r["agreement_with_consensus"] is None, r["agreement_with_consensus"] or 0.0, r["worker"]))
    return rows


def _skill(clip: np.ndarray, worker: np.ndarray, codes: np.ndarray, n_workers: int) -> np.ndarray:
    """Each worker's Dawid-Skene skill on one attribute (NaN for a worker with no label of it)."""
    out = np.full(n_workers, np.nan)
    if not len(clip):
        return out
    tasks = np.unique(clip, return_inverse=True)[1]
    given, compact = np.unique(codes, return_inverse=True)
    present, workers = np.unique(worker, return_inverse=True)
    model = DawidSkene().fit_codes(tasks, workers, compact)
    out[present] = model.skill_codes()
    return out


# ---------------------------------------------------------------------------------------------
# expert vs crowd


def _comparison(report: Mapping[str, Any], pools: Mapping[str, _PoolLabels], majorities: Mapping[str, Mapping],
                clip_keys: Sequence[str], intervals: _Intervals, similarity: Callable | None,
                say: Callable[[str], None]) -> dict[str, Any]:
    expert, crowd = report["expert"], report["crowd"]
    n_clips = len(clip_keys)
    out: dict[str, Any] = {"ratios": {
        "distinct_words": _divide(expert["vocabulary"]["distinct_words"], crowd["vocabulary"]["distinct_words"]),
        "words_per_annotation": _divide(expert["vocabulary"]["words_per_annotation"],
                                        crowd["vocabulary"]["words_per_annotation"]),
        "seconds_per_annotation": _divide(expert["time"]["lead_time_seconds"]["mean"],
                                          crowd["time"]["lead_time_seconds"]["mean"]),
        "cost_per_annotation": _divide(expert["cost"]["per_annotation"], crowd["cost"]["per_annotation"]),
    }}

    agreement = {}
    for name, attribute in ATTRIBUTES.items():
        e, c = majorities["expert"][name], majorities["crowd"][name]
        both = (e >= 0) & (c >= 0)
        stat = TaskSums(np.column_stack([both, both & (e == c)]).astype(float),
                        lambda s: np.where(s[..., 0] > 0, s[..., 1] / np.maximum(s[..., 0], 1), np.nan))
        values = list(attribute.values)
        for pool in POOLS:
            values += [v for v in pools[pool].values[name] if v not in values]
        position = {p: np.array([values.index(v) for v in pools[p].values[name]], dtype=np.int64) for p in POOLS}
        confusion = np.zeros((len(values), len(values)), dtype=np.int64)
        np.add.at(confusion, (position["expert"][e[both]], position["crowd"][c[both]]), 1)
        agreement[name] = {"clips": int(both.sum())}
        agreement[name]["agreement"] = intervals.add(stat, agreement[name], "ci")
        agreement[name]["confusion"] = {"labels": values, "expert_by_crowd": confusion.tolist()}
    out["consensus_agreement"] = agreement

    say("word overlap")
    concepts = Concepts()
    for kind in WORD_KINDS:
        words = {pool: _words_per_clip(pools[pool], (kind,), n_clips) for pool in POOLS}
        figures = np.zeros((n_clips, 3))
        for i, (a, b) in enumerate(zip(words["expert"], words["crowd"])):
            if a and b:
                figures[i] = 1.0, len(a & b) / len(a | b), _jaccard({concepts.name(w) for w in a}, {concepts.name(w) for w in b})
        section: dict[str, Any] = {"clips": int(figures[:, 0].sum())}
        for column, key in ((1, "jaccard_words"), (2, "jaccard_concepts")):
            stat = TaskSums(figures[:, [0, column]],
                            lambda s: np.where(s[..., 0] > 0, s[..., 1] / np.maximum(s[..., 0], 1), np.nan))
            section[key] = {}
            section[key]["mean"] = intervals.add(stat, section[key], "ci")
        out[f"{kind}_overlap"] = section

    if similarity is None:
        out["semantic_similarity"] = {"skipped": "no similarity function given (sentence embeddings not requested)"}
    else:
        say("semantic similarity")
        out["semantic_similarity"] = similarity(_texts(pools, clip_keys))
    return out


def _texts(pools: Mapping[str, _PoolLabels], keys: Sequence[str]) -> dict[str, tuple[str, str]]:
    """clip -> (expert text, crowd text): each pool's words for the clip (emotion, voice, other),
    each once, most given first, joined by ', '; clips both pools annotated only (a text may be empty)."""
    n_clips = len(keys)
    counted: dict[str, list[Counter | None]] = {pool: [None] * n_clips for pool in POOLS}
    for pool in POOLS:
        for code, a in zip(pools[pool].clip.tolist(), pools[pool].annotations):
            if counted[pool][code] is None:
                counted[pool][code] = Counter()
            counted[pool][code].update(dict.fromkeys((*a.record.emotion, *a.record.voice, *a.record.other), 1))

    def text(counts: Counter) -> str:
        return ", ".join(w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    return {keys[i]: (text(counted["expert"][i]), text(counted["crowd"][i]))
            for i in range(n_clips) if counted["expert"][i] is not None and counted["crowd"][i] is not None}


def _words_per_clip(labels: _PoolLabels, kinds: Sequence[str], n_clips: int) -> list[set[str]]:
    """Per clip, the union of the pool's annotators' words of these kinds."""
    out: list[set[str]] = [set() for _ in range(n_clips)]
    for code, a in zip(labels.clip.tolist(), labels.annotations):
        for kind in kinds:
            out[code].update(getattr(a.record, kind))
    return out


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _divide(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


def _plain(value: Any) -> Any:
    """JSON-ready: numpy numbers to Python, NaN and infinities to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
