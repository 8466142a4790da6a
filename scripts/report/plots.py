"""The report's plots: one PNG per figure, drawn with matplotlib (Agg, no display) from the report dict.

Any figure may be None and any section missing: a plot without data returns None and is not drawn.
User text (worker ids, words) is shown as plain text (no mathtext).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from label_config.schema import CATEGORICAL, POOLS, WORD_KINDS  # noqa: E402
from scripts.stats.intervals import MIN_CLIPS_FOR_BOOTSTRAP  # noqa: E402

log = logging.getLogger(__name__)

COLOURS = {"expert": "#1f77b4", "crowd": "#ff7f0e"}
DPI = 100
LOWEST_WORKERS = 20
TOP_WORDS = 20


# --- reading the report safely ----------------------------------------------------------------


def get(data: Any, *keys: Any) -> Any:
    """data[k1][k2]... or None when any step is missing or not a mapping/list."""
    for key in keys:
        if isinstance(data, Mapping):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def number(x: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = number(value[0]), number(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def counted_pairs(items: Any) -> list[tuple[str, float]]:
    """[[word, count], ...] -> [(word, count)] with positive finite counts."""
    out = []
    for item in items or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            n = number(item[1])
            if n is not None and n > 0 and item[0] is not None:
                out.append((str(item[0]), n))
    return out


def _plain(text: Any, limit: int = 40) -> str:
    """User text as a matplotlib label: no mathtext ('$' escaped), bounded length."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


# --- plots ------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight")  # "tight": legends outside the axes too
    return path


def _integer_ticks(axis: Any) -> None:
    """Counts have whole-number ticks only."""
    axis.set_major_locator(MaxNLocator(integer=True))


def _legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend to the right of the axes, never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0, **kwargs)


def _agreement_title(report: Mapping) -> str:
    clips = [n for pool in POOLS for attr in CATEGORICAL
             if (n := number(get(report, pool, "agreement", attr, "clips"))) is not None]
    few = bool(clips) and min(clips) < MIN_CLIPS_FOR_BOOTSTRAP
    return ("Agreement within each pool (95% bootstrap CI" + (f"; none under {MIN_CLIPS_FOR_BOOTSTRAP} clips)" if few else ")"))


def _plot_agreement(report: Mapping, path: Path, title: str) -> Path | None:
    """Fleiss' kappa (pace/pitch/volume) and Krippendorff's alpha (all five) per pool, with CIs; one y axis."""
    panels = [("fleiss_kappa", "Fleiss' kappa", CATEGORICAL), ("krippendorff_alpha", "Krippendorff's alpha", CATEGORICAL + WORD_KINDS)]
    data = {}
    for metric, _, attrs in panels:
        for pool in POOLS:
            for attr in attrs:
                v = number(get(report, pool, "agreement", attr, metric))
                if v is not None:
                    data[metric, pool, attr] = (v, interval(get(report, pool, "agreement", attr, "ci", metric)))
    if not data:
        return None
    low = min([-0.1] + [min(v, ci[0] if ci else v) for v, ci in data.values()])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 5]}, sharey=True)
    width = 0.38
    for ax, (metric, panel, attrs) in zip(axes, panels):
        x = np.arange(len(attrs))
        for k, pool in enumerate(POOLS):
            vals, lows, highs = [], [], []
            for attr in attrs:
                v, ci = data.get((metric, pool, attr), (None, None))
                vals.append(np.nan if v is None else v)
                lows.append(0 if v is None or ci is None else max(v - ci[0], 0))
                highs.append(0 if v is None or ci is None else max(ci[1] - v, 0))
            ax.bar(x + (k - 0.5) * width, vals, width, yerr=[lows, highs], capsize=3, label=pool, color=COLOURS[pool])
        ax.set_xticks(x, attrs)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(panel)
        ax.set_ylim(low - 0.05, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xlabel("emotion, voice: MASI distance", fontsize=8, color="grey")
    _legend_outside(axes[1])
    fig.suptitle(title)
    return _save(fig, path)


CONSENSUS_TITLE = "Consensus agreement, expert vs crowd (95% Wilson CI)"


def _plot_consensus(report: Mapping, path: Path, title: str) -> Path | None:
    attrs, vals, lows, highs, clips = [], [], [], [], []
    for attr in CATEGORICAL:
        v = number(get(report, "comparison", "consensus_agreement", attr, "agreement"))
        if v is None:
            continue
        ci = interval(get(report, "comparison", "consensus_agreement", attr, "ci"))
        attrs.append(attr)
        vals.append(v)
        lows.append(0 if ci is None else max(v - ci[0], 0))
        highs.append(0 if ci is None else max(ci[1] - v, 0))
        n = get(report, "comparison", "consensus_agreement", attr, "clips")
        clips.append(n if isinstance(n, int) else None)
    if not attrs:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(attrs, vals, yerr=[lows, highs], capsize=4, color="#2ca02c")
    ax.set_xticks(range(len(attrs)), [f"{a}\n({n} clips)" if n is not None else a for a, n in zip(attrs, clips)])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of clips where the consensuses agree")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


CONFUSION_TITLE = "Consensus: expert (rows) by crowd (columns), clips"


def _plot_confusion(report: Mapping, path: Path, title: str) -> Path | None:
    mats = []
    for attr in CATEGORICAL:
        labels = get(report, "comparison", "consensus_agreement", attr, "confusion", "labels")
        counts = get(report, "comparison", "consensus_agreement", attr, "confusion", "expert_by_crowd")
        if not isinstance(labels, list) or not labels or not isinstance(counts, list):
            continue
        try:
            m = np.array([[number(c) or 0 for c in row] for row in counts], dtype=float)
        except TypeError:
            continue
        if m.shape != (len(labels), len(labels)):
            continue
        mats.append((attr, [_plain(lab, 16) for lab in labels], m))
    if not mats:
        return None
    top = max(max(m.max() for _, _, m in mats), 1)  # one colour scale for the three
    fig, axes = plt.subplots(1, len(mats), figsize=(4.3 * len(mats), 4), squeeze=False)
    for ax, (attr, labels, m) in zip(axes[0], mats):
        ax.imshow(m, cmap="Blues", vmin=0, vmax=top)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("crowd consensus")
        ax.set_ylabel("expert consensus")
        ax.set_title(attr)
        for (i, j), c in np.ndenumerate(m):
            ax.text(j, i, f"{c:g}", ha="center", va="center", fontsize=8, color="white" if c > top / 2 else "black")
    fig.suptitle(title)
    return _save(fig, path)


def _plot_wordcloud(report: Mapping, pool: str, path: Path, title: str) -> Path | None:
    freqs: dict[str, float] = {}
    for word, n in counted_pairs(get(report, pool, "vocabulary", "top_words")):
        freqs[word] = freqs.get(word, 0) + n
    if not freqs:
        return None
    from wordcloud import WordCloud

    cloud = WordCloud(width=800, height=400, background_color="white", colormap="viridis",
                      random_state=0, prefer_horizontal=0.9).generate_from_frequencies(freqs)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.imshow(cloud.to_array(), interpolation="bilinear")
    ax.axis("off")
    ax.set_title(title)
    return _save(fig, path)


def _top_words(report: Mapping, pool: str) -> list[tuple[str, float]]:
    return counted_pairs(get(report, pool, "vocabulary", "top_words"))[:TOP_WORDS]


def _plot_top_words(report: Mapping, pool: str, path: Path, title: str) -> Path | None:
    words = _top_words(report, pool)
    if not words:
        return None
    most = max(n for p in POOLS for _, n in _top_words(report, p))  # the same x axis in both pools' charts
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(words) + 1.2))
    ax.barh([_plain(w, 30) for w, _ in words][::-1], [n for _, n in words][::-1], color=COLOURS[pool])
    ax.set_xlim(0, most * 1.05)
    _integer_ticks(ax.xaxis)
    ax.set_xlabel("annotations using the word")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _histogram(edges: Any, counts: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if not isinstance(edges, list) or not isinstance(counts, list) or not counts or len(edges) != len(counts) + 1:
        return None
    e = [number(x) for x in edges]
    c = [number(x) for x in counts]
    if any(x is None for x in e) or any(x is None for x in c) or sum(c) <= 0:
        return None
    return np.array(e), np.array(c)


def _lead_times(report: Mapping, pool: str) -> tuple[np.ndarray, np.ndarray] | None:
    return _histogram(get(report, pool, "time", "histogram", "edges"), get(report, pool, "time", "histogram", "counts"))


def _plot_lead_time(report: Mapping, pool: str, path: Path, title: str) -> Path | None:
    hist = _lead_times(report, pool)
    if hist is None:
        return None
    edges, counts = hist
    both = [h for h in (_lead_times(report, p) for p in POOLS) if h is not None]  # shared axes
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.stairs(counts, edges, fill=True, color=COLOURS[pool], alpha=0.8)
    for stat, style in (("median", "-"), ("mean", "--")):
        v = number(get(report, pool, "time", "lead_time_seconds", stat))
        if v is not None and edges[0] <= v <= edges[-1]:
            ax.axvline(v, color="black", ls=style, lw=1, label=f"{stat} {v:.1f} s")
    ax.set_xlim(min(e[0] for e, _ in both), max(e[-1] for e, _ in both))
    ax.set_ylim(0, max(c.max() for _, c in both) * 1.08)
    _integer_ticks(ax.yaxis)
    ax.set_xlabel("lead time per annotation (s); the last bin holds every longer time")
    ax.set_ylabel("annotations")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        _legend_outside(ax)
    return _save(fig, path)


def _reasons(report: Mapping, pool: str) -> list[tuple[str, float]]:
    by_reason = get(report, pool, "judge", "by_reason")
    if not isinstance(by_reason, Mapping):
        return []
    items = sorted(((str(k), number(v)) for k, v in by_reason.items()), key=lambda kv: -(kv[1] or 0))
    return [(k, v) for k, v in items if v is not None and v > 0]


def _rejections_title(report: Mapping, pool: str) -> str:
    judged = get(report, pool, "judge", "annotations_judged")
    return f"{pool}: judge's reasons to reject" + (f" ({judged} annotations judged)" if isinstance(judged, int) else "")


def _plot_rejections(report: Mapping, pool: str, path: Path, title: str) -> Path | None:
    items = _reasons(report, pool)
    if not items:
        return None
    most = max(v for p in POOLS for _, v in _reasons(report, p))
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(items) + 1.4))
    ax.barh([_plain(k, 30) for k, _ in items][::-1], [v for _, v in items][::-1], color=COLOURS[pool])
    ax.set_xlim(0, most * 1.05)
    _integer_ticks(ax.xaxis)
    ax.set_xlabel("annotations")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _similarity_title(report: Mapping) -> str:
    n = get(report, "comparison", "semantic_similarity", "clips")
    return "Expert vs crowd descriptions: same clip vs random pairs" + (f" ({n} clips)" if isinstance(n, int) else "")


def _plot_similarity(report: Mapping, path: Path, title: str) -> Path | None:
    sim = get(report, "comparison", "semantic_similarity")
    if not isinstance(sim, Mapping) or "skipped" in sim:
        return None
    edges = get(sim, "histogram", "edges")
    same = _histogram(edges, get(sim, "histogram", "same_clip"))
    rand = _histogram(edges, get(sim, "histogram", "random_pairs"))
    if same is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for hist, label, colour, key in ((same, "same clip", "#2ca02c", "same_clip"), (rand, "random pairs of clips", "#7f7f7f", "random_pairs")):
        if hist is None:
            continue
        e, c = hist
        ax.stairs(c / c.sum(), e, fill=key == "same_clip", alpha=0.6 if key == "same_clip" else 1, color=colour, lw=2, label=label)
        mean = number(get(sim, key, "mean"))
        if mean is not None:
            ax.axvline(mean, color=colour, ls="--", lw=1, label=f"mean, {label}")
    ax.set_xlabel(f"cosine similarity of expert and crowd words ({_plain(sim.get('model', 'embeddings'))})")
    ax.set_ylabel("share of clips")
    ax.set_title(title)
    _legend_outside(ax)
    return _save(fig, path)


def worker_label(row: Mapping) -> str:
    """How the report names a worker: the LS user's e-mail where known, else the worker id."""
    email = get(row, "email")
    return str(email) if isinstance(email, str) and email else str(get(row, "worker"))


def _lowest_workers(report: Mapping) -> list[dict[str, Any]]:
    """The ranked workers (enough labels) of both pools who agree least with their pool's consensus."""
    rows = []
    for pool in POOLS:
        workers = get(report, pool, "workers")
        for w in workers if isinstance(workers, list) else []:
            v = number(get(w, "agreement_with_consensus"))
            if v is not None and get(w, "ranked") is not False:
                rows.append({"pool": pool, "worker": worker_label(w), "agreement": v,
                             "annotations": get(w, "annotations"), "rejected": get(w, "rejected")})
    rows.sort(key=lambda r: (r["agreement"], r["pool"], r["worker"]))
    return rows[:LOWEST_WORKERS]


def _workers_title(report: Mapping) -> str:
    rows = _lowest_workers(report)
    min_labels = get(report, "settings", "min_labels_to_rank")
    each = f" (at least {min_labels} annotations each)" if isinstance(min_labels, int) else ""
    if len(rows) == LOWEST_WORKERS:
        return f"The {len(rows)} ranked workers who agree least with their pool's consensus{each}"
    return f"All {len(rows)} ranked workers by agreement with their pool's consensus{each}"


def _plot_workers(report: Mapping, path: Path, title: str) -> Path | None:
    rows = _lowest_workers(report)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(rows) + 1.4))
    labels = [f"{_plain(r['worker'], 32)} ({r['pool']})" for r in rows][::-1]
    ax.barh(range(len(rows)), [r["agreement"] for r in rows][::-1], color=[COLOURS[r["pool"]] for r in rows][::-1])
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement with the pool's consensus")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


@dataclass(frozen=True)
class Plot:
    """One figure of the page: its file, its title (drawn on it) and its caption (the title, then what it shows)."""

    name: str
    title: str
    explanation: str
    draw: Callable[[Path, str], Path | None]

    @property
    def caption(self) -> str:
        return f"{self.title}. {self.explanation}"


def _plots(report: Mapping) -> list[Plot]:
    """The figures, in page order. Captions repeat the titles, so the two say the same numbers."""
    plots = [
        Plot("agreement.png", _agreement_title(report),
             "Fleiss' kappa and Krippendorff's alpha per attribute within each pool, on one axis.",
             lambda p, t: _plot_agreement(report, p, t)),
        Plot("consensus_agreement.png", CONSENSUS_TITLE,
             "How often the expert and crowd consensus agree, per attribute, over the clips where both have one.",
             lambda p, t: _plot_consensus(report, p, t)),
        Plot("consensus_confusion.png", CONFUSION_TITLE, "Clips per cell, one colour scale.",
             lambda p, t: _plot_confusion(report, p, t)),
        Plot("semantic_similarity.png", _similarity_title(report),
             "Embedding similarity of the two pools' words for the same clip, against random pairs of clips.",
             lambda p, t: _plot_similarity(report, p, t)),
    ]
    for pool in POOLS:
        words = _top_words(report, pool)
        plots += [
            Plot(f"wordcloud_{pool}.png", f"{pool}: words used", f"{pool.capitalize()} pool: word cloud.",
                 lambda p, t, pool=pool: _plot_wordcloud(report, pool, p, t)),
            Plot(f"top_words_{pool}.png", f"{pool}: top {len(words)} words",
                 "Annotations using each word; the same axis in both pools' charts.",
                 lambda p, t, pool=pool: _plot_top_words(report, pool, p, t)),
            Plot(f"lead_time_{pool}.png", f"{pool}: time per annotation",
                 "Lead time per annotation; the same bins and axes in both pools' charts.",
                 lambda p, t, pool=pool: _plot_lead_time(report, pool, p, t)),
            Plot(f"rejections_{pool}.png", _rejections_title(report, pool),
                 "Annotations the judge proposed to reject, per reason; the same axis in both pools' charts.",
                 lambda p, t, pool=pool: _plot_rejections(report, pool, p, t)),
        ]
    plots.append(Plot("worker_agreement.png", _workers_title(report),
                      "Both pools, lowest agreement first, named by e-mail where Label Studio knows it.",
                      lambda p, t: _plot_workers(report, p, t)))
    return plots


@dataclass(frozen=True)
class Drawn:
    caption: str
    path: Path
    titles: tuple[str, ...]
    """The titles drawn on the figure (its suptitle and its axes' titles)."""


def _titles(fig: Any) -> tuple[str, ...]:
    texts = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    return tuple(t for t in texts + [ax.get_title() for ax in fig.axes] if t)


def plot_names(report: Mapping) -> list[str]:
    """The file names of the plots this report may draw."""
    return [plot.name for plot in _plots(report)]


def draw_all(report: Mapping, out_dir: Path) -> tuple[list[Drawn], list[str]]:
    """Draw every plot that has data into `out_dir`: ([Drawn], notes on the plots that failed).

    A plot that fails is skipped and logged (a plot must never stop the report); a plot without data
    is not drawn, and an old file of that name from a previous run is removed.
    """
    drawn, skipped = [], []
    with plt.rc_context({"text.usetex": False, "axes.titlesize": 11}):
        for plot in _plots(report):
            path = out_dir / plot.name
            titles: tuple[str, ...] = ()
            try:
                done = plot.draw(path, plot.title)
                if done is not None:
                    titles = _titles(plt.gcf())
            except Exception as e:  # noqa: BLE001
                log.warning("plot %s skipped: %s: %s", plot.name, type(e).__name__, e)
                skipped.append(f"{plot.name} ({type(e).__name__}: {e})")
                done = None
            finally:
                plt.close("all")
            if done is not None:
                drawn.append(Drawn(plot.caption, done, titles))
            elif path.exists():
                path.unlink()
    return drawn, skipped
