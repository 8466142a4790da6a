"""The judge-quality bench's figures: the shares it prints come from the counts its intervals use."""

from __future__ import annotations

from label_config import load_taxonomy
from scripts.bench.annotators import simulate
from scripts.bench.judge_quality import score
from scripts.stats.intervals import wilson
from webhooks.judge.rules import RulesJudge


def test_the_printed_shares_and_their_intervals_come_from_the_same_counts():
    taxonomy = load_taxonomy()
    project = simulate("heavy", clips=120, seed=7)
    verdicts, _ = RulesJudge(taxonomy).judge_tasks([(t.id, t.records) for t in project.tasks], fit=True)
    s = score(project, verdicts, taxonomy)
    c = s.counts
    assert c["bad"] == sum(a.bad for t in project.tasks for a in t.annotations) > 0
    assert c["bad_tasks"] == sum(any(a.bad for a in t.annotations) for t in project.tasks)
    assert s.precision == c["tp"] / (c["tp"] + c["fp"]) and s.recall == c["tp"] / c["bad"]
    assert s.bad_missing == c["missing"] / c["bad_tasks"] and s.review == c["review"]
    line = s.intervals()
    for k, n in ((c["tp"], c["tp"] + c["fp"]), (c["missing"], c["bad_tasks"])):
        lo, hi = wilson(k, n)
        assert lo <= k / n <= hi and f"{k}/{n} [{lo:.1%}, {hi:.1%}]" in line
