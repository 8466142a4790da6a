"""Render a pools report (the dict `scripts.report` builds) as JSON, PNG plots and one HTML page.

`write_report(report, out_dir)` writes:

- `report.json`: the report as it is (indent=1, no NaN: NaN must already be None);
- one PNG per plot: agreement per attribute and pool (Fleiss' kappa and Krippendorff's alpha with
  their CIs), expert-vs-crowd consensus agreement and confusion heatmaps, a word cloud and a top-words
  chart per pool, lead-time histogram and rejections per reason per pool, semantic similarity
  (same clip vs random pairs) and the 20 workers who agree least with the consensus;
- `report.html`: one self-contained page (plots embedded as base64 data URIs, no external CSS, JS or
  fonts) with a summary table per pool, the expert-vs-crowd comparison and the plots.

Any figure may be None, any section missing or empty: a plot without data is skipped (and a plot
that fails anyway is skipped with a note on the page); the page shows "–" for a missing number.
Worker ids and words come from users: the page escapes them (jinja2 autoescape) and the plots show
them as plain text (no matplotlib mathtext).
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

log = logging.getLogger(__name__)

POOLS = ("expert", "crowd")
CATEGORICAL = ("pace", "pitch", "volume")
WORD_KINDS = ("emotion", "voice")
COLOURS = {"expert": "#1f77b4", "crowd": "#ff7f0e"}
DPI = 100
LOWEST_WORKERS = 20
TOP_WORDS = 20


# --- reading the report safely ----------------------------------------------------------------


def _get(data: Any, *keys: Any) -> Any:
    """data[k1][k2]... or None when any step is missing or not a mapping/list."""
    for key in keys:
        if isinstance(data, Mapping):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def _num(x: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ci(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = _num(value[0]), _num(value[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _pairs(items: Any) -> list[tuple[str, float]]:
    """[[word, count], ...] -> [(word, count)] with positive finite counts."""
    out = []
    for item in items or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            n = _num(item[1])
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
                v = _num(_get(report, pool, "agreement", attr, metric))
                if v is not None:
                    data[metric, pool, attr] = (v, _ci(_get(report, pool, "agreement", attr, "ci", metric)))
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
        v = _num(_get(report, "comparison", "consensus_agreement", attr, "agreement"))
        if v is None:
            continue
        ci = _ci(_get(report, "comparison", "consensus_agreement", attr, "ci"))
        attrs.append(attr)
        vals.append(v)
        lows.append(0 if ci is None else max(v - ci[0], 0))
        highs.append(0 if ci is None else max(ci[1] - v, 0))
        n = _get(report, "comparison", "consensus_agreement", attr, "clips")
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
        labels = _get(report, "comparison", "consensus_agreement", attr, "confusion", "labels")
        counts = _get(report, "comparison", "consensus_agreement", attr, "confusion", "expert_by_crowd")
        if not isinstance(labels, list) or not labels or not isinstance(counts, list):
            continue
        try:
            m = np.array([[_num(c) or 0 for c in row] for row in counts], dtype=float)
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
    for word, n in _pairs(_get(report, pool, "vocabulary", "top_words")):
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
    words = _pairs(_get(report, pool, "vocabulary", "top_words"))[:TOP_WORDS]
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
    e = [_num(x) for x in edges]
    c = [_num(x) for x in counts]
    if any(x is None for x in e) or any(x is None for x in c) or sum(c) <= 0:
        return None
    return np.array(e), np.array(c)


def _plot_lead_time(report: Mapping, pool: str, path: Path) -> Path | None:
    hist = _histogram(_get(report, pool, "time", "histogram", "edges"), _get(report, pool, "time", "histogram", "counts"))
    if hist is None:
        return None
    edges, counts = hist
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.stairs(counts, edges, fill=True, color=COLOURS[pool], alpha=0.8)
    for stat, style in (("median", "-"), ("mean", "--")):
        v = _num(_get(report, pool, "time", "lead_time_seconds", stat))
        if v is not None and edges[0] <= v <= edges[-1]:
            ax.axvline(v, color="black", ls=style, lw=1, label=f"{stat} {v:.1f} s")
    ax.set_xlabel("lead time per annotation (s)")
    ax.set_ylabel("annotations")
    ax.set_title(f"{pool}: time per annotation")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _save(fig, path)


def _plot_rejections(report: Mapping, pool: str, path: Path) -> Path | None:
    by_reason = _get(report, pool, "judge", "by_reason")
    if not isinstance(by_reason, Mapping):
        return None
    items = sorted(((str(k), _num(v)) for k, v in by_reason.items()), key=lambda kv: -(kv[1] or 0))
    items = [(k, v) for k, v in items if v is not None and v > 0]
    if not items:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(items) + 1.4))
    ax.barh([_plain(k, 30) for k, _ in items][::-1], [v for _, v in items][::-1], color=COLOURS[pool])
    ax.set_xlabel("annotations")
    judged = _get(report, pool, "judge", "annotations_judged")
    ax.set_title(f"{pool}: judge's reasons to reject" + (f" ({judged} annotations judged)" if isinstance(judged, int) else ""))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _plot_similarity(report: Mapping, path: Path) -> Path | None:
    sim = _get(report, "comparison", "semantic_similarity")
    if not isinstance(sim, Mapping) or "skipped" in sim:
        return None
    edges = _get(sim, "histogram", "edges")
    same = _histogram(edges, _get(sim, "histogram", "same_clip"))
    rand = _histogram(edges, _get(sim, "histogram", "random_pairs"))
    if same is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for hist, label, colour, key in ((same, "same clip", "#2ca02c", "same_clip"), (rand, "random pairs of clips", "#7f7f7f", "random_pairs")):
        if hist is None:
            continue
        e, c = hist
        ax.stairs(c / c.sum(), e, fill=key == "same_clip", alpha=0.6 if key == "same_clip" else 1, color=colour, lw=2, label=label)
        mean = _num(_get(sim, key, "mean"))
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
        workers = _get(report, pool, "workers")
        for w in workers if isinstance(workers, list) else []:
            v = _num(_get(w, "agreement_with_consensus"))
            if v is not None:
                rows.append({"pool": pool, "worker": str(_get(w, "worker")), "agreement": v,
                             "annotations": _get(w, "annotations"), "rejected": _get(w, "rejected")})
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


# --- the page ---------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 3) -> str:
    v = _num(x)
    if v is None:
        return "–"
    if float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    if float(v).is_integer() and isinstance(x, int):
        return str(int(v))
    return f"{v:.{digits}f}"


def _fmt_ci(ci: Any, digits: int = 3) -> str:
    c = _ci(ci)
    return "" if c is None else f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]"


def _fmt_pct(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.1f}%"


def _fmt_money(x: Any, currency: Any) -> str:
    v = _num(x)
    if v is None:
        return "–"
    return f"{v:,.2f} {currency}" if isinstance(currency, str) and currency else f"{v:,.2f}"


def _fmt_seconds(x: Any) -> str:
    v = _num(x)
    if v is None:
        return "–"
    if v >= 3600:
        return f"{v / 3600:.1f} h"
    if v >= 120:
        return f"{v / 60:.1f} min"
    return f"{v:.1f} s"


def _with_ci(value: Any, ci: Any) -> str:
    s = _fmt(value)
    c = _fmt_ci(ci)
    return f"{s} {c}" if c and s != "–" else s


def _pool_rows(report: Mapping) -> list[tuple[str, list[str], bool]]:
    """(label, [expert cell, crowd cell], is text) rows for the summary table; sections start with '#'."""
    rows: list[tuple[str, list[str], bool]] = []

    def row(label: str, cell: Callable[[str], str], text: bool = False) -> None:
        rows.append((label, [cell(pool) for pool in POOLS], text))

    def section(title: str) -> None:
        rows.append(("#" + title, [], False))

    def g(pool: str, *keys: Any) -> Any:
        return _get(report, pool, *keys)

    section("Size")
    row("Clips", lambda p: _fmt(g(p, "clips")))
    row("Annotations", lambda p: _fmt(g(p, "annotations")))
    row("Annotators", lambda p: _fmt(g(p, "annotators")))
    section("Agreement (95% CI)")
    for attr in CATEGORICAL:
        a = lambda p, *k, attr=attr: g(p, "agreement", attr, *k)  # noqa: E731
        row(f"{attr}: all 3 agree", lambda p, a=a: _fmt_pct(a(p, "percent_all_agree")) + (f" {_fmt_ci(a(p, 'ci', 'percent_all_agree'), 1)}" if _ci(a(p, "ci", "percent_all_agree")) and _num(a(p, "percent_all_agree")) is not None else ""))
        row(f"{attr}: majority", lambda p, a=a: _fmt_pct(a(p, "percent_majority")) + (f" {_fmt_ci(a(p, 'ci', 'percent_majority'), 1)}" if _ci(a(p, "ci", "percent_majority")) and _num(a(p, "percent_majority")) is not None else ""))
        row(f"{attr}: Fleiss' kappa", lambda p, a=a: _with_ci(a(p, "fleiss_kappa"), a(p, "ci", "fleiss_kappa")))
        row(f"{attr}: Krippendorff's alpha", lambda p, a=a: _with_ci(a(p, "krippendorff_alpha"), a(p, "ci", "krippendorff_alpha")))
        row(f"{attr}: consensus (majority / ties)", lambda p, attr=attr: f"{_fmt(g(p, 'consensus', attr, 'majority'))} / {_fmt(g(p, 'consensus', attr, 'ties'))}")
    for kind in WORD_KINDS:
        a = lambda p, *k, kind=kind: g(p, "agreement", kind, *k)  # noqa: E731
        row(f"{kind} words: Krippendorff's alpha ({_get(report, 'expert', 'agreement', kind, 'distance') or _get(report, 'crowd', 'agreement', kind, 'distance') or 'masi'})",
            lambda p, a=a: _with_ci(a(p, "krippendorff_alpha"), a(p, "ci", "krippendorff_alpha")))
        row(f"{kind} words: identical sets", lambda p, a=a: _fmt_pct(a(p, "percent_identical_sets")))
    section("Vocabulary")
    row("Distinct words", lambda p: _fmt(g(p, "vocabulary", "distinct_words")))
    row("Words per annotation", lambda p: _fmt(g(p, "vocabulary", "words_per_annotation"), 2))
    for kind in (*WORD_KINDS, "other"):
        row(f"{kind}: distinct / per annotation", lambda p, kind=kind: f"{_fmt(g(p, 'vocabulary', 'by_kind', kind, 'distinct_words'))} / {_fmt(g(p, 'vocabulary', 'by_kind', kind, 'words_per_annotation'), 2)}")
        row(f"{kind}: top words", lambda p, kind=kind: ", ".join(f"{w} ({n:g})" for w, n in _pairs(g(p, "vocabulary", "by_kind", kind, "top"))[:8]) or "–", text=True)
    section("Time")
    row("Annotations with a time", lambda p: _fmt(g(p, "time", "annotations_with_time")))
    for stat in ("mean", "median", "p10", "p90"):
        row(f"Lead time, {stat}", lambda p, stat=stat: _fmt_seconds(g(p, "time", "lead_time_seconds", stat)))
    row("Lead time, total", lambda p: _fmt_seconds(g(p, "time", "lead_time_seconds", "total")))
    section("Cost")
    row("Rate per hour", lambda p: _fmt_money(g(p, "cost", "rate_per_hour"), g(p, "cost", "currency")))
    row("Rate per annotation", lambda p: _fmt_money(g(p, "cost", "rate_per_annotation"), g(p, "cost", "currency")))
    row("Total", lambda p: _fmt_money(g(p, "cost", "total"), g(p, "cost", "currency")))
    row("Per annotation", lambda p: _fmt_money(g(p, "cost", "per_annotation"), g(p, "cost", "currency")))
    row("Per clip", lambda p: _fmt_money(g(p, "cost", "per_clip"), g(p, "cost", "currency")))
    section("Judge")
    row("Verdicts from", lambda p: str(g(p, "judge", "source") or "–"), text=True)
    row("Annotations judged", lambda p: _fmt(g(p, "judge", "annotations_judged")))
    row("Proposed rejections", lambda p: _fmt(g(p, "judge", "rejected")))
    row("Rejection rate", lambda p: _fmt(g(p, "judge", "rejection_rate")))
    row("By reason", lambda p: ", ".join(f"{k}: {_fmt(v)}" for k, v in (g(p, "judge", "by_reason") or {}).items()) or "–", text=True)
    row("Task status", lambda p: ", ".join(f"{k}: {_fmt(v)}" for k, v in (g(p, "judge", "task_status") or {}).items()) or "–", text=True)
    return rows


def _comparison(report: Mapping) -> dict[str, Any]:
    comp = _get(report, "comparison")
    comp = comp if isinstance(comp, Mapping) else {}
    names = {"distinct_words": "Distinct words", "words_per_annotation": "Words per annotation",
             "seconds_per_annotation": "Seconds per annotation", "cost_per_annotation": "Cost per annotation"}
    ratios = [(names.get(k, str(k)), _fmt(v, 2)) for k, v in (_get(comp, "ratios") or {}).items()]
    consensus = []
    for attr in CATEGORICAL:
        c = _get(comp, "consensus_agreement", attr)
        if isinstance(c, Mapping):
            consensus.append((attr, _fmt(c.get("clips")), _with_ci(c.get("agreement"), c.get("ci"))))
    overlap = []
    for kind in WORD_KINDS:
        o = _get(comp, f"{kind}_overlap")
        if isinstance(o, Mapping):
            overlap.append((kind, _fmt(o.get("clips")),
                            _with_ci(_get(o, "jaccard_words", "mean"), _get(o, "jaccard_words", "ci")),
                            _with_ci(_get(o, "jaccard_concepts", "mean"), _get(o, "jaccard_concepts", "ci"))))
    sim = _get(comp, "semantic_similarity")
    similarity: dict[str, Any] | None = None
    if isinstance(sim, Mapping):
        if "skipped" in sim:
            similarity = {"skipped": str(sim["skipped"])}
        else:
            used, avail = _get(sim, "clips"), _get(sim, "clips_available")
            similarity = {
                "model": str(sim.get("model", "")),
                "clips": f"{_fmt(used)} of {_fmt(avail)}" + (" (random sample)" if sim.get("sampled") else ""),
                "same": _with_ci(_get(sim, "same_clip", "mean"), _get(sim, "same_clip", "ci")),
                "same_median": _fmt(_get(sim, "same_clip", "median")),
                "random": _fmt(_get(sim, "random_pairs", "mean")),
                "random_median": _fmt(_get(sim, "random_pairs", "median")),
                "difference": _fmt(sim.get("difference")),
                "effect_size": _fmt(sim.get("effect_size"), 2),
            }
    return {"ratios": ratios, "consensus": consensus, "overlap": overlap, "similarity": similarity}


def _workers(report: Mapping) -> dict[str, list[dict[str, str]]]:
    out = {}
    for pool in POOLS:
        rows = []
        workers = _get(report, pool, "workers")
        for w in workers if isinstance(workers, list) else []:
            if not isinstance(w, Mapping):
                continue
            skill = w.get("skill") if isinstance(w.get("skill"), Mapping) else {}
            rows.append({
                "worker": str(w.get("worker")),
                "annotations": _fmt(w.get("annotations")),
                "agreement": _fmt(w.get("agreement_with_consensus")),
                "skill": ", ".join(f"{k} {_fmt(v, 2)}" for k, v in skill.items()) or "–",
                "rejected": _fmt(w.get("rejected")),
                "_sort": _num(w.get("agreement_with_consensus")),
            })
        rows.sort(key=lambda r: (r["_sort"] is None, r["_sort"] if r["_sort"] is not None else 0))
        out[pool] = rows
    return out


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clesc report – {{ source }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1150px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
.meta { color: #555; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.section th { background: #e8eef6; text-align: left; }
.expert { color: #1f77b4; } .crowd { color: #ff7f0e; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
.errors { background: #fff4f4; border: 1px solid #f0c0c0; padding: .5em 1em; }
.note { color: #777; font-style: italic; }
details summary { cursor: pointer; }
</style>
</head>
<body>
<h1>Expert vs crowd: emotion labeling report</h1>
<p class="meta">Source: <code>{{ source }}</code> · clips: {{ clips }} · clips in both pools: {{ clips_in_both }}
{% if settings %} · bootstrap: {{ settings.bootstrap }} resamples, seed {{ settings.seed }}, CI level {{ settings.level }}{% endif %}</p>
{% if error_count %}
<div class="errors"><strong>{{ error_count }} input error(s)</strong> (rows left out):
<ul>{% for e in errors %}<li>{{ e }}</li>{% endfor %}{% if error_count > errors|length %}<li>…</li>{% endif %}</ul></div>
{% endif %}

<h2>Summary per pool</h2>
<table>
<tr><th></th><th class="expert">Expert</th><th class="crowd">Crowd</th></tr>
{% for label, cells, text in pool_rows %}{% if label.startswith('#') %}<tr class="section"><th colspan="3">{{ label[1:] }}</th></tr>
{% else %}<tr><td>{{ label }}</td>{% for c in cells %}<td{% if not text %} class="num"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endif %}{% endfor %}
</table>

<h2>Expert vs crowd</h2>
{% if comparison.ratios %}
<h3>Crowd / expert ratios</h3>
<table><tr><th>Measure</th><th>crowd ÷ expert</th></tr>
{% for name, v in comparison.ratios %}<tr><td>{{ name }}</td><td class="num">{{ v }}</td></tr>{% endfor %}
</table>{% endif %}
{% if comparison.consensus %}
<h3>Consensus agreement (pace, pitch, volume)</h3>
<table><tr><th>Attribute</th><th>Clips</th><th>Agreement (95% CI)</th></tr>
{% for attr, n, v in comparison.consensus %}<tr><td>{{ attr }}</td><td class="num">{{ n }}</td><td class="num">{{ v }}</td></tr>{% endfor %}
</table>{% endif %}
{% if comparison.overlap %}
<h3>Overlap of the consensus words</h3>
<table><tr><th>Words</th><th>Clips</th><th>Jaccard, words (95% CI)</th><th>Jaccard, concepts (95% CI)</th></tr>
{% for kind, n, w, c in comparison.overlap %}<tr><td>{{ kind }}</td><td class="num">{{ n }}</td><td class="num">{{ w }}</td><td class="num">{{ c }}</td></tr>{% endfor %}
</table>{% endif %}
{% if comparison.similarity %}
<h3>Semantic similarity of the two pools' words</h3>
{% if comparison.similarity.skipped %}<p class="note">Skipped: {{ comparison.similarity.skipped }}</p>
{% else %}<table>
<tr><td>Model</td><td>{{ comparison.similarity.model }}</td></tr>
<tr><td>Clips</td><td class="num">{{ comparison.similarity.clips }}</td></tr>
<tr><td>Same clip: mean (95% CI) / median</td><td class="num">{{ comparison.similarity.same }} / {{ comparison.similarity.same_median }}</td></tr>
<tr><td>Random pairs of clips: mean / median</td><td class="num">{{ comparison.similarity.random }} / {{ comparison.similarity.random_median }}</td></tr>
<tr><td>Difference of means</td><td class="num">{{ comparison.similarity.difference }}</td></tr>
<tr><td>Effect size (Cohen's d)</td><td class="num">{{ comparison.similarity.effect_size }}</td></tr>
</table>{% endif %}{% endif %}

<h2>Plots</h2>
{% for fig in figures %}<figure><img alt="{{ fig.caption }}" src="data:image/png;base64,{{ fig.data }}">
<figcaption>{{ fig.caption }}</figcaption></figure>
{% else %}<p class="note">No data to plot.</p>{% endfor %}
{% if skipped_plots %}<p class="note">Not drawn: {{ skipped_plots|join('; ') }}</p>{% endif %}

<h2>Workers</h2>
{% for pool in pools %}
<details{% if workers[pool] %} open{% endif %}><summary><strong class="{{ pool }}">{{ pool|capitalize }}</strong>: {{ workers[pool]|length }} workers, lowest agreement first</summary>
{% if workers[pool] %}<table><tr><th>Worker</th><th>Annotations</th><th>Agreement with consensus</th><th>Skill</th><th>Rejected</th></tr>
{% for w in workers[pool] %}<tr><td>{{ w.worker }}</td><td class="num">{{ w.annotations }}</td><td class="num">{{ w.agreement }}</td><td>{{ w.skill }}</td><td class="num">{{ w.rejected }}</td></tr>
{% endfor %}</table>{% else %}<p class="note">No workers.</p>{% endif %}
</details>
{% endfor %}
</body>
</html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)
_template = _env.from_string(TEMPLATE)


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """Write out_dir/report.json, the PNG plots and out_dir/report.html; return the written paths.

    report.json comes first (ValueError if the report holds NaN or infinity: the builder must turn
    them into None). A plot without data is not drawn; a plot that fails is skipped, logged and
    named on the page. The HTML page embeds the plots, so it can be mailed or archived on its own.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=1, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(json_path)

    figures, skipped = [], []
    with plt.rc_context({"text.usetex": False, "axes.titlesize": 11}):
        for name, caption, draw in _plots(report):
            path = out_dir / name
            try:
                done = draw(path)
            except Exception as e:  # a plot must never stop the report
                log.warning("plot %s skipped: %s: %s", name, type(e).__name__, e)
                skipped.append(f"{name} ({type(e).__name__}: {e})")
                done = None
            finally:
                plt.close("all")
            if done is not None:
                written.append(done)
                figures.append({"caption": caption, "data": base64.b64encode(done.read_bytes()).decode("ascii")})
            elif path.exists():
                path.unlink()  # an old plot from a previous run would not match this report

    errors = report.get("errors") if isinstance(report.get("errors"), list) else []
    html = _template.render(
        source=str(report.get("source", "")),
        clips=_fmt(report.get("clips")),
        clips_in_both=_fmt(report.get("clips_in_both")),
        settings=report.get("settings") if isinstance(report.get("settings"), Mapping) else None,
        error_count=_num(report.get("error_count")) and int(report["error_count"]) or len(errors),
        errors=[str(e) for e in errors[:100]],
        pool_rows=_pool_rows(report),
        comparison=_comparison(report),
        figures=figures,
        skipped_plots=skipped,
        pools=POOLS,
        workers=_workers(report),
    )
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")
    written.append(html_path)
    return written
