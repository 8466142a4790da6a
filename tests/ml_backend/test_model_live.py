"""The ML backend connected to the session's real Label Studio: /health and /setup on connect,
"Retrieve predictions" for imported clips, a prediction when a task is opened with /next (one per
task and model version, however often it is opened), and fit on the annotations LS sends to /webhook."""

from __future__ import annotations

import json
import os
import re

import pytest
import requests

from label_config import LabelRecord, labeling_config, to_result
from ml_backend.audio import decode
from ml_backend.labels import Calibration
from ml_backend.measures import measure
from ml_backend.model import prediction
from scripts.labelstudio.projects import ensure_project, ensure_user, import_folder
from scripts.local.process import free_port
from tests.helpers import Proc, wait_for
from webhooks.settings import PROJECT_ROOT

MIN_SCORE = 0.5


@pytest.fixture(scope="module")
def ml(ls, ls_server, clips_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("ml-home")
    port = free_port()
    env = {**os.environ, "CLESC_HOME": str(home), "CLESC_ML_PORT": str(port), "CLESC_WORKERS": "1",
           "CLESC_LS_URL": ls_server.url, "CLESC_LS_TOKEN": ls_server.credentials.token,
           "CLESC_ML_MIN_SCORE": str(MIN_SCORE)}
    proc = Proc(["ml-backend"], env, home / "ml.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(url), 60, what="the ML backend")
    project = ensure_project(ls, "ML backend test", label_config=labeling_config(), overlap=3,
                             description="ML backend integration test").id
    import_folder(ls, project, clips_dir)
    backend = ls.ml.create(project=project, url=url, title="clesc acoustic", is_interactive=False)
    ns = type("ML", (), {"url": url, "home": home, "project": project, "backend": backend, "log": home / "ml.log"})
    try:
        yield ns
    finally:
        proc.stop()
        ls.projects.delete(project)


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).json().get("status") == "UP"
    except (requests.RequestException, ValueError):
        return False


def _ours(ls, task_id: int) -> list:
    return [p for p in ls.predictions.list(task=task_id) if (p.model_version or "").startswith("clesc-acoustic")]


def test_label_studio_connected_the_backend(ls, ml):
    backend = ls.ml.get(ml.backend.id)
    assert str(backend.state) in ("CO", "Connected", "MlBackendState.CO") or "CO" in str(backend.state)
    assert "/setup" in ml.log.read_text()
    assert requests.get(ml.url + "/versions", timeout=5).status_code == 200


def test_retrieve_predictions_for_all_clips(ls, ml):
    """Every clip gets the backend's pre-fills, each result with its score (LS shows it), the
    attributes scored under CLESC_ML_MIN_SCORE left out: what the backend computes for that file."""
    ls.actions.create(id="retrieve_tasks_predictions", project=ml.project,
                      selected_items={"all": True, "excluded": []})
    tasks = list(ls.tasks.list(project=ml.project, page_size=100))
    preds = wait_for(lambda: all(_ours(ls, t.id) for t in tasks) and {t.id: _ours(ls, t.id)[0] for t in tasks},
                     120, 1, what="predictions for every clip")
    for t in tasks:
        p = preds[t.id]
        path = PROJECT_ROOT / "samples" / "clips" / t.data["audio"].split("/")[-1]
        expected = prediction(measure(decode(path)), Calibration(), None, MIN_SCORE)
        assert p.model_version == expected["model_version"]
        got = {r["from_name"]: (r["value"].get("choices") or r["value"].get("taxonomy"), r["score"]) for r in p.result}
        assert got == {r["from_name"]: (r["value"].get("choices") or r["value"].get("taxonomy"), r["score"])
                       for r in expected["result"]}
        assert all(MIN_SCORE <= r["score"] <= 1 for r in p.result)
        assert all("measures" in r["meta"] for r in p.result if r["type"] == "choices")
    assert sum(len(preds[t.id].result) for t in tasks) >= len(tasks), "the backend pre-filled next to nothing"


def test_a_task_holds_one_prediction_per_model_version_however_often_it_is_opened(ls, ls_server, ml):
    """LS asks /setup for the model version and predicts only tasks without a prediction of it."""
    ls.projects.update(ml.project, evaluate_predictions_automatically=True)
    headers = {"Authorization": f"Token {ls_server.credentials.token}"}
    opened = [requests.get(f"{ls_server.url}/api/projects/{ml.project}/next", timeout=60, headers=headers).json()["id"]
              for _ in range(3)]
    for tid in set(opened):
        requests.get(f"{ls_server.url}/api/tasks/{tid}", timeout=60, headers=headers).raise_for_status()
    ls.actions.create(id="retrieve_tasks_predictions", project=ml.project,
                      selected_items={"all": True, "excluded": []})
    counts = {t.id: len(_ours(ls, t.id)) for t in ls.tasks.list(project=ml.project, page_size=100)}
    assert set(counts.values()) == {1}, counts
    setup = requests.post(ml.url + "/setup", json={"project": str(ml.project), "schema": labeling_config()},
                          timeout=30).json()
    assert {p.model_version for t in counts for p in _ours(ls, t)} == {setup["model_version"]}


def test_next_task_gets_a_prediction(ls, ls_server, ml):
    for t in ls.tasks.list(project=ml.project, page_size=100):
        for p in _ours(ls, t.id):
            ls.predictions.delete(p.id)
    ls.projects.update(ml.project, evaluate_predictions_automatically=True)
    task = requests.get(f"{ls_server.url}/api/projects/{ml.project}/next", timeout=60,
                        headers={"Authorization": f"Token {ls_server.credentials.token}"}).json()
    wait_for(lambda: _ours(ls, task["id"]), 60, 1, what="a prediction for the opened task")


def test_annotations_reach_fit_and_refit_the_calibration(ls, ml):
    task = next(t for t in ls.tasks.list(project=ml.project, page_size=100)
                if t.data["audio"].endswith("plain-normal-medium.wav"))
    # The project's annotators call this normal-paced clip "fast": the backend should learn their scale.
    # Three people, not one person three times: a consensus counts one annotation per annotator.
    for n in range(3):
        ls.annotations.create(id=task.id, result=to_result(LabelRecord("fast", "medium", "medium")),
                              completed_by=ensure_user(ls, f"ml-annotator{n}@example.com"))
    path = ml.home / "ml-backend" / f"pairs-{ml.project}.json"
    pairs = wait_for(lambda: path.exists() and json.loads(path.read_text()), 60, 1, what="fit to store the clip")
    assert pairs[str(task.id)]["labels"] == {"pace": "fast", "pitch": "medium", "volume": "medium"}
    calibration = json.loads((ml.home / "ml-backend" / f"calibration-{ml.project}.json").read_text())
    assert calibration


def test_no_secret_from_ls_payloads_in_logs_or_model_dir(ls, ml):
    """LS sends project.token and task_data_password to /webhook; none may be logged or kept."""
    wait_for(lambda: "fit: project" in ml.log.read_text(), 30, what="the webhook test's fit logged")
    texts = [ml.log.read_text()] + [p.read_text() for p in (ml.home / "ml-backend").rglob("*") if p.is_file()]
    leaked = re.compile(r"""['"](token|task_data_password|access_token)['"]\s*:\s*['"](?!\[redacted\])[^'"]+""")
    assert not [m.group(0) for t in texts for m in leaked.finditer(t)]
    assert not list((ml.home / "ml-backend").glob("*/event.json"))
