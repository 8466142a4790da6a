"""label_config.meta: the judge's meta with ops decisions, read leniently and kept across writes."""

from label_config.meta import JudgeMeta, read_judge, with_judge

UPHOLD = {"annotation_id": 5, "decision": "uphold", "reasons": ["contradiction"], "decided_by": "ops@example.com",
          "decided_at": "2025-05-01T10:00:00+00:00", "comment": "calm and agitated", "version": "review-1"}
OVERTURN = {"annotation_id": 9, "decision": "overturn", "reasons": ["emotion_outlier"], "decided_by": 3,
            "decided_at": "2025-05-01T10:05:00+00:00", "comment": "", "version": "review-1"}


def test_decisions_round_trip():
    meta = JudgeMeta("accepted", {"pace": "fast"}, decisions=(UPHOLD, OVERTURN))
    written = with_judge({"x": 1}, meta)
    assert written["clesc"]["decisions"] == [UPHOLD, OVERTURN] and written["x"] == 1
    assert read_judge(written) == meta
    assert "decisions" not in JudgeMeta("accepted", {}).to_json()  # none yet: the meta looks as before


def test_decisions_read_leniently():
    raw = {"clesc": {"status": "needs_review", "decisions": [
        {**UPHOLD, "annotation_id": "5", "decision": " UPHOLD ", "annotator": 12},  # string id, case, an extra key
        {"annotation_id": 6, "decision": "maybe"},                                   # not a decision
        {"decision": "overturn"},                                                    # no annotation
        "uphold", None,                                                              # not objects
        {"annotation_id": 7, "decision": "overturn", "reasons": "contradiction", "decided_by": True, "comment": 4},
    ]}}
    decisions = read_judge(raw).decisions
    assert [d["annotation_id"] for d in decisions] == [5, 7]
    assert decisions[0] == {**UPHOLD, "annotator": 12}
    assert decisions[1] == {"annotation_id": 7, "decision": "overturn", "reasons": [], "decided_by": "",
                            "decided_at": "", "comment": "", "version": ""}
    assert read_judge({"clesc": {"status": "accepted", "decisions": {"5": "uphold"}}}).decisions == ()


def test_a_new_verdict_keeps_the_decisions():
    before = with_judge({}, JudgeMeta("needs_review", {}, rejected=(5,), decisions=(UPHOLD,)))
    after = with_judge(before, JudgeMeta("accepted", {"pace": "slow"}))  # re-judged after the uphold
    assert after["clesc"]["decisions"] == [UPHOLD] and after["clesc"]["rejected"] == []
    replaced = with_judge(before, JudgeMeta("accepted", {}, decisions=(UPHOLD, OVERTURN)))
    assert replaced["clesc"]["decisions"] == [UPHOLD, OVERTURN]
