"""The pools report: agreement, consensus, vocabulary, time, cost, judge and workers per pool, and
the expert-vs-crowd comparison, as one JSON-serialisable dict (`scripts/report/page.py` renders it).

Data in, figures out:

>>> from label_config.records import LabelRecord
>>> from scripts.pools.dataset import Annotation, Dataset, Decision
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from label_config.concepts import Concepts
from label_config.schema import ATTRIBUTES, OTHER, POOLS, WORD_KINDS
from scripts.pools.dataset import Annotation, Dataset, Decision
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
from scripts.stats.intervals import MIN_CLIPS_FOR_BOOTSTRAP, bootstrap_allowed, wilson, wilson_percent

TOP_PER_KIND = 20
TOP_WORDS = 200
HISTOGRAM_BINS = 20
ERRORS_SHOWN = 100
CATEGORICAL_STATISTICS = ("percent_all_agree", "percent_majority", "fleiss_kappa", "krippendorff_alpha")
PROPORTIONS = ("percent_all_agree", "percent_majority")
"""Statistics that are a share of clips: Wilson intervals. The others (kappa, alpha) get the bootstrap."""
MIN_LABELS_TO_RANK = 5
"""Annotations a worker needs before the report ranks them by agreement or skill (`clesc report --min-labels`).

With fewer, one lucky or unlucky label decides the rank: a worker with 1 annotation agrees with the
consensus on 3 of 3 attributes or on none, and Dawid-Skene gives them an extreme skill. Five
annotations are 15 attribute labels; such workers are listed, unranked, after the ranked ones."""
PER_CLIP_ROWS = 1000
"""Rows of the per-clip expert-vs-crowd table (the clips where the pools differ most first); every
clip is in `clesc export --format jsonl`."""
ONE_POOL_WORDS = 30
"""Words shown per pool among those only that pool used."""


@dataclass(frozen=True)
class Rate:
    """What one pool's work costs: per hour of annotation time (summed lead_time), per annotation, or both.

    `per_hour_placeholder`: the hourly rate is the default, not one the user set (CLESC_RATE_*_PER_HOUR
    unset); the report says so, and a per-annotation rate that was set is then used alone.
    """

    per_hour: float | None = None
    per_annotation: float | None = None
    currency: str = "USD"
    per_hour_placeholder: bool = False


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
        self.lead_times = np.array([t for t in (_lead_time(a) for a in annotations) if t is not None], dtype=float)
        self.word_counts: Counter = Counter()  # every word's annotations, set with the vocabulary
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
                 progress: Callable[[str], None] | None = None, generated_at: str | None = None,
                 min_labels: int = MIN_LABELS_TO_RANK) -> dict[str, Any]:
    """The report on `ds` (see the module docstring for an example; the keys are a contract with
    `scripts/report/page.py`). Figures that cannot be computed are None, never NaN.

    Intervals at `level`: shares of clips or annotations (percent agreement, consensus agreement,
    rejection rates, ...) get Wilson intervals; kappa, alpha and means of per-clip figures get
    percentile bootstrap intervals from `bootstrap` resamples of the CLIPS (all from the same
    resamples; deterministic for `seed`), only where at least MIN_CLIPS_FOR_BOOTSTRAP clips count,
    else [None, None] and a warning. `rates` maps a pool to its Rate. `similarity(pairs)` (e.g.
    `scripts.stats.embeddings.pool_similarity`) gets, per clip both pools described, the two pools'
    words as texts. `progress` is told what is being computed. `generated_at` (an ISO time, given by
    the caller: the figures do not read the clock) is reported as is. Workers with fewer than
    `min_labels` annotations are listed but not ranked.
    """
    say = progress or (lambda message: None)
    rates = dict(rates or {})
    clip_index = {key: i for i, key in enumerate(ds.clips)}
    for a in ds.annotations:  # annotations of clips the dataset lost track of still count
        clip_index.setdefault(a.clip, len(clip_index))
    n_clips = len(clip_index)

    say("coding labels")
    pools = {pool: _PoolLabels([a for a in ds.annotations if a.pool == pool], clip_index) for pool in POOLS}
    intervals = _Intervals(bootstrap)
    report: dict[str, Any] = {
        "source": ds.source,
        "generated_at": generated_at,
        "data_as_of": _as_of(ds),
        "label_studio": {"url": ds.ls_url, "projects": dict(ds.projects)} if ds.ls_url else None,
        "clips": n_clips,
        "clips_in_both": int(np.count_nonzero(np.logical_and(*(np.bincount(p.clip, minlength=n_clips) > 0
                                                                for p in pools.values())))),
        "settings": {"bootstrap": bootstrap, "seed": seed, "level": level,
                     "rates": {pool: asdict(rate) for pool, rate in rates.items()},
                     "intervals": {"proportions": "wilson", "kappa_alpha_means": "percentile bootstrap of clips",
                                   "min_clips_for_bootstrap": MIN_CLIPS_FOR_BOOTSTRAP},
                     "min_labels_to_rank": min_labels},
        "error_count": len(ds.errors),
        "errors": [str(e) for e in ds.errors[:ERRORS_SHOWN]],
    }
    majorities: dict[str, dict[str, np.ndarray]] = {}
    time_range = _time_range(np.concatenate([labels.lead_times for labels in pools.values()]))
    for pool, labels in pools.items():
        say(f"{pool}: agreement")
        section, majorities[pool] = _pool_section(ds, pool, labels, n_clips, rates.get(pool), intervals, seed,
                                                  level=level, min_labels=min_labels, time_range=time_range)
        report[pool] = section
    say("expert vs crowd")
    report["comparison"] = _comparison(ds, report, pools, majorities, list(clip_index), intervals, similarity,
                                       say, level)
    report["warnings"] = _warnings(report, rates)
    report["notes"] = _notes(ds, report)
    say(f"bootstrap: {bootstrap} resamples of {n_clips} clips")
    intervals.fill(bootstrap, seed, level)
    return _plain(report)


class _Intervals:
    """Statistics waiting for their bootstrap interval: all get theirs from the same resamples of
    the clips, one matrix product per chunk of resamples, when `fill` runs. A statistic over fewer
    than MIN_CLIPS_FOR_BOOTSTRAP clips gets none ([None, None])."""

    def __init__(self, resamples: int):
        self.resamples = resamples
        self.waiting: list[tuple[TaskSums, dict, str]] = []

    def add(self, stat: TaskSums, into: dict, key: str, clips: int, methods: dict | None = None) -> float:
        """The estimate of `stat`; into[key] is its interval once `fill` ran, methods[key] says how it is made."""
        into[key] = [None, None]
        if not bootstrap_allowed(clips):
            method = f"none: {clips} clips < {MIN_CLIPS_FOR_BOOTSTRAP}"
        elif self.resamples <= 0:
            method = "none: no bootstrap resamples"
        else:
            method = "bootstrap"
            self.waiting.append((stat, into, key))
        if methods is not None:
            methods[key] = method
        return stat.estimate()

    def fill(self, n: int, seed: int, level: float) -> None:
        if n <= 0 or not self.waiting:
            return
        for (_, into, key), bounds in zip(self.waiting, task_sums_ci([s for s, _, _ in self.waiting], n, seed, level)):
            into[key] = list(bounds)


def _wilson_of(stat: TaskSums, level: float) -> list[float | None]:
    """The Wilson interval, in percent, of a share-of-clips statistic (per_task columns: counted, agreed)."""
    counted, agreed = stat.per_task[:, :2].sum(axis=0)
    return wilson_percent(agreed, counted, level)


def _share(successes: int, n: int, level: float) -> dict[str, Any]:
    """A share with its Wilson interval (as a fraction): {"rate", "ci"}."""
    return {"rate": successes / n if n else None, "ci": list(wilson(successes, n, level))}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _as_of(ds: Dataset) -> str | None:
    """The newest annotation or decision time in the data (ISO, UTC), None where the data has no times."""
    given = {v for a in ds.annotations for v in (a.updated_at, a.created_at) if v}
    given.update(d.decided_at for d in ds.decisions if d.decided_at)
    times = [t for t in map(_parse_time, given) if t]
    return max(times).astimezone(timezone.utc).isoformat() if times else None


def _pool_section(ds: Dataset, pool: str, labels: _PoolLabels, n_clips: int, rate: Rate | None,
                  intervals: _Intervals, seed: int, *, level: float, min_labels: int,
                  time_range: tuple[float, float] | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    annotations = labels.annotations
    clips_of_pool = int(np.count_nonzero(np.bincount(labels.clip, minlength=n_clips)))
    agreement: dict[str, Any] = {}
    consensus: dict[str, Any] = {}
    majorities: dict[str, np.ndarray] = {}
    for name in ATTRIBUTES:
        clip, _, codes = labels.rows(name)
        n_values = len(labels.values[name])
        sizes = np.bincount(clip, minlength=n_clips)
        pairable = int(np.count_nonzero(sizes >= 2))
        ci: dict[str, Any] = {}
        methods: dict[str, str] = {}
        stats = {
            "percent_all_agree": percent_agreement_sums(clip, codes, n_clips, n_values, "all"),
            "percent_majority": percent_agreement_sums(clip, codes, n_clips, n_values, "majority"),
            "fleiss_kappa": fleiss_kappa_sums(clip, codes, n_clips, n_values),
            "krippendorff_alpha": alpha_nominal_sums(clip, codes, n_clips, n_values),
        }
        figures = {}
        for key, stat in stats.items():
            if key in PROPORTIONS:
                figures[key], ci[key], methods[key] = stat.estimate(), _wilson_of(stat, level), "wilson"
            else:
                figures[key] = intervals.add(stat, ci, key, pairable, methods)
        counts = np.bincount(codes, minlength=n_values)
        agreement[name] = {**figures, "ci": ci, "ci_method": methods,
                           "distribution": {v: int(c) for v, c in zip(labels.values[name], counts)},
                           "clips": pairable}
        majorities[name] = majority_codes(clip, codes, n_clips, n_values)
        most_given = majority_codes(clip, codes, n_clips, n_values, strict=False)
        consensus[name] = {"majority": int(np.count_nonzero(majorities[name] >= 0)),
                           "ties": int(np.count_nonzero((most_given < 0) & (sizes > 0))),
                           "clips": int(np.count_nonzero(sizes > 0))}
    pairable_clips = int(np.count_nonzero(np.bincount(labels.clip, minlength=n_clips) >= 2))
    for kind in WORD_KINDS:
        codes, sets = labels.set_codes[kind], labels.sets[kind]
        alpha = alpha_sets_sums(labels.clip, codes, n_clips, sets, "masi", seed=seed)
        identical = identical_sets_sums(labels.clip, codes, n_clips, len(sets))
        ci = {"percent_identical_sets": _wilson_of(identical, level)}
        methods = {"percent_identical_sets": "wilson"}
        agreement[kind] = {
            "krippendorff_alpha": intervals.add(alpha, ci, "krippendorff_alpha", pairable_clips, methods),
            "ci": ci,
            "ci_method": methods,
            "distance": "masi",
            "expected_disagreement": alpha.note or "exact",
            "percent_identical_sets": identical.estimate(),
            "distinct_sets": len(sets),
            "clips": pairable_clips,
        }
    section = {
        "clips": clips_of_pool,
        "annotations": len(annotations),
        "annotators": len(labels.worker_ids),
        "agreement": agreement,
        "consensus": consensus,
        "vocabulary": _vocabulary(labels),
        "time": _time(labels.lead_times, time_range),
    }
    section["cost"] = _cost(rate, section["time"], len(annotations), clips_of_pool)
    decisions = _latest_decisions(d for d in ds.decisions if d.pool == pool)
    section["judge"] = _judge(ds, pool, annotations, decisions, level, min_labels)
    section["workers"] = _workers(labels, majorities, n_clips, ds.emails, decisions, min_labels)
    section["ml_prefill"] = _ml_prefill(ds, pool, labels, majorities, level)
    return section, majorities


def _word_counts(annotations: Sequence[Annotation], kinds: Sequence[str]) -> Counter:
    """How many annotations gave each word of these kinds."""
    every = Counter()
    for kind in kinds:
        every.update(w for a in annotations for w in getattr(a.record, kind))
    return every


def _vocabulary(labels: _PoolLabels) -> dict[str, Any]:
    annotations = labels.annotations
    kinds = (*WORD_KINDS, OTHER)
    counts = {kind: _word_counts(annotations, (kind,)) for kind in kinds}
    n = len(annotations)
    every = Counter()
    for kind in kinds:
        every.update(counts[kind])
    labels.word_counts = every
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


def _time_range(times: np.ndarray) -> tuple[float, float] | None:
    """The lead-time histograms' range, the same for both pools (so their bins compare): from the
    shortest time to the 99th percentile of all times (a few forgotten-tab annotations, hours long,
    would squash it; the last bin holds every time above)."""
    if not len(times):
        return None
    p99 = float(np.percentile(times, 99))
    return float(times.min()), p99 if p99 > times.min() else float(times.max()) + 1


def _time(times: np.ndarray, bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Lead-time figures and histogram of one pool's times (seconds), binned over `bounds`."""
    if not len(times):
        return {"annotations_with_time": 0,
                "lead_time_seconds": dict.fromkeys(("mean", "median", "p10", "p90", "total")),
                "histogram": {"edges": [], "counts": []}}
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    low, top = bounds or _time_range(times)
    counts, edges = np.histogram(np.clip(times, low, top), bins=HISTOGRAM_BINS, range=(low, top))
    return {"annotations_with_time": len(times),
            "lead_time_seconds": {"mean": times.mean(), "median": median, "p10": p10, "p90": p90, "total": times.sum()},
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist(), "last_bin_includes_above": True}}


def _lead_time(a: Annotation) -> float | None:
    t = a.lead_time if a.lead_time is not None else a.record.lead_time
    return float(t) if t is not None and math.isfinite(t) and t >= 0 else None


def _cost(rate: Rate | None, time: Mapping[str, Any], annotations: int, clips: int) -> dict[str, Any]:
    rate = rate or Rate()
    per_hour = rate.per_hour
    if rate.per_hour_placeholder and rate.per_annotation is not None:
        per_hour = None  # a per-annotation rate was set: the placeholder hourly rate is not added to it
    parts = []
    if rate.per_annotation is not None:
        parts.append(rate.per_annotation * annotations)
    hours = time["lead_time_seconds"]["total"]
    if per_hour is not None and hours is not None:
        parts.append(per_hour * hours / 3600)
    total = sum(parts) if parts else None
    return {"currency": rate.currency, "rate_per_hour": per_hour, "rate_per_annotation": rate.per_annotation,
            "rate_per_hour_placeholder": per_hour is not None and rate.per_hour_placeholder,
            "total": total,
            "per_annotation": total / annotations if total is not None and annotations else None,
            "per_clip": total / clips if total is not None and clips else None,
            "annotations_with_time": time["annotations_with_time"]}


def _latest_decisions(decisions: Iterable[Decision]) -> list[Decision]:
    """One decision per annotation, the last one given (ops may change their mind)."""
    latest: dict[tuple[int | None, int], Decision] = {}
    for d in decisions:
        latest[d.task_id, d.annotation_id] = d
    return list(latest.values())


def _judge(ds: Dataset, pool: str, annotations: Sequence[Annotation], decisions: Sequence[Decision],
           level: float, min_labels: int) -> dict[str, Any]:
    judged = [a for a in annotations if a.verdict is not None]
    rejected = [a for a in judged if a.verdict == "reject"]
    decided = {(d.task_id, d.annotation_id) for d in decisions}
    # An upheld rejection whose annotation is no longer in the data (cancelled in LS) still counts:
    # as a judged annotation and as a rejection, of its worker where known.
    absent = [d for d in decisions if d.decision == "uphold" and not d.annotation_present]
    absent_keys = {(d.task_id, d.annotation_id) for d in absent}
    per_worker: dict[str, dict[str, int]] = {}

    def worker_row(worker: str) -> dict[str, int]:
        return per_worker.setdefault(worker, {"annotations": 0, "rejected": 0, "upheld": 0, "overturned": 0})

    for a in judged:
        row = worker_row(a.worker)
        row["annotations"] += 1
        row["rejected"] += a.verdict == "reject"
    for d in decisions:
        if d.worker is not None:
            row = worker_row(d.worker)
            row["upheld" if d.decision == "uphold" else "overturned"] += 1
            if (d.task_id, d.annotation_id) in absent_keys:
                row["annotations"] += 1
                row["rejected"] += 1
    by_annotator = [{"worker": w, "email": ds.emails.get(w), **row, "rate": row["rejected"] / row["annotations"]
                     if row["annotations"] else None, "ranked": row["annotations"] >= min_labels}
                    for w, row in per_worker.items()]
    by_annotator.sort(key=lambda row: (not row["ranked"], -(row["rate"] or 0), -row["rejected"], row["worker"]))
    upheld = sum(d.decision == "uphold" for d in decisions)
    overturned = len(decisions) - upheld
    n_judged, n_rejected = len(judged) + len(absent), len(rejected) + len(absent)
    pending = [a for a in rejected if (a.task_id, a.annotation_id) not in decided] if ds.judged else None
    rate = _share(n_rejected, n_judged, level)
    share_upheld = _share(upheld, upheld + overturned, level)
    return {
        "source": "label-studio" if ds.judged else "rules (computed)" if judged else "not judged",
        "annotations_judged": n_judged,
        "rejected": n_rejected,
        "rejection_rate": rate["rate"],
        "rejection_rate_ci": rate["ci"],
        "by_reason": dict(Counter(code for a in rejected for code in a.reasons).most_common()),
        "task_status": dict(Counter(c.status[pool] for c in ds.clips.values() if pool in c.status).most_common()),
        "by_annotator": by_annotator,
        "decisions": {
            "upheld": upheld,
            "overturned": overturned,
            "upheld_not_in_data": len(absent),
            "unattributed": sum(d.worker is None for d in decisions),
            "pending_review": None if pending is None else len(pending),
            "upheld_share": share_upheld["rate"],
            "upheld_share_ci": share_upheld["ci"],
        },
    }


def _workers(labels: _PoolLabels, majorities: Mapping[str, np.ndarray], n_clips: int, emails: Mapping[str, str],
             decisions: Sequence[Decision], min_labels: int) -> list[dict[str, Any]]:
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
    decided = Counter((d.worker, d.decision) for d in decisions)
    rows = [{"worker": w,
             "email": emails.get(w),
             "annotations": int(annotations[i]),
             "agreement_with_consensus": agreed[i] / counted[i] if counted[i] else None,
             "skill": {name: skills[name][i] for name in ATTRIBUTES},
             "rejected": int(rejected[i]),
             "upheld": decided[w, "uphold"],
             "overturned": decided[w, "overturn"],
             "ranked": bool(annotations[i] >= min_labels)} for i, w in enumerate(labels.worker_ids)]
    rows.sort(key=lambda r: (not r["ranked"], r["agreement_with_consensus"] is None,
                             r["agreement_with_consensus"] or 0.0, r["worker"]))
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


def _ml_prefill(ds: Dataset, pool: str, labels: _PoolLabels, majorities: Mapping[str, np.ndarray],
                level: float) -> dict[str, Any]:
    """The pool against the ML backend's pre-fill (its prediction on the pool's task, Clip.measures):
    per attribute, how often the pool's consensus is the predicted value, and how often an annotator
    changed the pre-filled value (annotations made after the prediction, where both times are known)."""
    predicted: dict[int, Mapping[str, Any]] = {}
    for code, clip in enumerate(ds.clips.values()):  # the clips' codes are their order in ds.clips
        m = clip.measures.get(pool)
        if m and any(m.get(name) for name in ATTRIBUTES):
            predicted[code] = m
    out: dict[str, Any] = {"clips_with_prediction": len(predicted),
                           "model_versions": sorted({str(m.get("model_version")) for m in predicted.values()}),
                           "annotations_before_prediction": 0, "attributes": {}}
    # the annotations of clips with a prediction, less those made before it (their annotator never saw it)
    seen = []
    for i in np.flatnonzero(np.isin(labels.clip, np.fromiter(predicted, dtype=np.int64, count=len(predicted)))):
        a, m = labels.annotations[i], predicted[int(labels.clip[i])]
        made, shown = _parse_time(a.created_at), _parse_time(m.get("created_at"))
        if made is not None and shown is not None and made < shown:
            out["annotations_before_prediction"] += 1
        else:
            seen.append((a, m))
    for name in ATTRIBUTES:
        values = labels.values[name]
        agree = clips = 0
        for code, m in predicted.items():
            value = m.get(name)
            if value and majorities[name][code] >= 0:
                clips += 1
                agree += values[majorities[name][code]] == value
        given = [(getattr(a.record, name), m.get(name)) for a, m in seen]
        given = [(value, shown) for value, shown in given if value and shown]
        compared, changed = len(given), sum(value != shown for value, shown in given)
        agreement, change = _share(agree, clips, level), _share(changed, compared, level)
        out["attributes"][name] = {"clips": clips, "agreement": agreement["rate"], "ci": agreement["ci"],
                                   "annotations": compared, "changed": changed, "change_rate": change["rate"],
                                   "change_ci": change["ci"]}
    return out


# ---------------------------------------------------------------------------------------------
# expert vs crowd


RATIOS = {"distinct_words": ("vocabulary", "distinct_words"),
          "words_per_annotation": ("vocabulary", "words_per_annotation"),
          "seconds_per_annotation": ("time", "lead_time_seconds", "mean"),
          "cost_per_annotation": ("cost", "per_annotation")}
"""The expert/crowd ratios: name -> where each pool section holds the figure."""


def _figure(section: Mapping[str, Any], path: Sequence[str]) -> Any:
    for key in path:
        section = section[key]
    return section


def _comparison(ds: Dataset, report: Mapping[str, Any], pools: Mapping[str, _PoolLabels],
                majorities: Mapping[str, Mapping], clip_keys: Sequence[str], intervals: _Intervals,
                similarity: Callable | None, say: Callable[[str], None], level: float) -> dict[str, Any]:
    expert, crowd = report["expert"], report["crowd"]
    n_clips = len(clip_keys)
    over = {name: (_figure(expert, path), _figure(crowd, path)) for name, path in RATIOS.items()}
    out: dict[str, Any] = {
        "ratios": {name: _divide(e, c) for name, (e, c) in over.items()},  # expert ÷ crowd (kept as it was)
        "ratios_expert_over_crowd": {name: _divide(e, c) for name, (e, c) in over.items()},
        "ratios_crowd_over_expert": {name: _divide(c, e) for name, (e, c) in over.items()},
    }

    agreement = {}
    for name in ATTRIBUTES:
        e, c = majorities["expert"][name], majorities["crowd"][name]
        both = (e >= 0) & (c >= 0)
        values, position = _common_codes(pools, name)
        confusion = np.zeros((len(values), len(values)), dtype=np.int64)
        np.add.at(confusion, (position["expert"][e[both]], position["crowd"][c[both]]), 1)
        same = int(np.count_nonzero(both & (position["expert"][np.maximum(e, 0)] == position["crowd"][np.maximum(c, 0)])))
        share = _share(same, int(both.sum()), level)
        agreement[name] = {"clips": int(both.sum()), "agreement": share["rate"], "ci": share["ci"], "ci_method": "wilson",
                           "confusion": {"labels": values, "expert_by_crowd": confusion.tolist()}}
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
            section[key], methods = {}, {}
            section[key]["mean"] = intervals.add(stat, section[key], "ci", section["clips"], methods)
            section[key]["ci_method"] = methods["ci"]
        out[f"{kind}_overlap"] = section
    out["words_one_pool_only"] = _one_pool_words(pools)
    out["per_clip"] = _per_clip(ds, majorities, pools, clip_keys)

    if similarity is None:
        out["semantic_similarity"] = {"skipped": "no similarity function given (sentence embeddings not requested)"}
    else:
        say("semantic similarity")
        out["semantic_similarity"] = similarity(_texts(pools, clip_keys))
    return out


def _one_pool_words(pools: Mapping[str, _PoolLabels]) -> dict[str, Any]:
    """Per pool, the words (emotion, voice, other) that pool used and the other never did, most used first."""
    counts = {pool: pools[pool].word_counts for pool in POOLS}  # emotion, voice and other words
    out = {}
    for pool in POOLS:
        other = next(p for p in POOLS if p != pool)
        only = Counter({w: n for w, n in counts[pool].items() if w not in counts[other]})
        out[pool] = {"distinct_words": len(only), "of_distinct_words": len(counts[pool]),
                     "uses": sum(only.values()), "top": _top(only, ONE_POOL_WORDS)}
    return out


def task_link(ls_url: str | None, project: int | None, task: int | None) -> str | None:
    """The Label Studio page of a task: {LS url}/projects/{project id}/data?task={task id}.

    >>> task_link("http://127.0.0.1:8080/", 3, 41), task_link(None, 3, 41)
    ('http://127.0.0.1:8080/projects/3/data?task=41', None)
    """
    if not ls_url or project is None or task is None:
        return None
    return f"{ls_url.rstrip('/')}/projects/{project}/data?task={task}"


def _common_codes(pools: Mapping[str, _PoolLabels], name: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """One attribute's values in one order for both pools (the schema's, then any other value given),
    and per pool the position of each of its codes in that order."""
    values = list(ATTRIBUTES[name].values)
    for pool in POOLS:
        values += [v for v in pools[pool].values[name] if v not in values]
    return values, {p: np.array([values.index(v) for v in pools[p].values[name]], dtype=np.int64) for p in POOLS}


def _per_clip(ds: Dataset, majorities: Mapping[str, Mapping[str, np.ndarray]], pools: Mapping[str, _PoolLabels],
              clip_keys: Sequence[str]) -> dict[str, Any]:
    """Each clip's expert and crowd consensus side by side, with links to its tasks in Label Studio:
    the clips where the two consensuses differ on most attributes first, at most PER_CLIP_ROWS."""
    n_clips = len(clip_keys)
    counts = {pool: np.bincount(pools[pool].clip, minlength=n_clips) for pool in POOLS}
    differ = np.zeros(n_clips, dtype=np.int64)
    for name in ATTRIBUTES:
        _, position = _common_codes(pools, name)
        e, c = majorities["expert"][name], majorities["crowd"][name]
        if len(position["expert"]) and len(position["crowd"]):
            differ += (e >= 0) & (c >= 0) & (position["expert"][np.maximum(e, 0)] != position["crowd"][np.maximum(c, 0)])
    labelled = np.flatnonzero((counts["expert"] > 0) | (counts["crowd"] > 0)).tolist()
    order = sorted(labelled, key=lambda i: (-differ[i], clip_keys[i]))[:PER_CLIP_ROWS]
    rows = []
    for i in order:
        key = clip_keys[i]
        clip = ds.clips.get(key)
        named = {pool: {name: pools[pool].values[name][k] if (k := int(majorities[pool][name][i])) >= 0 else None
                        for name in ATTRIBUTES} for pool in POOLS}
        row: dict[str, Any] = {"clip": key, "tasks": {}, "links": {}, "status": {}, "annotations": {},
                               "consensus": {}, "ml": {}}
        for pool in POOLS:
            task = clip.tasks.get(pool) if clip else None
            row["tasks"][pool] = task
            row["links"][pool] = task_link(ds.ls_url, ds.projects.get(pool), task)
            row["status"][pool] = clip.status.get(pool) if clip else None
            row["annotations"][pool] = int(counts[pool][i])
            words = clip.consensus.get(pool, {}) if clip else {}
            row["consensus"][pool] = {**named[pool],
                                      **{kind: list(words[kind]) if isinstance(words.get(kind), (list, tuple)) else None
                                         for kind in WORD_KINDS}}
            measures = clip.measures.get(pool) if clip else None
            row["ml"][pool] = {name: measures.get(name) for name in ATTRIBUTES} if measures else None
        row["agree"] = {name: (x == y if x is not None and y is not None else None)
                        for name, x, y in zip(ATTRIBUTES, named["expert"].values(), named["crowd"].values())}
        row["disagreements"] = int(differ[i])
        rows.append(row)
    return {"total": len(labelled), "shown": len(rows), "order": "most attributes where the two consensuses differ first",
            "rows": rows}


def _warnings(report: Mapping[str, Any], rates: Mapping[str, Rate]) -> list[str]:
    """What a reader must know before trusting the figures: small samples, placeholder rates."""
    out = []
    for pool in POOLS:
        clips = min((report[pool]["agreement"][name]["clips"] for name in ATTRIBUTES), default=0)
        if 0 < clips < MIN_CLIPS_FOR_BOOTSTRAP:
            out.append(f"{pool.capitalize()}: only {clips} clips with 2 or more labels. Kappa and alpha are given "
                       f"without an interval (a bootstrap needs {MIN_CLIPS_FOR_BOOTSTRAP} clips) and the Wilson "
                       f"intervals of the percentages are wide: read the figures as indications.")
    both = min((report["comparison"]["consensus_agreement"][name]["clips"] for name in ATTRIBUTES), default=0)
    if 0 < both < MIN_CLIPS_FOR_BOOTSTRAP:
        out.append(f"Expert vs crowd: only {both} clips with a consensus in both pools; the intervals are wide.")
    placeholders = [pool for pool in POOLS if report[pool]["cost"]["rate_per_hour_placeholder"]]
    if placeholders:
        named = ", ".join(f"CLESC_RATE_{p.upper()}_PER_HOUR = {report[p]['cost']['rate_per_hour']:g}" for p in placeholders)
        out.append(f"Placeholder hourly rates ({named}): the costs and the cost ratio are illustrations until "
                   f"you set the rates you pay.")
    return out


def _notes(ds: Dataset, report: Mapping[str, Any]) -> list[str]:
    """How the data was counted."""
    pending = {pool: report[pool]["judge"]["decisions"]["pending_review"] for pool in POOLS}
    if ds.judged:
        waiting = ", ".join(f"{pool} {n}" for pool, n in pending.items())
        note = (f"Labels still under review are counted: every annotation in the data is in the figures, also "
                f"those the judge proposed to reject that await an ops decision ({waiting}). Upheld rejections "
                f"whose annotations were cancelled in Label Studio count only in the judge's figures.")
    else:
        note = ("Every annotation in the data is counted; the data carries no verdicts of the judge and no ops "
                "decisions, so the judge's figures are the rules judge's, computed for this report.")
    return [note]


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
