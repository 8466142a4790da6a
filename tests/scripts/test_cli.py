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
