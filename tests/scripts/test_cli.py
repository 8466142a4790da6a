"""The `clesc` command in-process (typer's runner): the commands that need no server, their output and
exit codes, and clear errors for bad input or missing settings."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from label_config import LabelRecord, load_taxonomy, to_annotation
from scripts.bench.synthetic import synthetic_clesc_rows
from scripts.cli import app
from tests.helpers import SAMPLES
from tests.test_docs import commands

runner = CliRunner()
NO_LS = {"CLESC_LS_URL": "", "CLESC_LS_TOKEN": ""}


def run(*args, env=None):
    return runner.invoke(app, list(args), env={**NO_LS, **(env or {})}, catch_exceptions=False)


@pytest.mark.parametrize("command", sorted(commands(typer.main.get_command(app))))
def test_every_command_has_help(command):
    result = run(*command.split()[1:], "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_taxonomy_json_is_the_contract():
    data = json.loads(run("taxonomy", "--json").output)
    assert set(data) == {"emotion", "voice"}
    word = data["emotion"][0]
    assert set(word) == {"word", "family", "valence", "arousal", "opposes", "implies"}
    assert len(data["emotion"]) + len(data["voice"]) == len(load_taxonomy()) >= 200


def test_config_render_both_interfaces():
    assert '<Taxonomy name="emotion"' in run("config", "render").output
    assert 'name="decision"' in run("config", "render", "--review").output


def _export(tmp_path, records):
    tasks = [{"id": 1, "data": {"audio": "/a.wav"},
              "annotations": [to_annotation(LabelRecord(**r, annotation_id=i, annotator=i)) for i, r in enumerate(records)]}]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_validate_lists_invalid_annotations_and_exits_1(tmp_path):
    good = _export(tmp_path, [{"pace": "fast", "pitch": "low", "volume": "loud"}])
    assert run("validate", str(good)).exit_code == 0
    tasks = json.loads(good.read_text())
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["superfast"]
    good.write_text(json.dumps(tasks))
    result = run("validate", str(good))
    assert result.exit_code == 1 and "superfast" in result.output and "0 valid, 1 invalid" in result.output
    good.write_text("{not json")
    assert run("validate", str(good)).exit_code == 2


def test_judge_writes_verdicts_in_the_contract(tmp_path):
    export = _export(tmp_path, [{"pace": "fast", "pitch": "low", "volume": "loud", "emotion": ("happy",)}] * 2 +
                     [{"pace": "slow", "pitch": "low", "volume": "loud", "emotion": ("calm", "agitated")}])
    out = tmp_path / "verdicts.json"
    result = run("judge", "--export", str(export), "--out", str(out))
    assert result.exit_code == 0 and "1 tasks judged: needs_review 1" in result.output
    [verdict] = json.loads(out.read_text())
    assert verdict["status"] == "needs_review" and verdict["judge"]["backend"] == "rules"
    assert [a["verdict"] for a in verdict["annotations"]] == ["accept", "accept", "reject"]


def test_judge_refuses_an_unknown_backend_and_a_bad_export(tmp_path):
    export = _export(tmp_path, [])
    assert run("judge", "--export", str(export), "--out", str(tmp_path / "v.json"), "--judge", "magic").exit_code == 2
    export.write_text('{"not": "a list"}')
    result = run("judge", "--export", str(export), "--out", str(tmp_path / "v.json"))
    assert result.exit_code == 2 and "expected a JSON list of tasks" in result.output
    llm = run("judge", "--export", str(_export(tmp_path, [])), "--out", str(tmp_path / "v.json"), "--judge", "llm",
              env={"CLESC_LLM_URL": ""})
    assert llm.exit_code == 2 and "CLESC_LLM_URL" in llm.output


def test_features_on_the_sample_clips(tmp_path):
    clip = SAMPLES / "rushed-fast-high-loud.wav"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + b"\0" * 40)
    result = runner.invoke(app, ["features", "--json", str(clip), str(broken)])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 1  # one file failed, and it is listed, not fatal
    assert lines[0]["pace"] in ("fast", "variable") and set(lines[0]["scores"]) == {"pace", "pitch", "volume"}
    assert lines[1]["file"] == str(broken) and "error" in lines[1]


def test_export_and_report_from_a_clesc_file(tmp_path):
    import pandas as pd

    clesc = tmp_path / "clesc.csv"
    pd.DataFrame(list(synthetic_clesc_rows(12, seed=3))).to_csv(clesc, index=False)
    out = tmp_path / "out.csv"
    result = run("export", "--clesc", str(clesc), "--out", str(out), "--all")
    assert result.exit_code == 0 and "12 clips, 72 annotations" in result.output
    assert pd.read_csv(out).shape[0] == 12
    report = run("report", "--clesc", str(clesc), "--out", str(tmp_path / "report"), "--no-embeddings", "--bootstrap", "50")
    assert report.exit_code == 0
    figures = json.loads((tmp_path / "report" / "report.json").read_text())
    assert figures["expert"]["annotations"] == figures["crowd"]["annotations"] == 36
    assert (tmp_path / "report" / "report.html").exists()


def test_commands_that_need_label_studio_say_so():
    for args in (["setup"], ["sync"], ["report", "--out", "x"], ["import", "x.csv"]):
        result = run(*args, env={"CLESC_WEBHOOK_SECRET": "s"})
        assert result.exit_code == 2 and "CLESC_LS_URL" in result.output, args


def test_bad_settings_are_named():
    result = run("sync", env={"CLESC_OVERLAP": "many"})
    assert result.exit_code == 2 and "CLESC_OVERLAP must be an integer" in result.output


def test_import_refuses_an_unknown_pool():
    result = run("import", "x.csv", "--pool", "everyone")
    assert result.exit_code == 2 and "--pool must be both, expert or crowd" in result.output


# --- outputs: whole or not at all, never over an input; unreadable inputs: one line, no traceback -------


def _many_tasks(tmp_path, n=40):
    record = to_annotation(LabelRecord("fast", "low", "loud", emotion=("happy",)))
    tasks = [{"id": i, "data": {"audio": f"/a{i}.wav"}, "annotations": [{**record, "id": 10 * i + k, "completed_by": k}
                                                                         for k in range(3)]} for i in range(1, n + 1)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_an_output_never_replaces_its_input(tmp_path):
    export = _many_tasks(tmp_path)
    before = export.read_bytes()
    judged = run("judge", "--export", str(export), "--out", str(export))
    assert judged.exit_code == 2 and "is also an input" in judged.output
    exported = run("export", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(export),
                   "--format", "jsonl")
    assert exported.exit_code == 2 and "is also an input" in exported.output
    assert export.read_bytes() == before


def test_an_output_that_is_not_a_regular_file_is_refused_and_left_as_it_is(tmp_path):
    import os
    import stat

    export = _many_tasks(tmp_path, 2)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    for args in (["judge", "--export", str(export), "--out", str(tmp_path)],
                 ["judge", "--export", str(export), "--out", str(fifo)],
                 ["export", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(fifo),
                  "--format", "jsonl"]):
        result = run(*args)
        assert result.exit_code == 2 and "is not a regular file" in result.output, args
    assert stat.S_ISFIFO(fifo.stat().st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "fifo.jsonl"]
    assert run("report", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(export),
               "--no-embeddings").exit_code == 2
    nested = tmp_path / "new" / "folder" / "v.json"
    assert run("judge", "--export", str(export), "--out", str(nested)).exit_code == 0 and json.loads(nested.read_text())


def test_a_run_that_cannot_finish_writing_keeps_the_previous_output(tmp_path):
    """A file-size limit (as a full disk would) stops the write half-way: the old VERDICTS.json and report
    stay whole (they were truncated in place), no temporary file is left, and the error is one line."""
    import resource
    import signal
    import subprocess

    from tests.helpers import CLESC

    export = _many_tasks(tmp_path)
    out, report = tmp_path / "verdicts.json", tmp_path / "report"
    assert run("judge", "--export", str(export), "--out", str(out)).exit_code == 0
    assert run("report", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(report),
               "--no-embeddings", "--bootstrap", "20").exit_code == 0
    before = {p: p.read_bytes() for p in [out, *report.iterdir()]}
    assert len(before[out]) > 8192 and len(before[report / "report.json"]) > 8192

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    for args in (["judge", "--export", str(export), "--out", str(out), "--judge", "rules"],
                 ["report", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(report),
                  "--no-embeddings", "--bootstrap", "20"]):
        r = subprocess.run([CLESC, *args], capture_output=True, text=True, timeout=300, preexec_fn=limited,
                           env={**__import__("os").environ, **NO_LS})
        assert r.returncode == 2 and "could not be written" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert {p: p.read_bytes() for p in [out, *report.iterdir()]} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "report", "verdicts.json"]


@pytest.mark.parametrize("text, said", [("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
                                        ('[{"id": 1, "annotations": [{"completed_by": Infinity}]}]', "Infinity"),
                                        ('[{"id": 1, "annotations": [{"completed_by": 1e400}]}]', "infinity")])
def test_unreadable_json_is_one_clear_line(tmp_path, text, said):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    for args in (["validate", str(bad)], ["judge", "--export", str(bad), "--out", str(tmp_path / "v.json")],
                 ["export", "--expert-export", str(bad), "--crowd-export", str(bad), "--out", str(tmp_path / "x.csv")]):
        result = run(*args)  # catch_exceptions=False: a traceback fails the test
        assert result.exit_code == 2 and said in result.output and str(bad) in result.output, (args, result.output)
    assert not (tmp_path / "v.json").exists() and not (tmp_path / "x.csv").exists()


def test_export_and_judge_keep_secrets_and_malformed_fields_out(tmp_path):
    """Found by a red-team pass: task data, consensus and measures were copied into the JSONL verbatim (a
    `token` in the task data too), an invalid label's value was quoted whole, and a number where a list or
    a string was expected (`meta.clesc.rejected`, `completed_by.email`, a prediction's `from_name`) was a
    traceback in export and report."""
    export = _many_tasks(tmp_path, 1)
    tasks = json.loads(export.read_text())
    task = tasks[0]
    task["data"].update(token="SECRET-DATA-1", task_data_password="SECRET-DATA-2")
    task["meta"] = {"clesc": {"status": "accepted", "rejected": 5, "consensus": {"api_key": "SECRET-CONS-3"}}}
    task["annotations"][0]["completed_by"] = {"id": 1, "email": 5}
    task["predictions"] = [{"id": "x", "model_version": "clesc-acoustic-1", "result": [
        {"from_name": ["pace"], "value": {"choices": "fast"}},
        {"from_name": "pitch", "value": {"choices": ["low"]}, "meta": {"measures": {"token": "SECRET-MEAS-4"}}}]},
        {"id": 3, "model_version": "clesc-acoustic-1", "result": []}]
    task["annotations"][1]["result"][0]["value"]["choices"] = {"token": "SECRET-LABEL-5", "pad": "x" * 5000}
    export.write_text(json.dumps(tasks))
    out = tmp_path / "out.jsonl"
    result = run("export", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(out),
                 "--format", "jsonl", "--all")
    assert result.exit_code == 0, result.output
    verdicts = tmp_path / "v.json"
    assert run("judge", "--export", str(export), "--out", str(verdicts)).exit_code == 0
    validated = run("validate", str(export))
    written = out.read_text() + verdicts.read_text() + validated.output + result.output
    assert "SECRET" not in written and "x" * 200 not in written
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["data"]["token"] == "[redacted]"
    assert run("report", "--expert-export", str(export), "--crowd-export", str(export), "--out", str(tmp_path / "r"),
               "--no-embeddings", "--bootstrap", "20").exit_code == 0
