"""The report's plots: one PNG per figure, drawn with matplotlib (Agg, no display) from the report dict.

Any figure may be None and any section missing: a plot without data returns None and is not drawn.
User text (worker ids, words) is shown as plain text (no mathtext).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from label_config.schema import CATEGORICAL, POOLS, WORD_KINDS  # noqa: E402

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
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _plot_agreement(report: Mapping, path: Path) -> Path | None:
    """Fleiss' kappa (pace/pitch/volume) and Krippendorff's alpha (all five) per pool, with CIs."""
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 5]})
    width = 0.38
    for ax, (metric, title, attrs) in zip(axes, panels):
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
        ax.set_title(title)
        ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[1].text(0.99, 0.97, "emotion, voice: MASI distance", transform=axes[1].transAxes, ha="right", va="top", fontsize=8, color="grey")
    axes[0].legend()
    fig.suptitle("Agreement within each pool (95% CI)")
    return _save(fig, path)


def _plot_consensus(report: Mapping, path: Path) -> Path | None:
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
    bars = ax.bar(attrs, vals, yerr=[lows, highs], capsize=4, color="#2ca02c")
    for bar, n in zip(bars, clips):
        if n is not None:
            ax.annotate(f"{n} clips", (bar.get_x() + bar.get_width() / 2, 0), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=8, color="white")
    ax.set_ylim(0, 1.05 if max(v + h for v, h in zip(vals, highs)) <= 1.05 else None)
    ax.set_ylabel("expert and crowd consensus agree")
    ax.set_title("Consensus agreement, expert vs crowd (95% CI)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _plot_confusion(report: Mapping, path: Path) -> Path | None:
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
    fig, axes = plt.subplots(1, len(mats), figsize=(4.3 * len(mats), 4), squeeze=False)
    for ax, (attr, labels, m) in zip(axes[0], mats):
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(m.max(), 1))
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("crowd consensus")
        ax.set_ylabel("expert consensus")
        ax.set_title(attr)
        for (i, j), c in np.ndenumerate(m):
            ax.text(j, i, f"{c:g}", ha="center", va="center", fontsize=8, color="white" if c > m.max() / 2 else "black")
    fig.suptitle("Consensus: expert (rows) by crowd (columns), clips")
    return _save(fig, path)


def _plot_wordcloud(report: Mapping, pool: str, path: Path) -> Path | None:
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
    ax.set_title(f"{pool}: words used")
    return _save(fig, path)


def _plot_top_words(report: Mapping, pool: str, path: Path) -> Path | None:
    words = counted_pairs(get(report, pool, "vocabulary", "top_words"))[:TOP_WORDS]
    if not words:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(words) + 1.2))
    ax.barh([_plain(w, 30) for w, _ in words][::-1], [n for _, n in words][::-1], color=COLOURS[pool])
    ax.set_xlabel("annotations using the word")
    ax.set_title(f"{pool}: top {len(words)} words")
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


def _plot_lead_time(report: Mapping, pool: str, path: Path) -> Path | None:
    hist = _histogram(get(report, pool, "time", "histogram", "edges"), get(report, pool, "time", "histogram", "counts"))
    if hist is None:
        return None
    edges, counts = hist
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.stairs(counts, edges, fill=True, color=COLOURS[pool], alpha=0.8)
    for stat, style in (("median", "-"), ("mean", "--")):
        v = number(get(report, pool, "time", "lead_time_seconds", stat))
        if v is not None and edges[0] <= v <= edges[-1]:
            ax.axvline(v, color="black", ls=style, lw=1, label=f"{stat} {v:.1f} s")
    ax.set_xlabel("lead time per annotation (s)")
    ax.set_ylabel("annotations")
    ax.set_title(f"{pool}: time per annotation")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _save(fig, path)


def _plot_rejections(report: Mapping, pool: str, path: Path) -> Path | None:
    by_reason = get(report, pool, "judge", "by_reason")
    if not isinstance(by_reason, Mapping):
        return None
    items = sorted(((str(k), number(v)) for k, v in by_reason.items()), key=lambda kv: -(kv[1] or 0))
    items = [(k, v) for k, v in items if v is not None and v > 0]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(items) + 1.4))
    ax.barh([_plain(k, 30) for k, _ in items][::-1], [v for _, v in items][::-1], color=COLOURS[pool])
    ax.set_xlabel("annotations")
    judged = get(report, pool, "judge", "annotations_judged")
    ax.set_title(f"{pool}: judge's reasons to reject" + (f" ({judged} annotations judged)" if isinstance(judged, int) else ""))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _plot_similarity(report: Mapping, path: Path) -> Path | None:
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
            ax.axvline(mean, color=colour, ls="--", lw=1)
    ax.set_xlabel(f"cosine similarity of expert and crowd words ({_plain(sim.get('model', 'embeddings'))})")
    ax.set_ylabel("share of clips")
    n = sim.get("clips")
    ax.set_title("Expert vs crowd descriptions: same clip vs random pairs" + (f" ({n} clips)" if isinstance(n, int) else ""))
    ax.legend()
    return _save(fig, path)


def _lowest_workers(report: Mapping) -> list[dict[str, Any]]:
    rows = []
    for pool in POOLS:
        workers = get(report, pool, "workers")
        for w in workers if isinstance(workers, list) else []:
            v = number(get(w, "agreement_with_consensus"))
            if v is not None:
                rows.append({"pool": pool, "worker": str(get(w, "worker")), "agreement": v,
                             "annotations": get(w, "annotations"), "rejected": get(w, "rejected")})
    rows.sort(key=lambda r: (r["agreement"], r["pool"], r["worker"]))
    return rows[:LOWEST_WORKERS]


def _plot_workers(report: Mapping, path: Path) -> Path | None:
    rows = _lowest_workers(report)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(rows) + 1.4))
    labels = [f"{_plain(r['worker'], 24)} ({r['pool']})" for r in rows][::-1]
    ax.barh(range(len(rows)), [r["agreement"] for r in rows][::-1], color=[COLOURS[r["pool"]] for r in rows][::-1])
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement with the pool's consensus")
    ax.set_title(f"The {len(rows)} workers who agree least with the consensus")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _plots(report: Mapping) -> list[tuple[str, str, Callable[[Path], Path | None]]]:
    """(file name, caption, draw(path) -> path | None), in page order."""
    plots: list[tuple[str, str, Callable[[Path], Path | None]]] = [
        ("agreement.png", "Agreement per attribute within each pool, with 95% bootstrap CIs.",
         lambda p: _plot_agreement(report, p)),
        ("consensus_agreement.png", "How often the expert and crowd consensus agree, per attribute.",
         lambda p: _plot_consensus(report, p)),
        ("consensus_confusion.png", "Expert consensus (rows) by crowd consensus (columns), clips per cell.",
         lambda p: _plot_confusion(report, p)),
        ("semantic_similarity.png", "Embedding similarity of the two pools' words: same clip vs random pairs of clips.",
         lambda p: _plot_similarity(report, p)),
    ]
    for pool in POOLS:
        plots += [
            (f"wordcloud_{pool}.png", f"{pool.capitalize()} pool: word cloud of the words used.",
             lambda p, pool=pool: _plot_wordcloud(report, pool, p)),
            (f"top_words_{pool}.png", f"{pool.capitalize()} pool: the most used words.",
             lambda p, pool=pool: _plot_top_words(report, pool, p)),
            (f"lead_time_{pool}.png", f"{pool.capitalize()} pool: time spent per annotation.",
             lambda p, pool=pool: _plot_lead_time(report, pool, p)),
            (f"rejections_{pool}.png", f"{pool.capitalize()} pool: annotations the judge proposed to reject, per reason.",
             lambda p, pool=pool: _plot_rejections(report, pool, p)),
        ]
    plots.append(("worker_agreement.png", f"The {LOWEST_WORKERS} workers (both pools) who agree least with their pool's consensus.",
                  lambda p: _plot_workers(report, p)))
    return plots


def draw_all(report: Mapping, out_dir: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """Draw every plot that has data into `out_dir`: ([(caption, path)], notes on the plots that failed).

    A plot that fails is skipped and logged (a plot must never stop the report); a plot without data
    is not drawn, and an old file of that name from a previous run is removed.
    """
    drawn, skipped = [], []
    with plt.rc_context({"text.usetex": False, "axes.titlesize": 11}):
        for name, caption, draw in _plots(report):
            path = out_dir / name
            try:
                done = draw(path)
            except Exception as e:  # noqa: BLE001
                log.warning("plot %s skipped: %s: %s", name, type(e).__name__, e)
                skipped.append(f"{name} ({type(e).__name__}: {e})")
                done = None
            finally:
                plt.close("all")
            if done is not None:
                drawn.append((caption, done))
            elif path.exists():
                path.unlink()
    return drawn, skipped
