"""The report of a small live Label Studio (tests/scripts/report/live_like.py: the demo's 8 clips), on
what a data scientist found wrong with it: the ratios' direction, intervals that collapsed at 8 of 8,
no warning for small samples, no date, placeholder rates, workers with one label ranked, ops decisions
not counted, and what was missing (per-clip table with links, ML pre-fill, words of one pool only),
and charts whose titles and captions disagreed."""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pytest

from label_config.records import LabelRecord
from label_config.taxonomy import load_taxonomy
from scripts.bench.synthetic import synthetic_dataset
from scripts.pools.dataset import Annotation, Dataset
from scripts.report import figures, plots
from scripts.report.figures import MIN_LABELS_TO_RANK, Rate, build_report
from scripts.report.page import write_report
from scripts.stats.intervals import MIN_CLIPS_FOR_BOOTSTRAP, wilson_percent
from tests.scripts.report import live_like
from webhooks.settings import Settings

SAME_RATE = {"expert": Rate(per_hour=30.0), "crowd": Rate(per_hour=30.0)}
PLACEHOLDERS = {"expert": Rate(per_hour=30.0, per_hour_placeholder=True),
                "crowd": Rate(per_hour=10.0, per_hour_placeholder=True)}
GENERATED = "2025-06-01T08:00:00+00:00"


@pytest.fixture(scope="module")
def report():
    return build_report(live_like.dataset(), rates=SAME_RATE, bootstrap=200, generated_at=GENERATED)


class Tables(HTMLParser):
    """The page's tables by id: rows of cell texts (th and td)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[tuple[str, str]] = []
        self._table = self._row = self._cell = self._href = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a":
            self._href, self._text = attrs.get("href"), []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = self._row = None
        elif tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._href is not None:
            self._text.append(data)


@pytest.fixture(scope="module")
def page(report, tmp_path_factory):
    out = tmp_path_factory.mktemp("small-report")
    write_report(report, out)
    html = (out / "report.html").read_text()
    parsed = Tables()
    parsed.feed(html)
    return html, parsed


def row(table: list[list[str]], first: str) -> list[str]:
    return next(r for r in table if r and r[0] == first)


# --- the ratios -------------------------------------------------------------------------------


def test_ratios_are_named_both_ways_and_point_the_right_way(report, page):
    # crowd 20 distinct words, expert 18; the crowd annotates in a third of the time, at the same rate
    assert (report["expert"]["vocabulary"]["distinct_words"], report["crowd"]["vocabulary"]["distinct_words"]) == (18, 20)
    comparison = report["comparison"]
    assert comparison["ratios_crowd_over_expert"]["distinct_words"] == pytest.approx(20 / 18)
    assert comparison["ratios_expert_over_crowd"]["distinct_words"] == pytest.approx(18 / 20)
    assert comparison["ratios_crowd_over_expert"]["cost_per_annotation"] == pytest.approx(1 / 3)
    assert comparison["ratios"] == comparison["ratios_expert_over_crowd"]  # the old key keeps its meaning
    _, parsed = page
    ratios = parsed.tables["ratios"]
    assert ratios[0] == ["Measure", "crowd ÷ expert", "expert ÷ crowd"]
    assert row(ratios, "Distinct words") == ["Distinct words", "1.11", "0.90"]
    assert row(ratios, "Cost per annotation") == ["Cost per annotation", "0.33", "3.00"]


def test_a_report_json_with_only_the_old_ratios_renders_them_the_right_way(report, tmp_path):
    old = {**report, "comparison": {"ratios": report["comparison"]["ratios"]}}
    write_report(old, tmp_path)
    parsed = Tables()
    parsed.feed((tmp_path / "report.html").read_text())
    assert row(parsed.tables["ratios"], "Distinct words") == ["Distinct words", "1.11", "0.90"]


# --- intervals and small samples ---------------------------------------------------------------


def test_eight_of_eight_gives_a_wilson_interval_not_a_point(report, page):
    pace = report["expert"]["agreement"]["pace"]
    assert pace["percent_all_agree"] == 100.0 and pace["clips"] == 8
    low, high = pace["ci"]["percent_all_agree"]
    assert high == 100.0 and low == pytest.approx(67.56, abs=0.01) and pace["ci_method"]["percent_all_agree"] == "wilson"
    volume = report["comparison"]["consensus_agreement"]["volume"]
    assert (volume["clips"], volume["agreement"]) == (8, 1.0) and volume["ci"][0] == pytest.approx(0.6756, abs=1e-4)
    judge = report["expert"]["judge"]
    assert judge["rejection_rate"] == 0.0 and judge["rejection_rate_ci"][0] == 0.0 and judge["rejection_rate_ci"][1] > 0.1
    _, parsed = page
    assert row(parsed.tables["summary"], "pace: all agree")[1] == "100.0% [67.6, 100.0]"
    assert row(parsed.tables["consensus-agreement"], "volume")[2] == "100.0% [67.6, 100.0]"


def test_no_bootstrap_and_a_warning_below_the_threshold(report, page):
    crowd = report["crowd"]["agreement"]
    assert crowd["pace"]["krippendorff_alpha"] is not None and crowd["pace"]["ci"]["krippendorff_alpha"] == [None, None]
    assert crowd["pace"]["ci_method"]["krippendorff_alpha"] == f"none: 8 clips < {MIN_CLIPS_FOR_BOOTSTRAP}"
    assert crowd["emotion"]["ci"]["krippendorff_alpha"] == [None, None]
    assert report["comparison"]["emotion_overlap"]["jaccard_words"]["ci_method"] == "none: 8 clips < 30"
    assert any(w.startswith("Crowd: only 8 clips") for w in report["warnings"])
    assert any(w.startswith("Expert: only 8 clips") for w in report["warnings"])
    html, parsed = page
    assert 'id="warnings"' in html and "a bootstrap needs 30 clips" in html
    assert row(parsed.tables["summary"], "pace: Krippendorff's alpha")[2].endswith("(no CI: 8 clips < 30)")


def test_enough_clips_get_bootstrap_intervals_and_no_warning():
    report = build_report(synthetic_dataset(MIN_CLIPS_FOR_BOOTSTRAP, seed=1), bootstrap=200)
    pace = report["crowd"]["agreement"]["pace"]
    low, high = pace["ci"]["krippendorff_alpha"]
    assert low < pace["krippendorff_alpha"] < high and pace["ci_method"]["krippendorff_alpha"] == "bootstrap"
    assert not [w for w in report["warnings"] if w.startswith(("Expert:", "Crowd:"))]


# --- when, from what, what is counted ----------------------------------------------------------


def test_generated_at_data_as_of_source_and_what_is_counted(report, page):
    assert report["generated_at"] == GENERATED
    assert report["data_as_of"] == "2025-05-03T12:00:00+00:00"  # the overturn, the newest time in the data
    assert report["label_studio"] == {"url": live_like.LS_URL, "projects": live_like.PROJECTS}
    assert report["crowd"]["judge"]["decisions"]["pending_review"] == 1
    assert "Labels still under review are counted" in report["notes"][0] and "crowd 1" in report["notes"][0]
    html, parsed = page
    about = {r[0]: r[1] for r in parsed.tables["about"]}
    assert about["Generated"] == GENERATED and about["Data as of"].startswith("2025-05-03T12:00:00+00:00")
    assert about["Source"].startswith("Label Studio http://ls.example.org:8080")
    assert (f"{live_like.LS_URL}/projects/2/data", "Crowd (project 2)") in parsed.links
    assert "Labels still under review are counted" in html


def test_placeholder_rates_are_said_and_not_added_to_a_set_per_annotation_rate(tmp_path):
    report = build_report(live_like.dataset(), rates=PLACEHOLDERS, bootstrap=0)
    assert report["crowd"]["cost"]["rate_per_hour_placeholder"] is True
    assert any("Placeholder hourly rates (CLESC_RATE_EXPERT_PER_HOUR = 30, CLESC_RATE_CROWD_PER_HOUR = 10)" in w
               for w in report["warnings"])
    write_report(report, tmp_path)
    parsed = Tables()
    parsed.feed((tmp_path / "report.html").read_text())
    assert row(parsed.tables["summary"], "Rate per hour")[2] == "10.00 USD (placeholder: CLESC_RATE_CROWD_PER_HOUR not set)"
    per_annotation = build_report(live_like.dataset(), bootstrap=0, rates={
        "crowd": Rate(per_hour=10.0, per_annotation=0.05, per_hour_placeholder=True)})
    cost = per_annotation["crowd"]["cost"]
    assert cost["total"] == pytest.approx(0.05 * 24) and cost["rate_per_hour"] is None  # the placeholder is not added
    assert not any("Placeholder" in w for w in per_annotation["warnings"])


def test_settings_flag_the_placeholder_rates():
    rates = Settings.from_env({"CLESC_RATE_CROWD_PER_HOUR": "12"}).rates
    assert rates["expert"] == {"per_hour": 30.0, "per_annotation": None, "per_hour_placeholder": True}
    assert rates["crowd"] == {"per_hour": 12.0, "per_annotation": None, "per_hour_placeholder": False}


# --- workers -----------------------------------------------------------------------------------


def test_workers_need_enough_labels_to_be_ranked(report, page):
    crowd = report["crowd"]["workers"]
    admin = next(w for w in crowd if w["email"] == "admin@example.com")
    assert admin["annotations"] == 1 < MIN_LABELS_TO_RANK and admin["ranked"] is False
    assert crowd[-1] is admin and all(w["ranked"] for w in crowd[:-1])  # the unranked come last
    assert report["settings"]["min_labels_to_rank"] == MIN_LABELS_TO_RANK
    assert admin["worker"] not in {r["worker"] for r in plots._lowest_workers(report)}
    by_annotator = report["crowd"]["judge"]["by_annotator"]
    assert by_annotator[-1]["email"] == "admin@example.com" and by_annotator[-1]["ranked"] is False
    _, parsed = page
    admin_row = next(r for r in parsed.tables["workers-crowd"] if r[1].startswith("admin@example.com"))
    assert admin_row[0] == "–" and "too few labels to rank" in admin_row[1]
    lower = build_report(live_like.dataset(), bootstrap=0, min_labels=1)["crowd"]["workers"]
    assert all(w["ranked"] for w in lower)


def test_workers_are_named_by_email_where_known(report, page):
    crowd = {w["worker"]: w["email"] for w in report["crowd"]["workers"]}
    assert crowd == {"ls-21": "ann@example.com", "ls-22": "bob@example.com", "ls-23": "cid@example.com",
                     "ls-1": "admin@example.com"}
    assert {w["worker"]: w["email"] for w in report["expert"]["workers"]} == {"e1": None, "e2": None, "e3": None}
    _, parsed = page
    names = [r[1] for r in parsed.tables["workers-crowd"][1:]]  # the e-mail, then the worker id in small print
    assert sorted(names[:3]) == ["ann@example.com ls-21", "bob@example.com ls-22", "cid@example.com ls-23"]
    assert names[3] == "admin@example.com ls-1 (too few labels to rank)"
    assert [r[1] for r in parsed.tables["workers-expert"][1:]] == ["e1", "e2", "e3"]


def test_the_cli_default_is_the_documented_minimum():
    from scripts.cli import report as report_command

    assert inspect.signature(report_command).parameters["min_labels"].default == MIN_LABELS_TO_RANK


# --- ops decisions -----------------------------------------------------------------------------


def test_upheld_and_overturned_rejections_count_from_the_meta(report, page):
    decisions = report["crowd"]["judge"]["decisions"]
    # task 203: 2032 upheld and cancelled (listed), 2039 upheld and gone; task 204: 2041 overturned
    assert (decisions["upheld"], decisions["overturned"], decisions["upheld_not_in_data"]) == (2, 1, 2)
    assert decisions["unattributed"] == 1  # 2039: no annotation, no annotator named
    assert decisions["upheld_share"] == pytest.approx(2 / 3)
    judge = report["crowd"]["judge"]
    # 24 annotations in the data (25 made, 2032 cancelled) + the 2 upheld no longer in it; rejected: 2050 (pending) + 2
    assert (judge["annotations_judged"], judge["rejected"]) == (26, 3)
    assert judge["rejection_rate_ci"] == pytest.approx([x / 100 for x in wilson_percent(3, 26)])
    workers = {w["worker"]: w for w in report["crowd"]["workers"]}
    assert (workers["ls-23"]["upheld"], workers["ls-22"]["overturned"], workers["ls-21"]["upheld"]) == (1, 1, 0)
    cid = next(r for r in judge["by_annotator"] if r["worker"] == "ls-23")
    assert (cid["annotations"], cid["rejected"], cid["upheld"]) == (8, 1, 1)  # 7 in the data + the cancelled one
    assert report["expert"]["judge"]["decisions"]["upheld"] == 0
    _, parsed = page
    assert row(parsed.tables["summary"], "Rejections upheld by ops")[1:] == ["0", "2"]
    assert row(parsed.tables["summary"], "Rejections overturned by ops")[1:] == ["0", "1"]


def test_a_later_decision_replaces_an_earlier_one():
    ds = live_like.dataset()
    first = next(d for d in ds.decisions if d.annotation_id == 2041)
    ds.decisions.append(replace(first, decision="uphold"))  # ops changed their mind
    decisions = build_report(ds, bootstrap=0)["crowd"]["judge"]["decisions"]
    assert (decisions["upheld"], decisions["overturned"]) == (3, 0)


# --- what was missing ---------------------------------------------------------------------------


def test_per_clip_table_links_to_the_tasks(report, page):
    table = report["comparison"]["per_clip"]
    assert (table["total"], table["shown"]) == (8, 8)
    first = table["rows"][0]
    assert first["clip"] == live_like.clip_audio(5) and first["disagreements"] == 1  # the pools differ on pitch
    assert first["agree"] == {"pace": True, "pitch": False, "volume": True}
    assert first["consensus"]["expert"]["pitch"] == "low" and first["consensus"]["crowd"]["pitch"] == "high"
    assert first["tasks"] == {"expert": 106, "crowd": 206}
    assert first["links"] == {"expert": "http://ls.example.org:8080/projects/1/data?task=106",
                              "crowd": "http://ls.example.org:8080/projects/2/data?task=206"}
    _, parsed = page
    assert ("http://ls.example.org:8080/projects/2/data?task=206", "task 206") in parsed.links
    assert len(parsed.tables["per-clip"]) == 1 + 16  # a header and two rows per clip


def test_no_links_without_a_label_studio(report):
    ds = live_like.dataset()
    ds.ls_url, ds.projects = None, {}
    rows = build_report(ds, bootstrap=0)["comparison"]["per_clip"]["rows"]
    assert rows[0]["tasks"] == {"expert": 106, "crowd": 206} and rows[0]["links"] == {"expert": None, "crowd": None}


def test_ml_prefill_agreement_and_change_rate(report, page):
    crowd = report["crowd"]["ml_prefill"]
    assert crowd["clips_with_prediction"] == 8 and crowd["model_versions"] == ["clesc-acoustic-1/default"]
    assert crowd["annotations_before_prediction"] == 1  # bob on clip 1, before the prediction: never saw it
    pace, pitch = crowd["attributes"]["pace"], crowd["attributes"]["pitch"]
    # consensus = prediction: pace on 7 of 8 clips (clip 7: predicted fast, consensus normal); pitch 7 of 8 (clip 5)
    assert (pace["clips"], pace["agreement"], pitch["agreement"]) == (8, 7 / 8, 7 / 8)
    # changed: of 23 annotations made after the prediction, pace: ann on clip 0 and the 3 on clip 7; pitch: 2 on clip 5
    assert (pace["annotations"], pace["changed"], pitch["changed"]) == (23, 4, 2)
    assert pace["change_rate"] == pytest.approx(4 / 23)
    assert pace["change_ci"] == pytest.approx([x / 100 for x in wilson_percent(4, 23)])
    expert = report["expert"]["ml_prefill"]["attributes"]["pace"]
    assert (expert["agreement"], expert["annotations"], expert["changed"]) == (7 / 8, 24, 3)
    _, parsed = page
    assert row(parsed.tables["summary"], "pace: annotators changed the pre-fill")[2] == "17.4% [7.0, 37.1] of 23"


def test_words_only_one_pool_used(report, page):
    only = report["comparison"]["words_one_pool_only"]
    assert set(w for w, _ in only["crowd"]["top"]) == set(live_like.CROWD_ONLY)
    assert set(w for w, _ in only["expert"]["top"]) == set(live_like.EXPERT_WORDS[8:])
    assert (only["crowd"]["distinct_words"], only["crowd"]["of_distinct_words"]) == (12, 20)
    _, parsed = page
    assert row(parsed.tables["one-pool-words"], "crowd")[1] == "12 of 20"


def test_one_pool_words_are_not_cut_at_the_top_words():
    """A word deep in one pool's long tail is not 'only the other pool's'."""
    ds = Dataset()
    many = [w.word for w in load_taxonomy().words_of("emotion")][: figures.TOP_WORDS + 10]
    for i, w in enumerate(many):  # TOP_WORDS words twice, then 10 once: those are not among the top words
        label = Annotation("expert", f"c{i}", "e1", LabelRecord("slow", "low", "quiet", emotion=(w,)))
        ds.annotations += [label] * (2 if i < figures.TOP_WORDS else 1)
    ds.annotations.append(Annotation("crowd", "c0", "t1", LabelRecord("slow", "low", "quiet", emotion=(many[-1],))))
    only = build_report(ds, bootstrap=0)["comparison"]["words_one_pool_only"]
    assert only["crowd"]["distinct_words"] == 0 and only["expert"]["distinct_words"] == len(many) - 1


# --- charts --------------------------------------------------------------------------------------


NUMBER = re.compile(r"\d+(?:\.\d+)?")


def test_chart_titles_and_captions_say_the_same_numbers(report, tmp_path):
    drawn, skipped = plots.draw_all(report, tmp_path)
    assert not skipped and len(drawn) >= 10
    for d in drawn:
        assert d.titles, d.path.name
        said = {n for t in d.titles for n in NUMBER.findall(t)}
        assert said == set(NUMBER.findall(d.caption)), (d.path.name, d.titles, d.caption)
    workers = next(d for d in drawn if d.path.name == "worker_agreement.png")
    ranked = sum(w["ranked"] for pool in ("expert", "crowd") for w in report[pool]["workers"])
    assert ranked == 6 and f"All {ranked} ranked workers" in workers.titles[0]


@pytest.fixture
def figure():
    yield
    plt.close("all")


def _drawn_axes(draw, *args):
    draw(*args)
    return plt.gcf().axes


def test_charts_share_their_axes_across_pools(report, tmp_path, figure):
    limits = {}
    for name, draw in (("top_words", plots._plot_top_words), ("lead_time", plots._plot_lead_time)):
        for pool in ("expert", "crowd"):
            ax = _drawn_axes(draw, report, pool, tmp_path / f"{name}_{pool}.png", "t")[0]
            limits[name, pool] = (ax.get_xlim(), ax.get_ylim() if name == "lead_time" else None)
            plt.close("all")
    assert limits["top_words", "expert"][0] == limits["top_words", "crowd"][0]
    assert limits["lead_time", "expert"] == limits["lead_time", "crowd"]
    assert report["expert"]["time"]["histogram"]["edges"] == report["crowd"]["time"]["histogram"]["edges"]
    axes = _drawn_axes(plots._plot_agreement, report, tmp_path / "a.png", "t")
    assert axes[0].get_ylim() == axes[1].get_ylim()


def test_count_axes_have_integer_ticks_and_legends_stay_off_the_data(report, tmp_path, figure):
    for draw, axis in ((plots._plot_top_words, "x"), (plots._plot_lead_time, "y")):
        ax = _drawn_axes(draw, report, "crowd", tmp_path / "p.png", "t")[0]
        ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
        assert all(float(t).is_integer() for t in ticks), (draw.__name__, ticks)
        plt.close("all")
    for draw, args in ((plots._plot_agreement, ()), (plots._plot_lead_time, ("crowd",))):
        axes = _drawn_axes(draw, report, *args, tmp_path / "p.png", "t")
        fig = plt.gcf()
        fig.canvas.draw()
        legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
        assert legends, draw.__name__
        for legend in legends:
            box = legend.get_window_extent()
            assert all(not box.overlaps(ax.get_window_extent()) for ax in axes), draw.__name__
        plt.close("all")
