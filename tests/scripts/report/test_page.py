"""scripts.report.page: JSON, PNGs and one self-contained, escaped HTML page from a report dict."""

from __future__ import annotations

import json
import re

import pytest

from scripts.report.page import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"


def _pool(name: str, workers: list[str], scale: float) -> dict:
    ci = lambda v: [round(v - 0.1, 3), round(v + 0.1, 3)]  # noqa: E731
    agreement = {
        attr: {
            "percent_all_agree": 40.0 * scale, "percent_majority": 90.0, "fleiss_kappa": 0.3 * scale,
            "krippendorff_alpha": 0.31 * scale,
            "ci": {"percent_all_agree": [30.0, 50.0], "percent_majority": [85.0, 95.0],
                   "fleiss_kappa": ci(0.3 * scale), "krippendorff_alpha": ci(0.31 * scale)},
            "distribution": {"slow": 10, "normal": 50, "fast": 20, "variable": 3}, "clips": 30,
        }
        for attr in ("pace", "pitch", "volume")
    }
    for kind in ("emotion", "voice"):
        agreement[kind] = {"krippendorff_alpha": 0.12 * scale, "ci": {"krippendorff_alpha": ci(0.12 * scale)},
                           "distance": "masi", "percent_identical_sets": 5.0}
    words = [["sad", 40], ["calm", 31], ["happy", 25], ["neutral", 20], ["husky", 12], ["<b>bold</b>", 3],
             ["price $5 and $6", 2]] + [[f"word{i}", 1] for i in range(30)]
    return {
        "clips": 30, "annotations": 90, "annotators": len(workers),
        "agreement": agreement,
        "consensus": {a: {"majority": 27, "ties": 3} for a in ("pace", "pitch", "volume")},
        "vocabulary": {
            "distinct_words": 37, "words_per_annotation": 2.4,
            "by_kind": {
                "emotion": {"distinct_words": 20, "words_per_annotation": 1.6, "top": [["sad", 40], ["calm", 31]]},
                "voice": {"distinct_words": 10, "words_per_annotation": 0.7, "top": [["husky", 12]]},
                "other": {"distinct_words": 7, "words_per_annotation": 0.1, "top": [[EVIL, 1]]},
            },
            "top_words": words,
        },
        "time": {"annotations_with_time": 88,
                 "lead_time_seconds": {"mean": 21.5 * scale, "median": 18.0 * scale, "p10": 8.0, "p90": 40.0, "total": 1892.0},
                 "histogram": {"edges": [0, 10, 20, 30, 40, 50, 60], "counts": [9, 30, 25, 14, 7, 3]}},
        "cost": {"currency": "USD", "rate_per_hour": 12.0 * scale, "rate_per_annotation": None, "total": 6.3,
                 "per_annotation": 0.07, "per_clip": 0.21},
        "judge": {"source": f"verdicts-{name}.json", "annotations_judged": 90, "rejected": 7, "rejection_rate": 0.078,
                  "by_reason": {"contradiction": 3, "categorical_minority": 4, "empty_description": 0},
                  "task_status": {"accepted": 24, "needs_review": 6},
                  "by_annotator": [{"worker": w, "annotations": 30, "rejected": 2, "rate": 0.067} for w in workers]},
        "workers": [{"worker": w, "annotations": 30, "agreement_with_consensus": 0.5 + 0.1 * i,
                     "skill": {"pace": 0.7, "pitch": 0.6, "volume": None}, "rejected": i}
                    for i, w in enumerate(workers)],
    }


def full_report() -> dict:
    labels = ["slow", "normal", "fast", "variable"]
    return {
        "source": "clesc.parquet",
        "clips": 30, "clips_in_both": 30,
        "settings": {"bootstrap": 1000, "seed": 0, "level": 0.95,
                     "rates": {"expert": {"per_hour": 30.0}, "crowd": {"per_hour": 12.0}}},
        "error_count": 2, "errors": ["row 3: bad cell <img src=x onerror=alert(2)>", "row 9: missing worker"],
        "expert": _pool("expert", ["e1", "e2", "e3"], 1.5),
        "crowd": _pool("crowd", ["t1", EVIL, "t$3$", "t4"], 1.0),
        "comparison": {
            "ratios": {"distinct_words": 1.4, "words_per_annotation": 0.8, "seconds_per_annotation": 0.6,
                       "cost_per_annotation": None},
            "consensus_agreement": {
                a: {"clips": 27, "agreement": 0.7, "ci": [0.55, 0.85],
                    "confusion": {"labels": labels, "expert_by_crowd": [[3, 1, 0, 0], [1, 12, 2, 0], [0, 1, 5, 0], [0, 0, 1, 1]]}}
                for a in ("pace", "pitch", "volume")
            },
            "emotion_overlap": {"clips": 30, "jaccard_words": {"mean": 0.2, "ci": [0.1, 0.3]},
                                "jaccard_concepts": {"mean": 0.35, "ci": [0.25, 0.45]}},
            "voice_overlap": {"clips": 28, "jaccard_words": {"mean": 0.1, "ci": [0.05, 0.2]},
                              "jaccard_concepts": {"mean": None, "ci": [None, None]}},
            "semantic_similarity": {
                "model": "all-MiniLM-L6-v2", "clips": 30, "clips_available": 30, "sampled": False,
                "same_clip": {"mean": 0.52, "median": 0.5, "ci": [0.47, 0.57]},
                "random_pairs": {"mean": 0.31, "median": 0.3}, "difference": 0.21, "effect_size": 1.3,
                "histogram": {"edges": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "same_clip": [0, 4, 12, 10, 4],
                              "random_pairs": [3, 15, 10, 2, 0]},
            },
        },
    }


def empty_pool() -> dict:
    return {
        "clips": 0, "annotations": 0, "annotators": 0,
        "agreement": {a: {"percent_all_agree": None, "percent_majority": None, "fleiss_kappa": None,
                          "krippendorff_alpha": None, "ci": {"fleiss_kappa": [None, None]}, "distribution": {}, "clips": 0}
                      for a in ("pace", "pitch", "volume")}
                     | {"emotion": {"krippendorff_alpha": None, "ci": {}, "distance": "masi", "percent_identical_sets": None}},
        "consensus": {},
        "vocabulary": {"distinct_words": 0, "words_per_annotation": None, "by_kind": {}, "top_words": []},
        "time": {"annotations_with_time": 0, "lead_time_seconds": {k: None for k in ("mean", "median", "p10", "p90", "total")},
                 "histogram": {"edges": [], "counts": []}},
        "cost": {"currency": None, "rate_per_hour": None, "rate_per_annotation": None, "total": None,
                 "per_annotation": None, "per_clip": None},
        "judge": {"source": "none", "annotations_judged": 0, "rejected": 0, "rejection_rate": None,
                  "by_reason": {}, "task_status": {}, "by_annotator": []},
        "workers": [],
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, write_report(full_report(), out)


def test_all_files_written(rendered):
    out, paths = rendered
    names = {p.name for p in paths}
    assert {"report.json", "report.html"} <= names
    expected_pngs = {"agreement.png", "consensus_agreement.png", "consensus_confusion.png", "semantic_similarity.png",
                     "worker_agreement.png"} | {f"{kind}_{pool}.png" for pool in ("expert", "crowd")
                                                for kind in ("wordcloud", "top_words", "lead_time", "rejections")}
    assert {p.name for p in paths if p.suffix == ".png"} == expected_pngs
    assert all(p.parent == out and p.exists() for p in paths)
    assert json.loads((out / "report.json").read_text()) == full_report()
    assert "Not drawn" not in (out / "report.html").read_text()  # no plot failed


def test_pngs_are_real_images(rendered):
    _, paths = rendered
    for p in paths:
        if p.suffix == ".png":
            data = p.read_bytes()
            assert data[:8] == PNG_MAGIC, p.name
            assert len(data) > 5_000, p.name


def test_html_self_contained(rendered):
    out, paths = rendered
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "<script" not in html and "@import" not in html
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert len(srcs) == sum(p.suffix == ".png" for p in paths)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_html_escapes_user_text(rendered):
    out, _ = rendered
    html = (out / "report.html").read_text()
    assert EVIL not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html


def test_only_http_links(tmp_path):
    report = full_report()
    report["label_studio"] = {"url": "javascript:alert(3)", "projects": {"expert": 1, "crowd": 2}}
    report["comparison"]["per_clip"] = {"total": 1, "shown": 1, "rows": [
        {"clip": "a", "tasks": {"expert": 1, "crowd": 2},
         "links": {"expert": "javascript:alert(4)", "crowd": "https://ls.example.org/projects/2/data?task=2"}}]}
    write_report(report, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "javascript:" not in html and 'href="https://ls.example.org/projects/2/data?task=2"' in html


def test_missing_figures_still_render(tmp_path):
    report = full_report()
    report["crowd"] = empty_pool()
    report["expert"]["agreement"]["pace"] = {"ci": {}}
    report["expert"]["time"] = {}
    report["expert"]["judge"]["by_reason"] = None
    report["expert"]["workers"] = [{"worker": "e1", "agreement_with_consensus": None}]
    report["comparison"] = {"ratios": {k: None for k in ("distinct_words", "words_per_annotation")},
                            "consensus_agreement": {"pace": {"clips": 0, "agreement": None, "ci": [None, None],
                                                             "confusion": {"labels": [], "expert_by_crowd": []}}},
                            "semantic_similarity": {"skipped": "sentence-transformers not installed"}}
    report["errors"], report["error_count"] = [], 0
    paths = write_report(report, tmp_path)
    names = {p.name for p in paths}
    assert {"report.json", "report.html", "agreement.png", "wordcloud_expert.png"} <= names
    assert not names & {"wordcloud_crowd.png", "lead_time_crowd.png", "lead_time_expert.png", "semantic_similarity.png",
                        "consensus_agreement.png", "consensus_confusion.png", "worker_agreement.png", "rejections_expert.png"}
    html = (tmp_path / "report.html").read_text()
    assert "Skipped: sentence-transformers not installed" in html
    assert "Not drawn" not in html


def test_nothing_at_all_renders_and_stale_plots_go(tmp_path):
    (tmp_path / "agreement.png").write_bytes(PNG_MAGIC)  # from an earlier run: does not match this report
    bare = {"source": "x", "clips": None, "clips_in_both": None, "settings": None, "error_count": 0, "errors": [],
            "expert": empty_pool(), "crowd": None, "comparison": None}
    paths = write_report(bare, tmp_path)
    assert [p.name for p in paths] == ["report.json", "report.html"]
    assert "No data to plot" in (tmp_path / "report.html").read_text()
    assert not (tmp_path / "agreement.png").exists()


def test_nan_refused(tmp_path):
    report = full_report()
    report["clips"] = float("nan")
    with pytest.raises(ValueError):
        write_report(report, tmp_path)
