"""Render a pools report (the dict `scripts.report.figures` builds) as JSON, PNG plots and one HTML page.

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
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from label_config.schema import CATEGORICAL, POOLS, WORD_KINDS
from scripts.report.plots import counted_pairs, draw_all, get, interval, number

# --- the page ---------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 3) -> str:
    v = number(x)
    if v is None:
        return "–"
    if float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    if float(v).is_integer() and isinstance(x, int):
        return str(int(v))
    return f"{v:.{digits}f}"


def _fmt_ci(ci: Any, digits: int = 3) -> str:
    c = interval(ci)
    return "" if c is None else f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]"


def _fmt_pct(x: Any) -> str:
    v = number(x)
    return "–" if v is None else f"{v:.1f}%"


def _fmt_money(x: Any, currency: Any) -> str:
    v = number(x)
    if v is None:
        return "–"
    return f"{v:,.2f} {currency}" if isinstance(currency, str) and currency else f"{v:,.2f}"


def _fmt_seconds(x: Any) -> str:
    v = number(x)
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
        return get(report, pool, *keys)

    section("Size")
    row("Clips", lambda p: _fmt(g(p, "clips")))
    row("Annotations", lambda p: _fmt(g(p, "annotations")))
    row("Annotators", lambda p: _fmt(g(p, "annotators")))
    section("Agreement (95% CI)")
    for attr in CATEGORICAL:
        a = lambda p, *k, attr=attr: g(p, "agreement", attr, *k)  # noqa: E731
        row(f"{attr}: all 3 agree", lambda p, a=a: _fmt_pct(a(p, "percent_all_agree")) + (f" {_fmt_ci(a(p, 'ci', 'percent_all_agree'), 1)}" if interval(a(p, "ci", "percent_all_agree")) and number(a(p, "percent_all_agree")) is not None else ""))
        row(f"{attr}: majority", lambda p, a=a: _fmt_pct(a(p, "percent_majority")) + (f" {_fmt_ci(a(p, 'ci', 'percent_majority'), 1)}" if interval(a(p, "ci", "percent_majority")) and number(a(p, "percent_majority")) is not None else ""))
        row(f"{attr}: Fleiss' kappa", lambda p, a=a: _with_ci(a(p, "fleiss_kappa"), a(p, "ci", "fleiss_kappa")))
        row(f"{attr}: Krippendorff's alpha", lambda p, a=a: _with_ci(a(p, "krippendorff_alpha"), a(p, "ci", "krippendorff_alpha")))
        row(f"{attr}: consensus (majority / ties)", lambda p, attr=attr: f"{_fmt(g(p, 'consensus', attr, 'majority'))} / {_fmt(g(p, 'consensus', attr, 'ties'))}")
    for kind in WORD_KINDS:
        a = lambda p, *k, kind=kind: g(p, "agreement", kind, *k)  # noqa: E731
        row(f"{kind} words: Krippendorff's alpha ({get(report, 'expert', 'agreement', kind, 'distance') or get(report, 'crowd', 'agreement', kind, 'distance') or 'masi'})",
            lambda p, a=a: _with_ci(a(p, "krippendorff_alpha"), a(p, "ci", "krippendorff_alpha")))
        row(f"{kind} words: identical sets", lambda p, a=a: _fmt_pct(a(p, "percent_identical_sets")))
    section("Vocabulary")
    row("Distinct words", lambda p: _fmt(g(p, "vocabulary", "distinct_words")))
    row("Words per annotation", lambda p: _fmt(g(p, "vocabulary", "words_per_annotation"), 2))
    for kind in (*WORD_KINDS, "other"):
        row(f"{kind}: distinct / per annotation", lambda p, kind=kind: f"{_fmt(g(p, 'vocabulary', 'by_kind', kind, 'distinct_words'))} / {_fmt(g(p, 'vocabulary', 'by_kind', kind, 'words_per_annotation'), 2)}")
        row(f"{kind}: top words", lambda p, kind=kind: ", ".join(f"{w} ({n:g})" for w, n in counted_pairs(g(p, "vocabulary", "by_kind", kind, "top"))[:8]) or "–", text=True)
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
    comp = get(report, "comparison")
    comp = comp if isinstance(comp, Mapping) else {}
    names = {"distinct_words": "Distinct words", "words_per_annotation": "Words per annotation",
             "seconds_per_annotation": "Seconds per annotation", "cost_per_annotation": "Cost per annotation"}
    ratios = [(names.get(k, str(k)), _fmt(v, 2)) for k, v in (get(comp, "ratios") or {}).items()]
    consensus = []
    for attr in CATEGORICAL:
        c = get(comp, "consensus_agreement", attr)
        if isinstance(c, Mapping):
            consensus.append((attr, _fmt(c.get("clips")), _with_ci(c.get("agreement"), c.get("ci"))))
    overlap = []
    for kind in WORD_KINDS:
        o = get(comp, f"{kind}_overlap")
        if isinstance(o, Mapping):
            overlap.append((kind, _fmt(o.get("clips")),
                            _with_ci(get(o, "jaccard_words", "mean"), get(o, "jaccard_words", "ci")),
                            _with_ci(get(o, "jaccard_concepts", "mean"), get(o, "jaccard_concepts", "ci"))))
    sim = get(comp, "semantic_similarity")
    similarity: dict[str, Any] | None = None
    if isinstance(sim, Mapping):
        if "skipped" in sim:
            similarity = {"skipped": str(sim["skipped"])}
        else:
            used, avail = get(sim, "clips"), get(sim, "clips_available")
            similarity = {
                "model": str(sim.get("model", "")),
                "clips": f"{_fmt(used)} of {_fmt(avail)}" + (" (random sample)" if sim.get("sampled") else ""),
                "same": _with_ci(get(sim, "same_clip", "mean"), get(sim, "same_clip", "ci")),
                "same_median": _fmt(get(sim, "same_clip", "median")),
                "random": _fmt(get(sim, "random_pairs", "mean")),
                "random_median": _fmt(get(sim, "random_pairs", "median")),
                "difference": _fmt(sim.get("difference")),
                "effect_size": _fmt(sim.get("effect_size"), 2),
            }
    return {"ratios": ratios, "consensus": consensus, "overlap": overlap, "similarity": similarity}


def _workers(report: Mapping) -> dict[str, list[dict[str, str]]]:
    out = {}
    for pool in POOLS:
        rows = []
        workers = get(report, pool, "workers")
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
                "_sort": number(w.get("agreement_with_consensus")),
            })
        rows.sort(key=lambda r: (r["_sort"] is None, r["_sort"] if r["_sort"] is not None else 0))
        out[pool] = rows
    return out



_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)
_template = _env.from_string(resources.files("scripts.report").joinpath("templates/report.html").read_text(encoding="utf-8"))


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

    drawn, skipped = draw_all(report, out_dir)
    written += [path for _, path in drawn]
    figures = [{"caption": caption, "data": base64.b64encode(path.read_bytes()).decode("ascii")} for caption, path in drawn]

    errors = report.get("errors") if isinstance(report.get("errors"), list) else []
    html = _template.render(
        source=str(report.get("source", "")),
        clips=_fmt(report.get("clips")),
        clips_in_both=_fmt(report.get("clips_in_both")),
        settings=report.get("settings") if isinstance(report.get("settings"), Mapping) else None,
        error_count=number(report.get("error_count")) and int(report["error_count"]) or len(errors),
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
