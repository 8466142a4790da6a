"""The ML backend's edges without Label Studio: audio fetching (no SSRF, limits) and batch predict."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ml_backend.fetch import AudioSource, FetchError
from ml_backend.model import BACKEND_VERSION, BackendConfig, ClescBackend, majority_labels
from webhooks.settings import PROJECT_ROOT

CLIP = PROJECT_ROOT / "samples" / "clips" / "plain-normal-medium.wav"


class _Handler(BaseHTTPRequestHandler):
    seen_auth: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        _Handler.seen_auth.append(self.headers.get("Authorization"))
        if self.path.startswith("/data/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
            return
        body = CLIP.read_bytes() if self.path.startswith("/data/local-files") else b"x" * 5000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fake_ls():
    """A stand-in for LS's file serving (a test double: only the bytes and headers matter here)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetches_from_the_ls_host_with_the_token(fake_ls):
    data = AudioSource(ls_url=fake_ls, token="tok").read("/data/local-files/?d=clips/x.wav")
    assert data == CLIP.read_bytes() and _Handler.seen_auth[-1] == "Token tok"


def test_a_personal_access_token_is_asked_for_its_header_on_each_fetch(fake_ls):
    """With a personal access token the header comes from the SDK client (a fresh `Bearer` access token)."""
    issued = iter(["Bearer access-1", "Bearer access-2"])
    source = AudioSource(ls_url=fake_ls, token="refresh-jwt", authorization=lambda: next(issued))
    source.read("/data/local-files/?d=clips/x.wav")
    source.read("/data/local-files/?d=clips/x.wav")
    assert _Handler.seen_auth[-2:] == ["Bearer access-1", "Bearer access-2"]


def test_no_access_token_is_a_clear_fetch_error(fake_ls):
    def refused() -> str:
        raise RuntimeError("401 from /api/token/refresh")

    with pytest.raises(FetchError, match="no access token from Label Studio"):
        AudioSource(ls_url=fake_ls, authorization=refused).read("/data/local-files/?d=clips/x.wav")


@pytest.mark.parametrize("ref, message", [
    ("http://169.254.169.254/latest/meta-data", "refusing"),
    ("http://10.0.0.1/data/upload/1/a.wav", "refusing"),
    ("gopher://127.0.0.1/x", "refusing"),
    ("file:///etc/passwd", "local paths are not allowed"),
    ("", "no audio URL"),
])
def test_hostile_or_odd_urls_are_refused_without_a_request(fake_ls, ref, message):
    before = len(_Handler.seen_auth)
    with pytest.raises(FetchError, match=message):
        AudioSource(ls_url=fake_ls).read(ref)
    assert len(_Handler.seen_auth) == before


def test_redirects_are_not_followed_and_size_is_capped(fake_ls):
    with pytest.raises(FetchError, match="302"):
        AudioSource(ls_url=fake_ls).read("/data/redirect")
    with pytest.raises(FetchError, match="larger than"):
        AudioSource(ls_url=fake_ls, max_bytes=1024).read("/data/upload/1/big.wav")


def test_local_files_stay_under_the_audio_root(tmp_path):
    source = AudioSource(ls_url=None, audio_root=PROJECT_ROOT / "samples")
    assert source.read("/data/local-files/?d=clips/plain-normal-medium.wav") == CLIP.read_bytes()
    for ref in ("/data/local-files/?d=../../etc/passwd", "/etc/passwd", "file:///etc/hostname"):
        with pytest.raises(FetchError, match="outside the audio root"):
            source.read(ref)


def test_batch_predict_skips_bad_tasks_and_continues(tmp_path):
    root = tmp_path / "audio"
    (root / "clips").mkdir(parents=True)
    shutil.copy(CLIP, root / "clips" / "good.wav")
    (root / "clips" / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (root / "clips" / "empty.wav").write_bytes(b"")
    ClescBackend.config = BackendConfig(model_dir=tmp_path / "models", audio_root=root, min_score=0.0)
    try:
        backend = ClescBackend()
        tasks = [{"id": i, "project": 1, "data": {"audio": ref}} for i, ref in enumerate([
            "/data/local-files/?d=clips/good.wav", "/data/local-files/?d=clips/corrupt.wav",
            "/data/local-files/?d=clips/empty.wav", "http://169.254.169.254/x.wav",
            "/data/local-files/?d=clips/good.wav"])]
        predictions = backend.predict(tasks)
    finally:
        ClescBackend.config = None
    assert [bool(p) for p in predictions] == [True, False, False, False, True]
    first = predictions[0]
    assert {"pace", "pitch", "volume"} <= {r["from_name"] for r in first["result"]}
    assert first["model_version"].startswith(BACKEND_VERSION + "/")
    assert first["result"][0]["meta"]["measures"]


def test_an_unexpected_error_on_one_task_costs_only_that_task(tmp_path, monkeypatch, caplog):
    # only AudioError and FetchError were caught: anything else (PyAV's own ValueError on a stream that
    # changes rate, a bug in a measure) failed the whole "Retrieve predictions" batch
    root = tmp_path / "audio"
    (root / "clips").mkdir(parents=True)
    shutil.copy(CLIP, root / "clips" / "good.wav")
    measure_task = ClescBackend.measure_task

    def failing_on_task_1(self, task):
        if task["id"] == 1:
            raise RuntimeError("a bug in a measure")
        return measure_task(self, task)

    monkeypatch.setattr(ClescBackend, "measure_task", failing_on_task_1)
    ClescBackend.config = BackendConfig(model_dir=tmp_path / "models", audio_root=root, min_score=0.0)
    try:
        tasks = [{"id": i, "project": 1, "data": {"audio": "/data/local-files/?d=clips/good.wav"}} for i in range(3)]
        with caplog.at_level("ERROR", logger="clesc.ml_backend"):
            predictions = ClescBackend().predict(tasks)
    finally:
        ClescBackend.config = None
    assert [bool(p) for p in predictions] == [True, False, True]
    [record] = [r for r in caplog.records if "task 1" in r.getMessage()]
    assert record.getMessage() == "task 1: no prediction: internal error (RuntimeError: a bug in a measure)"
    assert record.exc_info is not None  # the traceback goes to the log, for the bug report


def test_setup_reports_the_model_version_the_predictions_carry(tmp_path):
    """LS 1.23 predicts again for every task without a prediction of the version /setup reports."""
    from ml_backend.app import create_ml_app

    root = tmp_path / "audio"
    (root / "clips").mkdir(parents=True)
    shutil.copy(CLIP, root / "clips" / "good.wav")
    app = create_ml_app(BackendConfig(model_dir=tmp_path / "models", audio_root=root, min_score=0.0))
    client = app.test_client()
    setup = client.post("/setup", json={"project": "7.1700000000", "schema": "<View/>"}).get_json()
    answer = client.post("/predict", json={"tasks": [{"id": 1, "project": 7, "data": {
        "audio": "/data/local-files/?d=clips/good.wav"}}], "project": "7.1700000000", "label_config": "<View/>"})
    assert answer.get_json()["results"][0]["model_version"] == setup["model_version"] != "INITIAL"
    assert setup["model_version"].startswith(BACKEND_VERSION + "/")


def test_a_batch_of_a_speakers_clips_is_labelled_against_the_speaker(tmp_path):
    """Tasks carrying `speaker` build the speaker's reference; its clips are then labelled against it."""
    root = tmp_path / "audio"
    (root / "clips").mkdir(parents=True)
    shutil.copy(CLIP, root / "clips" / "good.wav")
    ClescBackend.config = BackendConfig(model_dir=tmp_path / "models", audio_root=root, min_score=0.0)
    try:
        backend = ClescBackend()
        tasks = [{"id": i, "project": 3, "data": {"audio": "/data/local-files/?d=clips/good.wav", "speaker": "anna"}}
                 for i in range(3)]
        predictions = backend.predict(tasks)
        refs = backend.calibrations.speakers(3)
        again = backend.predict(tasks[:1])
    finally:
        ClescBackend.config = None
    assert refs["anna"]["clips"] == 3  # each task counted once, however often it is predicted
    assert backend.calibrations.speakers(3)["anna"]["clips"] == 3
    pitch = [next(r["value"]["choices"][0] for r in p["result"] if r["from_name"] == "pitch") for p in predictions]
    assert pitch == ["medium"] * 3  # a speaker's usual height is its medium
    assert again[0]["result"] == predictions[0]["result"]


def _ann(pace, pitch="medium", volume="medium", cancelled=False):
    result = [{"from_name": a, "to_name": "audio", "type": "choices", "value": {"choices": [v]}}
              for a, v in (("pace", pace), ("pitch", pitch), ("volume", volume))]
    return {"result": result, "was_cancelled": cancelled}


def test_majority_labels_need_a_strict_majority():
    assert majority_labels([_ann("fast"), _ann("fast"), _ann("slow")]) == {"pace": "fast", "pitch": "medium", "volume": "medium"}
    assert "pace" not in majority_labels([_ann("fast"), _ann("slow"), _ann("normal")])
    assert "pace" not in majority_labels([_ann("fast"), _ann("fast", cancelled=True), _ann("slow")])
    # one vote per annotator: a user who submitted "slow" twice, against two people's "fast"
    twice = [{**_ann("slow"), "id": 1, "completed_by": 7}, {**_ann("slow"), "id": 2, "completed_by": 7}]
    people = [{**_ann("fast"), "id": 3, "completed_by": 8}, {**_ann("fast"), "id": 4, "completed_by": 9}]
    assert majority_labels([*twice, *people])["pace"] == "fast"
    assert "pace" not in majority_labels([*twice, people[0]])  # one "slow", one "fast": no majority
    thrice = [{**_ann("fast"), "id": n, "completed_by": 7} for n in (1, 2, 3)]
    assert majority_labels(thrice) == {}  # one person three times is one vote, not a consensus


# --- issue 14: the ML backend's red-team findings ------------------------------------------------

def test_the_token_goes_to_the_label_studio_host_only(fake_ls):
    """An allowed host gets the audio request but never the LS token."""
    host = fake_ls.split("//")[1]
    source = AudioSource(ls_url="http://127.0.0.1:1", token="tok", allowed_hosts=(host,))
    source.read(f"{fake_ls}/data/local-files/?d=x.wav")
    assert _Handler.seen_auth[-1] is None


def test_setup_cannot_redirect_the_token_and_train_is_not_served(fake_ls, tmp_path):
    from ml_backend.app import create_ml_app

    app = create_ml_app(BackendConfig(model_dir=tmp_path / "models", ls_url="http://127.0.0.1:1", ls_token="tok"))
    client = app.test_client()
    listener = fake_ls + "/"
    assert client.post("/setup", json={"project": "1.1700000000", "schema": "<View/>", "hostname": listener,
                                       "access_token": "stolen"}).status_code == 200
    before = len(_Handler.seen_auth)
    answer = client.post("/predict", json={"tasks": [{"id": 1, "project": 1, "data": {
        "audio": "/data/upload/1/a.wav"}}], "project": "1.1700000000", "label_config": "<View/>"})
    assert answer.status_code == 200
    assert len(_Handler.seen_auth) == before  # nothing went to the caller's "hostname"
    target = tmp_path / "escaped"
    for path in ("/train", "/is_training"):
        r = client.post(path, json={"annotations": [{"id": 1}], "project": str(target)}) if path == "/train" \
            else client.get(path, query_string={"project": str(target)})
        assert r.status_code == 404
    assert not target.exists()
    assert client.post("/setup", json={"project": "../../etc", "schema": "<View/>"}).status_code == 400


def test_every_route_needs_the_basic_auth_credentials(tmp_path):
    from ml_backend.app import create_ml_app

    app = create_ml_app(BackendConfig(model_dir=tmp_path / "models", basic_auth_user="ls", basic_auth_pass="pw"))
    client = app.test_client()
    for method, path in (("get", "/health"), ("post", "/setup"), ("post", "/predict"), ("post", "/webhook"),
                         ("get", "/versions")):
        assert getattr(client, method)(path, json={}).status_code == 401, path
        assert getattr(client, method)(path, json={}, auth=("ls", "wrong")).status_code == 401, path
    assert client.get("/health", auth=("ls", "pw")).status_code == 200


def test_a_huge_decoded_size_is_refused_before_decoding():
    """8 channels x 384 kHz (the highest rate accepted) x 2 s is refused from the header alone (the red team's
    FLAC was 8 x 655 kHz, a rate now refused by itself)."""
    import io

    import numpy as np
    import soundfile as sf

    from ml_backend.audio import AudioError, decode

    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=384_000, channels=8, format="FLAC") as f:
        f.write(np.zeros((2 * 384_000, 8), dtype=np.float32))  # 2 s: 6.1 M samples
    data = bytearray(buf.getvalue())
    with pytest.raises(AudioError, match="too large to decode"):
        decode(bytes(data), max_seconds=3600)


class _Drip(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                threading.Event().wait(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def test_a_slow_drip_is_cut_at_the_total_deadline():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(FetchError, match="longer than 1 s"):
            AudioSource(ls_url=url, timeout_s=5, deadline_s=1).read("/data/upload/1/slow.wav")
    finally:
        server.shutdown()
