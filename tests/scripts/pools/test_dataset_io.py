"""The Dataset readers (LS exports, CLESC rows, manifests, folders) and the exports, without a server."""

from __future__ import annotations

import json

import pytest

from label_config import LabelRecord, to_result
from label_config.clesc import format_cell
from scripts.pools.dataset import Dataset, worker_name
from scripts.pools.export import clesc_rows, jsonl_records, write
from scripts.pools.sources import (
    add_ls_tasks,
    from_clesc,
    from_clesc_rows,
    from_exports,
    from_folder,
    from_manifest_rows,
    read_source,
)
from scripts.pools.verdicts import with_rules_verdicts

SAD = LabelRecord("slow", "low", "quiet", emotion=("sad",), voice=("husky",))
ANGRY = LabelRecord("fast", "high", "loud", emotion=("angry",))


def ann(id_, user, record, **extra):
    return {"id": id_, "completed_by": user, "result": to_result(record), "lead_time": 10.0, **extra}


def test_ls_tasks_verdicts_from_meta_cancelled_left_out_invalid_reported():
    ds = Dataset()
    task = {"id": 7, "data": {"audio": "/data/local-files/?d=clips/a.wav", "speaker": "s1"},
            "meta": {"clesc": {"status": "needs_review", "rejected": [3],
                               "reasons": {"3": [{"code": "contradiction", "detail": "calm vs agitated"}]},
                               "consensus": {"pace": "slow"}}},
            "annotations": [ann(1, 5, SAD), ann(2, 6, SAD), ann(3, 7, ANGRY), ann(4, 8, SAD, was_cancelled=True),
                            {"id": 9, "completed_by": 9, "result": [{"from_name": "pace", "type": "choices",
                                                                     "value": {"choices": ["zippy"]}}]}],
            "predictions": [{"model_version": "clesc-acoustic-1/x", "score": 0.7, "result": [
                {"from_name": "pace", "value": {"choices": ["slow"]}, "meta": {"measures": {"syllables_per_s": 2.1}}}]}]}
    add_ls_tasks(ds, "crowd", [task, {"id": 8, "data": {}}], emails={5: "t5@clesc.invalid"})
    assert [(a.annotation_id, a.worker, a.verdict, a.reasons) for a in ds.annotations] == [
        (1, "t5", "accept", ()), (2, "ls-6", "accept", ()), (3, "ls-7", "reject", ("contradiction",))]
    clip = ds.clips["/data/local-files/?d=clips/a.wav"]
    assert clip.tasks == {"crowd": 7} and clip.status == {"crowd": "needs_review"} and clip.data["speaker"] == "s1"
    assert clip.consensus["crowd"] == {"pace": "slow"}
    assert clip.measures["crowd"]["pace"] == "slow" and clip.measures["crowd"]["measures"] == {"syllables_per_s": 2.1}
    assert ds.judged
    assert [e.where for e in ds.errors] == ["crowd task 7", "crowd task 8"]
    assert "zippy" in ds.errors[0].message and "no 'audio'" in ds.errors[1].message
    assert with_rules_verdicts(ds) is ds  # the judge's own verdicts are kept


def test_ls_tasks_one_vote_per_annotator_the_newest_counts():
    """A user who submitted twice is one rater: the report's agreement and rejection rates see the newest."""
    ds = Dataset()
    task = {"id": 7, "data": {"audio": "/clip.wav"},
            "annotations": [ann(11, 5, ANGRY), ann(2, 6, SAD), ann(12, 5, SAD), ann(3, 7, SAD),
                            ann(13, 5, ANGRY, was_cancelled=True)]}
    add_ls_tasks(ds, "crowd", [task])
    assert [(a.annotation_id, a.worker) for a in ds.annotations] == [(2, "ls-6"), (12, "ls-5"), (3, "ls-7")]
    assert not ds.errors


def test_pool_side_counts_one_annotation_per_person():
    from types import SimpleNamespace

    from scripts.pools.pairs import PoolSide

    task = SimpleNamespace(id=7, meta={}, annotations=[ann(1, 5, SAD), ann(2, 5, SAD), ann(3, 6, SAD),
                                                       ann(4, 7, SAD, was_cancelled=True)])
    state = PoolSide().state(task)
    assert state["annotations"] == 2 and state["status"] == "incomplete"  # two people, not the three of the overlap


def test_rules_verdicts_where_the_data_has_none():
    rows = [{"audio": "a", **{f"Crowd_Worker_{i}": format_cell(rec, f"t{i}")
                              for i, rec in enumerate((SAD, SAD, LabelRecord("slow", "low", "quiet", emotion=("sad", "joyful"))), 1)}}]
    ds = with_rules_verdicts(from_clesc_rows(rows))
    assert [a.verdict for a in ds.annotations] == ["accept", "accept", "reject"]
    assert ds.clips["a"].status["crowd"] == "needs_review" and ds.clips["a"].consensus["crowd"]["pace"] == "slow"


def test_worker_names():
    assert worker_name(3, "e2@clesc.invalid") == "e2"
    assert worker_name(3, "someone@clesc.invalid.example.org") == "ls-3"


def test_clesc_rows_errors_per_cell_and_missing_columns(tmp_path):
    good = format_cell(SAD, "t1")
    path = tmp_path / "c.csv"
    path.write_text("audio,Crowd_Worker_1,Crowd_Worker_2\n"
                    f'a.mp3,"{good}","{{\'pace\': "\n'
                    f',"{good}",\n'
                    f'b.mp3,,"{good}"\n')
    ds = from_clesc(path)
    assert [(a.clip, a.worker) for a in ds.annotations] == [("a.mp3", "t1"), ("b.mp3", "t1")]
    messages = [str(e) for e in ds.errors]
    assert [m.split(":")[0] for m in messages[:5]] == [f"column {c}" for c in
                                                      ("Crowd_Worker_3", "Expert_1", "Expert_2", "Expert_3", "source_dataset")]
    assert any(m.startswith("row 1 (a.mp3) Crowd_Worker_2: CLESC cell: not a Python dict literal") for m in messages)
    assert any(m.startswith("row 2: no audio reference") for m in messages)
    no_audio = tmp_path / "n.csv"
    no_audio.write_text("url,Expert_1\nx,y\n")
    with pytest.raises(ValueError, match="no 'audio' column"):
        from_clesc(no_audio)


def test_manifest_rows_keep_metadata_and_report_bad_rows():
    ds = from_manifest_rows([
        {"url": "https://x.org/1.wav", "speaker": "s1", "gender": float("nan"), "age": 31},
        {"audio": "javascript:alert(1)"},
        {"audio": "   "},
        {"audio": "https:///nohost.wav"},
        {"audio": "s3://bucket/2.wav", "source_dataset": "Voxceleb"},
    ], source="m")
    assert {k: c.data for k, c in ds.clips.items()} == {
        "https://x.org/1.wav": {"audio": "https://x.org/1.wav", "speaker": "s1", "age": 31},
        "s3://bucket/2.wav": {"audio": "s3://bucket/2.wav", "source_dataset": "Voxceleb"}}
    assert [e.where for e in ds.errors] == ["row 2", "row 3", "row 4"]


def test_read_source_detects_the_kind_and_refuses_unknown_files(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "https://x.org/1.wav"}) + "\n")
    assert list(read_source(tmp_path / "m.jsonl").clips) == ["https://x.org/1.wav"]
    (tmp_path / "c.csv").write_text(f'audio,Expert_1\na.wav,"{format_cell(SAD, "e1")}"\n')
    assert len(read_source(tmp_path / "c.csv").annotations) == 1
    (tmp_path / "x.csv").write_text("name,size\na,1\n")
    with pytest.raises(ValueError, match="neither a CLESC file"):
        read_source(tmp_path / "x.csv")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="unknown file type"):
        read_source(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="no such file"):
        read_source(tmp_path / "missing.csv")


def test_folder_must_lie_under_the_document_root(tmp_path):
    root = tmp_path / "root"
    clips = root / "clips"
    clips.mkdir(parents=True)
    (clips / "a.WAV").write_bytes(b"RIFF")
    (clips / "notes.txt").write_text("x")
    ds = from_folder(clips, root)
    assert list(ds.clips) == ["/data/local-files/?d=clips/a.WAV"]
    with pytest.raises(ValueError, match="not under Label Studio's local-files document root"):
        from_folder(clips, tmp_path / "elsewhere")


def test_export_clesc_only_accepted_unless_all_and_at_most_three_per_pool(tmp_path):
    ds = Dataset()
    anns = [ann(i, 10 + i, SAD if i != 3 else ANGRY) for i in range(1, 6)]
    add_ls_tasks(ds, "expert", [{"id": 1, "data": {"audio": "a.wav", "source_dataset": "Voxceleb"},
                                 "meta": {"clesc": {"status": "needs_review", "rejected": [3]}}, "annotations": anns}])
    rows, report = clesc_rows(ds)
    assert report.rejected_left_out == 1 and report.left_out == 1 and report.annotations == 3
    assert [rows[0][f"Expert_{i}"].split("'worker_id': ")[1] for i in (1, 2, 3)] == ["'ls-11'}", "'ls-12'}", "'ls-14'}"]
    assert rows[0]["Crowd_Worker_1"] == "" and rows[0]["source_dataset"] == "Voxceleb"
    every, report_all = clesc_rows(ds, include_rejected=True)
    assert "'angry'" in every[0]["Expert_3"] and report_all.left_out == 2
    records, _ = jsonl_records(ds)
    assert [a["annotation_id"] for a in records[0]["expert"]["annotations"]] == [1, 2, 4, 5]
    assert records[0]["expert"]["status"] == "needs_review" and records[0]["crowd"]["annotations"] == []

    for fmt, name in (("clesc", "x.csv"), ("parquet", "x.parquet")):
        write(ds, fmt, tmp_path / name)
        back = from_clesc(tmp_path / name)
        assert [(a.worker, a.record.emotion) for a in back.annotations] == [("ls-11", ("sad",)), ("ls-12", ("sad",)),
                                                                             ("ls-14", ("sad",))]
        assert back.clips["a.wav"].data["source_dataset"] == "Voxceleb"
    write(ds, "jsonl", tmp_path / "x.jsonl", include_rejected=True)
    assert len(json.loads((tmp_path / "x.jsonl").read_text())["expert"]["annotations"]) == 5
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(ValueError, match="unknown format"):
        write(ds, "xlsx", tmp_path / "x.xlsx")


def test_exports_of_both_pools(tmp_path):
    for pool, rec in (("expert", SAD), ("crowd", ANGRY)):
        (tmp_path / f"{pool}.json").write_text(json.dumps([{"id": 1, "data": {"audio": "a.wav"},
                                                            "annotations": [ann(1, 2, rec)]}]))
    ds = from_exports(tmp_path / "expert.json", tmp_path / "crowd.json")
    assert [(a.pool, a.record.pace, a.lead_time) for a in ds.annotations] == [("expert", "slow", 10.0), ("crowd", "fast", 10.0)]
    assert not ds.judged and not ds.errors and list(ds.clips) == ["a.wav"]


def test_ls_tasks_emails_times_and_ops_decisions_from_meta():
    """Annotators named by worker id, their e-mails kept; the ops decisions of the meta, also for an upheld
    annotation that was cancelled (still listed) or that LS no longer lists at all."""
    ds = Dataset()
    meta = {"clesc": {"status": "accepted", "rejected": [], "consensus": {}, "decisions": [
        {"annotation_id": 3, "decision": "overturn", "reasons": ["emotion_outlier"], "decided_by": 1,
         "decided_at": "2025-05-02T09:00:00Z", "comment": "", "version": "v"},
        {"annotation_id": 4, "decision": "uphold", "reasons": ["contradiction"], "decided_at": "2025-05-03T09:00:00Z"},
        {"annotation_id": 99, "decision": "uphold", "reasons": ["contradiction"]},                 # gone from LS
        {"annotation_id": 98, "decision": "uphold", "reasons": ["contradiction"], "annotator": 6},  # gone, named
    ]}}
    task = {"id": 7, "data": {"audio": "a.wav"}, "meta": meta, "annotations": [
        ann(1, 5, SAD, created_at="2025-05-01T10:00:00.5Z", updated_at="2025-05-01T10:30:00Z"),
        ann(2, {"id": 6, "email": "ann@example.com"}, SAD, created_at="2025-05-01T11:00:00Z"),
        ann(3, 7, ANGRY), ann(4, 8, SAD, was_cancelled=True)]}
    add_ls_tasks(ds, "crowd", [task], emails={5: "t5@clesc.invalid", 7: "bob@example.com", 8: "eve@example.com"})
    assert [a.worker for a in ds.annotations] == ["t5", "ls-6", "ls-7"]
    assert ds.emails == {"ls-6": "ann@example.com", "ls-7": "bob@example.com", "ls-8": "eve@example.com"}
    assert (ds.annotations[0].created_at, ds.annotations[0].updated_at) == ("2025-05-01T10:00:00.5Z", "2025-05-01T10:30:00Z")
    assert [(d.annotation_id, d.decision, d.worker, d.annotation_present, d.reasons) for d in ds.decisions] == [
        (3, "overturn", "ls-7", True, ("emotion_outlier",)), (4, "uphold", "ls-8", False, ("contradiction",)),
        (99, "uphold", None, False, ("contradiction",)), (98, "uphold", "ls-6", False, ("contradiction",))]
    assert ds.decisions[1].decided_at == "2025-05-03T09:00:00Z" and ds.decisions[2].decided_at is None
    assert all(d.pool == "crowd" and d.clip == "a.wav" and d.task_id == 7 for d in ds.decisions)
    judged = with_rules_verdicts(Dataset(clips=ds.clips, annotations=ds.annotations, decisions=ds.decisions,
                                         emails=ds.emails, ls_url="http://ls", projects={"crowd": 2}))
    assert judged.decisions == ds.decisions and judged.emails == ds.emails and judged.ls_url == "http://ls"
    assert judged.annotations[0].created_at == "2025-05-01T10:00:00.5Z"  # the rules judge keeps the times


def test_ls_tasks_keep_the_judges_latest_reliability_of_each_worker():
    """The judge writes each annotator's reliability at the time of each verdict; the dataset keeps the one
    of the worker's newest judged annotation, whatever order the tasks come in, per pool."""
    def task(tid, aid, reliability):
        return {"id": tid, "data": {"audio": f"{tid}.wav"}, "annotations": [ann(aid, 5, SAD)],
                "meta": {"clesc": {"status": "accepted", "rejected": [], "reliability": {str(aid): reliability}}}}
    ds = Dataset()
    add_ls_tasks(ds, "crowd", [task(2, 20, 0.4), task(1, 10, 0.9), task(3, 15, 0.8)])
    add_ls_tasks(ds, "expert", [task(4, 30, 0.7)])
    assert ds.reliability == {"crowd": {"ls-5": 0.4}, "expert": {"ls-5": 0.7}}
