"""A team's own Label Studio, without the demo's conveniences: personal access tokens only (no legacy token),
the team's own project titles, a same-named project of theirs that setup must not take over unless told.
Then the whole path through the `clesc` command and the real services: setup, import, a labelled clip, a
verdict, a report."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import pytest

from label_config import LabelRecord, to_result
from scripts.labelstudio.projects import ensure_user
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv, personal_access_token
from scripts.local.process import free_port
from tests.helpers import CLESC, SAMPLES, Proc, assert_owner_only, healthy, wait_for
from webhooks.ls_client import connect
from webhooks.settings import Settings

pytestmark = pytest.mark.ls  # its own Label Studio

TITLES = {"CLESC_EXPERT_PROJECT": "Team experts", "CLESC_CROWD_PROJECT": "Team crowd",
          "CLESC_REVIEW_PROJECT": "Team review"}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    base = tmp_path_factory.mktemp("team-ls")
    media = base / "media"
    shutil.copytree(SAMPLES, media / "clips")
    creds = Credentials("owner@example.com", secrets.token_urlsafe(12), secrets.token_hex(20))
    server = LabelStudioServer(ensure_venv(Settings.from_env().ls_venv), base / "data", free_port(), creds,
                               document_root=media)
    server.legacy_token = False
    server.start()
    try:
        token = personal_access_token(server.url, creds.username, creds.password)
        home = base / "home"
        env = {**os.environ, "CLESC_HOME": str(home), "CLESC_LS_URL": server.url, "CLESC_LS_TOKEN": token,
               "CLESC_WEBHOOK_SECRET": secrets.token_urlsafe(16), "CLESC_SERVICE_PORT": str(free_port()),
               "CLESC_LS_DOCUMENT_ROOT": str(media), "CLESC_OPS_USERS": creds.username, **TITLES}
        yield server, token, env, media
    finally:
        server.stop()


def clesc(env, *args, check=True):
    r = subprocess.run([CLESC, *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def wait_for_prefills(ls, project: int) -> None:
    """Until every task of the project holds a pre-fill of the ML backend (at most 2 minutes)."""
    tasks = list(ls.tasks.list(project=project, page_size=100))

    def predicted():
        return all(any((p.model_version or "").startswith("clesc-acoustic") and p.result
                       for p in ls.predictions.list(task=t.id)) for t in tasks)

    wait_for(predicted, 120, 1, what="pre-fills for every clip")


def test_the_legacy_token_is_off_and_the_personal_token_works(team):
    import requests

    server, token, _, _ = team
    assert requests.get(server.url + "/api/projects", timeout=10,
                        headers={"Authorization": f"Token {server.credentials.token}"}).status_code == 401
    assert connect(server.url, token).projects.list() is not None


def test_its_data_dir_and_sqlite_database_are_owner_only(team):
    server = team[0]
    assert server.database == "sqlite"
    assert_owner_only(server)


def test_setup_refuses_a_project_it_did_not_make_unless_told(team):
    server, token, env, _ = team
    ls = connect(server.url, token)
    theirs = ls.projects.create(title="Team experts", label_config='<View><Text name="t" value="$text"/></View>',
                                description="the team's own project").id
    refused = clesc(env, "setup", check=False)
    assert refused.returncode == 2 and "'Team experts'" in refused.stderr and "--adopt" in refused.stderr
    assert sorted(p.title for p in ls.projects.list()) == ["Team experts"]  # nothing created or changed
    assert "Text" in ls.projects.get(theirs).label_config
    adopted = clesc(env, "setup", "--adopt")
    assert "Team crowd" in adopted.stdout
    assert sorted(p.title for p in ls.projects.list()) == ["Team crowd", "Team experts", "Team review"]
    again = clesc(env, "setup")  # now it is ours: re-running is quiet and changes nothing
    assert ": exists;" in again.stdout and "unchanged" in again.stdout


def test_a_clip_labelled_judged_and_reported_with_a_personal_token(team, tmp_path):
    server, token, env, media = team
    ls = connect(server.url, token)
    clesc(env, "setup")
    clesc(env, "import", str(media / "clips"))
    serve = Proc(["serve"], env, tmp_path / "serve.log").start()
    worker = Proc(["worker"], env, tmp_path / "worker.log").start()
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{env['CLESC_SERVICE_PORT']}"), 60, what="the service")
        crowd = next(p.id for p in ls.projects.list() if p.title == "Team crowd")
        task = next(t for t in ls.tasks.list(project=crowd) if t.data["audio"].endswith("calm-slow-low-quiet.wav"))
        record = LabelRecord("slow", "low", "quiet", emotion=("calm", "tired"))
        for n in (1, 2, 3):
            ls.annotations.create(id=task.id, result=to_result(record),
                                  completed_by=ensure_user(ls, f"team{n}@example.com"))
        meta = wait_for(lambda: (m := (ls.tasks.get(task.id).meta or {}).get("clesc")) and m, timeout=120,
                        what="the verdict")
        assert meta["status"] == "accepted" and meta["consensus"]["emotion"] == ["calm", "tired"]
    finally:
        worker.stop()
        serve.stop()
    out = tmp_path / "report"
    clesc(env, "report", "--out", str(out), "--no-embeddings", "--bootstrap", "50")
    figures = json.loads((out / "report.json").read_text())
    assert figures["crowd"]["annotations"] == 3 and figures["label_studio"]["url"] == server.url


def test_the_ml_backend_prefills_with_a_personal_token(team, tmp_path):
    """The backend fetches each clip over HTTP from LS (no local audio root) with the personal access token:
    the SDK turns it into `Bearer` access tokens; the legacy `Token` header would be refused."""
    import requests

    from label_config import labeling_config
    from scripts.labelstudio.projects import ensure_project, import_folder

    server, token, env, media = team
    ls = connect(server.url, token)
    port = free_port()
    ml_env = {**env, "CLESC_HOME": str(tmp_path), "CLESC_ML_PORT": str(port), "CLESC_WORKERS": "1",
              "CLESC_ML_MIN_SCORE": "0"}
    ml_env.pop("CLESC_ML_AUDIO_ROOT", None)
    backend = Proc(["ml-backend"], ml_env, tmp_path / "ml.log").start()
    project = ensure_project(ls, "Team ML check", label_config=labeling_config(), overlap=3,
                             description="ML backend with a personal access token").id
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(url), 60, what="the ML backend")
        import_folder(ls, project, media / "clips")
        ls.ml.create(project=project, url=url, title="clesc acoustic", is_interactive=False)
        ls.actions.create(id="retrieve_tasks_predictions", project=project, selected_items={"all": True, "excluded": []})
        wait_for_prefills(ls, project)
        log = (tmp_path / "ml.log").read_text()
        assert "answered 401" not in log and token not in log
        assert requests.get(server.url + "/api/projects", timeout=10,
                            headers={"Authorization": f"Token {token}"}).status_code == 401
    finally:
        backend.stop()
        ls.projects.delete(project)


def test_setup_connects_the_ml_backend_with_its_credentials(team, tmp_path):
    """`clesc setup` with CLESC_ML_URL and the backend's basic-auth credentials: LS sends them, so Retrieve
    predictions pre-fills (setup once connected it without them, and LS got 401 on every call)."""
    import requests

    from scripts.labelstudio.projects import retrieve_predictions

    server, token, env, media = team
    ls = connect(server.url, token)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = ("label-studio", secrets.token_urlsafe(12))
    ml_env = {**env, "CLESC_HOME": str(tmp_path), "CLESC_ML_PORT": str(port), "CLESC_WORKERS": "1",
              "CLESC_ML_MIN_SCORE": "0", "CLESC_ML_URL": url,
              "CLESC_ML_BASIC_AUTH_USER": auth[0], "CLESC_ML_BASIC_AUTH_PASS": auth[1]}
    ml_env.pop("CLESC_ML_AUDIO_ROOT", None)
    backend = Proc(["ml-backend"], ml_env, tmp_path / "ml.log").start()

    def backend_status():
        try:
            return requests.get(url + "/health", timeout=2).status_code
        except requests.RequestException:
            return None

    try:
        wait_for(lambda: backend_status() == 401, 60, what="the ML backend")
        assert requests.get(url + "/health", auth=auth, timeout=2).ok
        clesc({**ml_env, "CLESC_HOME": env["CLESC_HOME"]}, "setup")
        clesc(env, "import", str(media / "clips"))
        crowd = next(p.id for p in ls.projects.list() if p.title == "Team crowd")
        retrieve_predictions(ls, crowd)
        wait_for_prefills(ls, crowd)
        log = (tmp_path / "ml.log").read_text()
        assert "answered 401" not in log and auth[1] not in log
    finally:
        backend.stop()
        for p in ls.projects.list():
            for b in ls.ml.list(project=p.id):
                ls.ml.delete(b.id)
