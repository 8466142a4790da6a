"""`clesc demo` end to end: its own Label Studio, detached and in the foreground (Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scripts.local.process import free_port, port_in_use
from tests.helpers import CLESC
from webhooks.ls_client import connect
from webhooks.settings import PROJECT_ROOT

pytestmark = pytest.mark.ls  # starts its own Label Studio
N_CLIPS = len(list((PROJECT_ROOT / "samples" / "clips").glob("*.wav")))


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """One demo home for the module: the second test restarts LS on the first one's data (~5 s, not ~50 s)."""
    env = {**os.environ, "CLESC_HOME": str(tmp_path_factory.mktemp("demo-home")), "CLESC_LS_PORT": str(free_port()),
           "CLESC_SERVICE_PORT": str(free_port()), "CLESC_ML_PORT": str(free_port())}
    yield env
    subprocess.run([CLESC, "demo", "--stop"], env=env, capture_output=True, timeout=60)


def _client(env):
    creds = json.loads((Path(env["CLESC_HOME"]) / "label-studio" / "credentials.json").read_text())
    return creds, connect(f"http://127.0.0.1:{env['CLESC_LS_PORT']}", creds["token"])


def _projects(env):
    creds, client = _client(env)
    return creds, {p.title: p.task_number for p in client.projects.list(page_size=100)}


def _ports_free(env) -> bool:
    return not any(port_in_use(int(env[k])) for k in ("CLESC_LS_PORT", "CLESC_SERVICE_PORT", "CLESC_ML_PORT"))


def test_demo_detached_is_idempotent_and_stops(demo_env):
    env = {**demo_env, "CLESC_DEMO_DETACH": "1"}
    first = subprocess.run([CLESC, "demo"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    creds, projects = _projects(env)
    assert f"log in as {creds['username']} / {creds['password']}" in first.stdout
    assert projects == {"Expert": N_CLIPS, "Crowd": N_CLIPS, "Review": 1}
    # the judge ran on every clip of both pools; the one contradictory crowd label set waits in Review
    _, client = _client(env)
    statuses = {p.title: sorted(t.meta["clesc"]["status"] for t in client.tasks.list(project=p.id))
                for p in client.projects.list() if p.title != "Review"}
    assert statuses["Expert"] == ["accepted"] * N_CLIPS
    assert statuses["Crowd"] == sorted(["accepted"] * (N_CLIPS - 1) + ["needs_review"])
    [review] = list(client.tasks.list(project=next(p.id for p in client.projects.list() if p.title == "Review")))
    assert "calm vs agitated" in review.data["reasons"]
    assert "needs_review   rejected annotation" in first.stdout and "calm vs agitated" in first.stdout
    # the ML backend pre-filled pace, pitch and volume on the clips
    crowd = next(p.id for p in client.projects.list() if p.title == "Crowd")
    tasks = list(client.tasks.list(project=crowd))
    assert all(any((p.model_version or "").startswith("clesc-acoustic") for p in client.predictions.list(task=t.id))
               for t in tasks)
    # sync linked the pools (the Expert consensus is a reference in every Crowd task) and the report was written
    assert all(t.meta["clesc_pair"]["status"] == "accepted" for t in tasks)
    assert all(any(p.model_version == "clesc-expert-consensus" for p in client.predictions.list(task=t.id)) for t in tasks)
    report = json.loads((Path(env["CLESC_HOME"]) / "report" / "report.json").read_text())
    assert report["expert"]["annotations"] == report["crowd"]["annotations"] == 3 * N_CLIPS
    assert report["crowd"]["judge"]["rejected"] == 1 and report["crowd"]["judge"]["source"] == "label-studio"
    assert report["crowd"]["judge"]["decisions"]["pending_review"] == 1  # counted in the figures, and said so
    # the report knows its LS (links to the tasks), its times and the ML backend's pre-fill of every clip
    assert report["label_studio"]["url"] == f"http://127.0.0.1:{env['CLESC_LS_PORT']}"
    assert report["generated_at"] and report["data_as_of"]
    assert all(row["links"]["crowd"].endswith(f"/data?task={row['tasks']['crowd']}")
               for row in report["comparison"]["per_clip"]["rows"])
    assert report["crowd"]["ml_prefill"]["clips_with_prediction"] == N_CLIPS
    assert "Report: " in first.stdout
    # the measures the ML backend made are in the JSONL export
    out = Path(env["CLESC_HOME"]) / "export.jsonl"
    subprocess.run([CLESC, "export", "--format", "jsonl", "--out", str(out)], check=True, timeout=120, capture_output=True,
                   env={**env, "CLESC_LS_URL": f"http://127.0.0.1:{env['CLESC_LS_PORT']}", "CLESC_LS_TOKEN": creds["token"]})
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == N_CLIPS and all(line["crowd"]["measures"]["pace"] in ("slow", "normal", "fast", "variable")
                                         for line in lines)

    again = subprocess.run([CLESC, "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Reusing" in again.stdout and ": exists;" in again.stdout
    assert "Posted 0 annotations" in again.stdout
    assert _projects(env)[1] == projects

    stopped = subprocess.run([CLESC, "demo", "--stop"], env=env, capture_output=True, text=True, timeout=60)
    assert "Stopped Label Studio" in stopped.stdout and "Stopped worker" in stopped.stdout
    assert _ports_free(env)


def test_demo_in_foreground_stops_everything_on_ctrl_c(demo_env):
    proc = subprocess.Popen([CLESC, "demo"], env=demo_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 600
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        assert any("Press Ctrl-C" in x for x in lines), "".join(lines)
        assert any(": exists;" in x for x in lines)
        assert port_in_use(int(demo_env["CLESC_LS_PORT"])) and port_in_use(int(demo_env["CLESC_SERVICE_PORT"]))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(f"Stopped {name}" in out for name in ("Label Studio", "serve", "worker", "ml-backend"))
    assert _ports_free(demo_env)
