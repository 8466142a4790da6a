"""The Label Studio ML backend: pace, pitch and volume pre-annotations measured from the audio.

Built on label-studio-ml's LabelStudioMLBase (the protocol LS 1.23 speaks: /health, /setup,
/predict, /webhook). `predict` measures each task's audio and labels it with the project's
calibration; `fit` (LS sends every annotation to /webhook) refits that calibration from the
project's own majority labels, so the backend learns each project's annotators' scale.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from label_studio_ml.model import LabelStudioMLBase

from label_config import InvalidLabel, parse_annotation
from label_config.payloads import redact
from label_config.schema import ATTRIBUTES, AUDIO
from ml_backend.audio import AudioError, decode
from ml_backend.fetch import AudioSource, FetchError
from ml_backend.labels import Calibration, fit, label, model_version
from ml_backend.measures import Measures, measure

BACKEND_VERSION = "clesc-acoustic-1"
log = logging.getLogger("clesc.ml_backend")


@dataclass(frozen=True)
class BackendConfig:
    """What the backend needs; built by the entry point from the CLESC_* settings."""

    model_dir: Path
    ls_url: str | None = None
    ls_token: str | None = field(default=None, repr=False)
    audio_root: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 50_000_000
    max_seconds: float = 60.0


class CalibrationStore:
    """One calibration per LS project, and the (measures, majority labels) pairs it was fitted on."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, kind: str, project: Any) -> Path:
        return self.folder / f"{kind}-{int(project) if str(project).isdigit() else 'default'}.json"

    def calibration(self, project: Any) -> Calibration:
        path = self._path("calibration", project)
        return Calibration.from_dict(json.loads(path.read_text())) if path.exists() else Calibration()

    def pairs(self, project: Any) -> dict[str, dict[str, Any]]:
        path = self._path("pairs", project)
        return json.loads(path.read_text()) if path.exists() else {}

    def save(self, project: Any, calibration: Calibration, pairs: dict[str, dict[str, Any]]) -> None:
        for kind, data in (("pairs", pairs), ("calibration", calibration.to_dict())):
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self._path(kind, project))


def majority_labels(annotations: list[dict[str, Any]]) -> dict[str, str]:
    """pace/pitch/volume values chosen by a strict majority of the valid, non-cancelled annotations."""
    records = []
    for ann in annotations:
        if ann.get("was_cancelled"):
            continue
        try:
            records.append(parse_annotation(ann))
        except InvalidLabel:
            continue
    out = {}
    for attr in ATTRIBUTES:
        counts = Counter(getattr(r, attr) for r in records).most_common(2)
        if counts and counts[0][1] * 2 > len(records) and counts[0][1] >= 2:
            out[attr] = counts[0][0]
    return out


class ClescBackend(LabelStudioMLBase):
    TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "START_TRAINING")
    config: BackendConfig | None = None  # set by create_ml_app before LS connects

    def __init__(self, label_config=None, train_output=None, **kwargs):
        super().__init__(label_config=label_config, train_output=train_output, **kwargs)
        cfg = self.config or BackendConfig(model_dir=Path(tempfile.gettempdir()) / "clesc-ml")
        self.calibrations = CalibrationStore(cfg.model_dir)
        self.source = AudioSource(
            ls_url=self.hostname or cfg.ls_url, token=self.access_token or cfg.ls_token,
            allowed_hosts=cfg.allowed_hosts, audio_root=cfg.audio_root, max_bytes=cfg.max_bytes)
        self.max_seconds = cfg.max_seconds

    def measure_task(self, task: dict[str, Any]):
        ref = (task.get("data") or {}).get(AUDIO)
        return measure(decode(self.source.read(ref), max_seconds=self.max_seconds))

    def predict(self, tasks, **kwargs):
        """One prediction per task (pace, pitch, volume with scores); [] for a task whose audio fails."""
        predictions = []
        for task in tasks:
            project = task.get("project")
            calibration = self.calibrations.calibration(project)
            try:
                measures = self.measure_task(task)
            except (AudioError, FetchError) as e:
                log.error("task %s: no prediction: %s", task.get("id"), e)
                predictions.append([])
                continue
            labels = label(measures, calibration)
            summary = measures.to_dict()
            result = [
                {"from_name": attr, "to_name": AUDIO, "type": "choices", "value": {"choices": [value]},
                 "score": round(score, 3), "meta": {"measures": summary}}
                for attr, (value, score) in labels.items()
            ]
            predictions.append({
                "result": result,
                "score": round(sum(s for _, s in labels.values()) / len(labels), 3),
                "model_version": f"{BACKEND_VERSION}/{model_version(calibration)}",
            })
        return predictions

    def fit(self, tasks, workdir=None, **kwargs):
        """Refit the project's calibration after an annotation event, from that task's majority labels."""
        data = kwargs.get("data") or {}
        annotation = data.get("annotation") or {}
        project = (data.get("project") or {}).get("id") or annotation.get("project")
        task_id = annotation.get("task") or (data.get("task") or {}).get("id")
        cfg = self.config
        if not (project and task_id and cfg and cfg.ls_url and cfg.ls_token):
            return {}
        headers = {"Authorization": f"Token {cfg.ls_token}"}
        base = cfg.ls_url.rstrip("/")
        try:
            task = requests.get(f"{base}/api/tasks/{task_id}", headers=headers, timeout=15).json()
            annotations = requests.get(f"{base}/api/tasks/{task_id}/annotations/", headers=headers, timeout=15).json()
        except (requests.RequestException, ValueError) as e:
            log.error("fit: could not read task %s from LS: %s", task_id, type(e).__name__)
            return {}
        pairs = self.calibrations.pairs(project)
        labels = majority_labels(annotations if isinstance(annotations, list) else [])
        if labels:
            try:
                pairs[str(task_id)] = {"measures": self.measure_task(task).to_dict(), "labels": labels}
            except (AudioError, FetchError) as e:
                log.error("fit: task %s skipped: %s", task_id, e)
        else:
            pairs.pop(str(task_id), None)
        calibration = fit([(Measures.from_dict(p["measures"]), p["labels"]) for p in pairs.values()], Calibration())
        self.calibrations.save(project, calibration, pairs)
        log.info("fit: project %s calibration %s from %d clip(s)", project, calibration.name, len(pairs))
        return {"calibration": calibration.name, "clips": len(pairs)}


_fits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clesc-fit")


def _fit_later(event: str, data: dict[str, Any]) -> None:
    try:
        ClescBackend().fit((), event=event, data=data)
    except Exception:  # noqa: BLE001 - a failed refit keeps the previous calibration
        log.exception("fit after %s failed", event)


def webhook_view():
    """LS's annotation events: answer at once (LS waits up to 1 s), refit in the background.

    Replaces label-studio-ml 1.0.9's /webhook, whose job manager logs the whole payload and keeps
    it on disk (event.json), `project.token` and `task_data_password` included.
    """
    from flask import jsonify, request

    data = redact(request.get_json(silent=True) or {})
    event = data.pop("action", None) if isinstance(data, dict) else None
    if event in ClescBackend.TRAIN_EVENTS:
        _fits.submit(_fit_later, event, data)
        return jsonify({"status": "fit scheduled", "event": event}), 201
    return jsonify({"status": "ignored", "event": event}), 200


def create_ml_app(config: BackendConfig):
    """The WSGI app LS connects to as an ML backend (label-studio-ml's Flask app, configured)."""
    from flask import jsonify
    from label_studio_ml.api import _manager, init_app

    ClescBackend.config = config
    config.model_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("label_studio_ml").setLevel(logging.WARNING)
    app = init_app(ClescBackend, model_dir=str(config.model_dir))
    app.view_functions["webhook"] = webhook_view
    # A model per process before any request: LS may send /predict to a gunicorn worker that never
    # saw its /setup (label-studio-ml keeps the model per process and refuses to predict without one).
    _manager.fetch()
    if "clesc_versions" not in app.view_functions:
        # label-studio-ml 1.0.9 only routes POST /versions; LS 1.23 asks with GET.
        app.add_url_rule("/versions", "clesc_versions", lambda: jsonify({"versions": [BACKEND_VERSION]}),
                         methods=["GET"])
    return app
