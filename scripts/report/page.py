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
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from label_config.schema import CATEGORICAL, POOLS, WORD_KINDS
from scripts.report.plots import counted_pairs, draw_all, get, interval, number, plot_names, worker_label

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


def _with_ci(value: Any, ci: Any, method: Any = None) -> str:
    """A figure with its interval; with the reason where it has none (too few clips for a bootstrap)."""
    s = _fmt(value)
    c = _fmt_ci(ci)
    if c and s != "–":
        return f"{s} {c}"
    if s != "–" and isinstance(method, str) and method.startswith("none: "):
        return f"{s} (no CI: {method.removeprefix('none: ')})"
    return s


def _pct_ci(value: Any, ci: Any) -> str:
    """A percentage with its interval in percent: 100.0% [67.6, 100.0]."""
    s = _fmt_pct(value)
    c = _fmt_ci(ci, 1)
    return f"{s} {c}" if c and s != "–" else s


def _share_ci(value: Any, ci: Any) -> str:
    """A share (0..1) as a percentage with its interval: 0.5, [0.2, 0.8] -> 50.0% [20.0, 80.0]."""
    v, c = number(value), interval(ci)
    return _pct_ci(None if v is None else 100 * v, None if c is None else [100 * c[0], 100 * c[1]])


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
    section("Agreement (95% CI: Wilson for percentages, bootstrap of clips for kappa and alpha)")
    for attr in CATEGORICAL:
        a = lambda p, *k, attr=attr: g(p, "agreement", attr, *k)  # noqa: E731
        row(f"{attr}: clips with 2 or more labels", lambda p, a=a: _fmt(a(p, "clips")))
        for key, label in (("percent_all_agree", "all agree"), ("percent_majority", "majority")):
            row(f"{attr}: {label}", lambda p, a=a, key=key: _pct_ci(a(p, key), a(p, "ci", key)))
        for key, label in (("fleiss_kappa", "Fleiss' kappa"), ("krippendorff_alpha", "Krippendorff's alpha")):
            row(f"{attr}: {label}", lambda p, a=a, key=key: _with_ci(a(p, key), a(p, "ci", key), a(p, "ci_method", key)))
        row(f"{attr}: consensus (majority / ties)", lambda p, attr=attr: f"{_fmt(g(p, 'consensus', attr, 'majority'))} / {_fmt(g(p, 'consensus', attr, 'ties'))}")
    for kind in WORD_KINDS:
        a = lambda p, *k, kind=kind: g(p, "agreement", kind, *k)  # noqa: E731
        row(f"{kind} words: Krippendorff's alpha ({get(report, 'expert', 'agreement', kind, 'distance') or get(report, 'crowd', 'agreement', kind, 'distance') or 'masi'})",
            lambda p, a=a: _with_ci(a(p, "krippendorff_alpha"), a(p, "ci", "krippendorff_alpha"), a(p, "ci_method", "krippendorff_alpha")))
        row(f"{kind} words: identical sets", lambda p, a=a: _pct_ci(a(p, "percent_identical_sets"), a(p, "ci", "percent_identical_sets")))
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

    def hourly(p: str) -> str:
        money = _fmt_money(g(p, "cost", "rate_per_hour"), g(p, "cost", "currency"))
        return money + " (placeholder: CLESC_RATE_" + p.upper() + "_PER_HOUR not set)" if g(p, "cost", "rate_per_hour_placeholder") else money

    row("Rate per hour", hourly, text=True)
    row("Rate per annotation", lambda p: _fmt_money(g(p, "cost", "rate_per_annotation"), g(p, "cost", "currency")))
    row("Total", lambda p: _fmt_money(g(p, "cost", "total"), g(p, "cost", "currency")))
    row("Per annotation", lambda p: _fmt_money(g(p, "cost", "per_annotation"), g(p, "cost", "currency")))
    row("Per clip", lambda p: _fmt_money(g(p, "cost", "per_clip"), g(p, "cost", "currency")))
    section("Judge and ops review (95% Wilson CI)")
    row("Verdicts from", lambda p: str(g(p, "judge", "source") or "–"), text=True)
    row("Annotations judged", lambda p: _fmt(g(p, "judge", "annotations_judged")))
    row("Rejections (proposed, and upheld ones no longer in LS)", lambda p: _fmt(g(p, "judge", "rejected")))
    row("Rejection rate", lambda p: _share_ci(g(p, "judge", "rejection_rate"), g(p, "judge", "rejection_rate_ci")))
    row("By reason", lambda p: ", ".join(f"{k}: {_fmt(v)}" for k, v in (g(p, "judge", "by_reason") or {}).items()) or "–", text=True)
    row("Task status", lambda p: ", ".join(f"{k}: {_fmt(v)}" for k, v in (g(p, "judge", "task_status") or {}).items()) or "–", text=True)
    row("Rejections upheld by ops", lambda p: _fmt(g(p, "judge", "decisions", "upheld")))
    row("… of which cancelled in LS (not in the data)", lambda p: _fmt(g(p, "judge", "decisions", "upheld_not_in_data")))
    row("Rejections overturned by ops", lambda p: _fmt(g(p, "judge", "decisions", "overturned")))
    row("Share of decided rejections upheld", lambda p: _share_ci(g(p, "judge", "decisions", "upheld_share"),
                                                                  g(p, "judge", "decisions", "upheld_share_ci")))
    row("Proposed rejections awaiting review (counted in the figures)", lambda p: _fmt(g(p, "judge", "decisions", "pending_review")))
    section("ML pre-fill (the ML backend's pace, pitch, volume; 95% Wilson CI)")
    row("Clips with a prediction", lambda p: _fmt(g(p, "ml_prefill", "clips_with_prediction")))
    for attr in CATEGORICAL:
        m = lambda p, *k, attr=attr: g(p, "ml_prefill", "attributes", attr, *k)  # noqa: E731
        row(f"{attr}: consensus = pre-fill", lambda p, m=m: _share_ci(m(p, "agreement"), m(p, "ci")) + f" of {_fmt(m(p, 'clips'))} clips")
        row(f"{attr}: annotators changed the pre-fill", lambda p, m=m: _share_ci(m(p, "change_rate"), m(p, "change_ci")) + f" of {_fmt(m(p, 'annotations'))}")
    return rows


RATIO_NAMES = {"distinct_words": "Distinct words", "words_per_annotation": "Words per annotation",
               "seconds_per_annotation": "Seconds per annotation", "cost_per_annotation": "Cost per annotation"}


def _ratios(comp: Mapping) -> list[tuple[str, str, str]]:
    """(measure, crowd ÷ expert, expert ÷ crowd). `ratios` alone (reports before both were named) is expert ÷ crowd."""
    over = get(comp, "ratios_expert_over_crowd") or get(comp, "ratios") or {}
    under = get(comp, "ratios_crowd_over_expert") or {}
    out = []
    for key in dict.fromkeys([*over, *under]):
        e, c = number(over.get(key)), number(under.get(key))
        if c is None and e:
            c = 1 / e
        if e is None and c:
            e = 1 / c
        out.append((RATIO_NAMES.get(key, str(key)), _fmt(c, 2), _fmt(e, 2)))
    return out


def _link(url: Any) -> str | None:
    """A link the page may carry: http(s) only (report.json is data; a `javascript:` URL must not become a link)."""
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def _per_clip(comp: Mapping) -> dict[str, Any]:
    table = get(comp, "per_clip")
    rows = []
    for r in get(table, "rows") or []:
        if not isinstance(r, Mapping):
            continue
        cells = {}
        for pool in POOLS:
            c = get(r, "consensus", pool) or {}
            words = [w for kind in WORD_KINDS if isinstance(get(c, kind), list) for w in get(c, kind)]
            ml = get(r, "ml", pool)
            cells[pool] = {
                "task": get(r, "tasks", pool), "link": _link(get(r, "links", pool)),
                "status": get(r, "status", pool) or "–", "annotations": _fmt(get(r, "annotations", pool)),
                "choices": [str(get(c, attr) or "–") for attr in CATEGORICAL],
                "words": ", ".join(map(str, words)) or "–",
                "ml": " / ".join(str(get(ml, attr) or "–") for attr in CATEGORICAL) if isinstance(ml, Mapping) else "–",
            }
        agree = [get(r, "agree", attr) for attr in CATEGORICAL]
        rows.append({"clip": str(get(r, "clip")), "pools": cells,
                     "agree": ["–" if a is None else "yes" if a else "no" for a in agree],
                     "disagreements": _fmt(get(r, "disagreements"))})
    return {"rows": rows, "total": _fmt(get(table, "total")), "shown": _fmt(get(table, "shown"))}


def _one_pool(comp: Mapping) -> list[tuple[str, str, str]]:
    out = []
    for pool in POOLS:
        o = get(comp, "words_one_pool_only", pool)
        if isinstance(o, Mapping):
            out.append((pool, f"{_fmt(o.get('distinct_words'))} of {_fmt(o.get('of_distinct_words'))}",
                        ", ".join(f"{w} ({n:g})" for w, n in counted_pairs(o.get("top"))) or "–"))
    return out


def _comparison(report: Mapping) -> dict[str, Any]:
    comp = get(report, "comparison")
    comp = comp if isinstance(comp, Mapping) else {}
    consensus = []
    for attr in CATEGORICAL:
        c = get(comp, "consensus_agreement", attr)
        if isinstance(c, Mapping):
            consensus.append((attr, _fmt(c.get("clips")), _share_ci(c.get("agreement"), c.get("ci"))))
    overlap = []
    for kind in WORD_KINDS:
        o = get(comp, f"{kind}_overlap")
        if isinstance(o, Mapping):
            overlap.append((kind, _fmt(o.get("clips")),
                            _with_ci(get(o, "jaccard_words", "mean"), get(o, "jaccard_words", "ci"),
                                     get(o, "jaccard_words", "ci_method")),
                            _with_ci(get(o, "jaccard_concepts", "mean"), get(o, "jaccard_concepts", "ci"),
                                     get(o, "jaccard_concepts", "ci_method"))))
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
                "same": _with_ci(get(sim, "same_clip", "mean"), get(sim, "same_clip", "ci"), get(sim, "same_clip", "ci_method")),
                "same_median": _fmt(get(sim, "same_clip", "median")),
                "random": _fmt(get(sim, "random_pairs", "mean")),
                "random_median": _fmt(get(sim, "random_pairs", "median")),
                "difference": _fmt(sim.get("difference")),
                "effect_size": _fmt(sim.get("effect_size"), 2),
            }
    return {"ratios": _ratios(comp), "consensus": consensus, "overlap": overlap, "similarity": similarity,
            "one_pool": _one_pool(comp), "per_clip": _per_clip(comp)}


def _workers(report: Mapping) -> dict[str, list[dict[str, str]]]:
    """Per pool, the workers: ranked ones (enough labels) first, lowest agreement first; then the others."""
    out = {}
    for pool in POOLS:
        rows = []
        workers = get(report, pool, "workers")
        for w in workers if isinstance(workers, list) else []:
            if not isinstance(w, Mapping):
                continue
            skill = w.get("skill") if isinstance(w.get("skill"), Mapping) else {}
            ranked = w.get("ranked") is not False
            email = w.get("email") if isinstance(w.get("email"), str) else None
            rows.append({
                "name": worker_label(w),
                "worker": str(w.get("worker")) if email and email != w.get("worker") else "",
                "ranked": ranked,
                "annotations": _fmt(w.get("annotations")),
                "agreement": _fmt(w.get("agreement_with_consensus")),
                "skill": ", ".join(f"{k} {_fmt(v, 2)}" for k, v in skill.items()) or "–",
                "reliability": _fmt(w.get("reliability"), 2),
                "rejected": _fmt(w.get("rejected")),
                "upheld": _fmt(w.get("upheld")),
                "overturned": _fmt(w.get("overturned")),
                "_sort": number(w.get("agreement_with_consensus")),
            })
        rows.sort(key=lambda r: (not r["ranked"], r["_sort"] is None, r["_sort"] if r["_sort"] is not None else 0))
        for i, r in enumerate(rows):
            r["rank"] = str(i + 1) if r["ranked"] and r["_sort"] is not None else "–"
        out[pool] = rows
    return out


def _header(report: Mapping) -> dict[str, Any]:
    """When, from what, and what to keep in mind: the top of the page."""
    ls = get(report, "label_studio")
    projects = []
    if isinstance(ls, Mapping) and _link(ls.get("url")):
        for pool in POOLS:
            pid = get(ls, "projects", pool)
            if isinstance(pid, int):
                projects.append((pool.capitalize(), pid, f"{ls['url'].rstrip('/')}/projects/{pid}/data"))
    warnings = report.get("warnings") if isinstance(report.get("warnings"), list) else []
    notes = report.get("notes") if isinstance(report.get("notes"), list) else []
    min_labels = get(report, "settings", "min_labels_to_rank")
    return {
        "generated_at": str(report.get("generated_at") or "–"),
        "data_as_of": str(report.get("data_as_of") or "not known (the data carries no annotation times)"),
        "projects": projects,
        "warnings": [str(w) for w in warnings],
        "notes": [str(n) for n in notes],
        "min_labels": min_labels if isinstance(min_labels, int) else None,
    }


_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)
_template = _env.from_string(resources.files("scripts.report").joinpath("templates/report.html").read_text(encoding="utf-8"))


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """Write out_dir/report.json, the PNG plots and out_dir/report.html; return the written paths.

    report.json comes first (ValueError if the report holds NaN or infinity: the builder must turn
    them into None). A plot without data is not drawn; a plot that fails is skipped, logged and
    named on the page. The HTML page embeds the plots, so it can be mailed or archived on its own.
    Everything is written into a temporary folder inside `out_dir` and moved in at the end: a run that
    fails (a full disk, an error half-way) leaves the previous report as it was.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report.", suffix=".partial"))
    try:
        names = _write_into(report, work)
        for name in names:
            os.replace(work / name, out_dir / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in set(plot_names(report)) - set(names):  # not drawn this time: the old file would mislead
        (out_dir / name).unlink(missing_ok=True)
    return [out_dir / name for name in names]


def _write_into(report: dict, out_dir: Path) -> list[str]:
    written: list[Path] = []
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=1, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(json_path)

    drawn, skipped = draw_all(report, out_dir)
    written += [d.path for d in drawn]
    figures = [{"caption": d.caption, "title": " · ".join(d.titles) or d.caption,
                "data": base64.b64encode(d.path.read_bytes()).decode("ascii")} for d in drawn]

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
        header=_header(report),
        attributes=CATEGORICAL,
    )
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")
    written.append(html_path)
    return [p.name for p in written]
