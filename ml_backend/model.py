"""The Label Studio ML backend: pace, pitch and volume pre-annotations measured from the audio.

Built on label-studio-ml's LabelStudioMLBase (the protocol LS 1.23 speaks: /health, /setup,
/predict, /webhook). `predict` measures each task's audio and labels it with the project's
calibration; `fit` (LS sends every annotation to /webhook) refits that calibration from the
project's own majority labels, so the backend learns each project's annotators' scale.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from label_studio_ml.model import LabelStudioMLBase

from label_config import InvalidLabel, current_annotations, parse_annotation
from label_config.records import choice_result, taxonomy_result
from label_config.schema import ATTRIBUTES, AUDIO
from label_config.taxonomy import load_taxonomy
from ml_backend.audio import DEFAULT_MAX_SAMPLES, AudioError, decode
from ml_backend.calibrations import CalibrationStore
from ml_backend.fetch import AudioSource, FetchError
from ml_backend.labels import Calibration, fit, label, model_version, voice_words
from ml_backend.measures import Measures, measure

BACKEND_VERSION = "clesc-acoustic-4"
log = logging.getLogger("clesc.ml_backend")


@dataclass(frozen=True)
class BackendConfig:
    """What the backend needs; built by the entry point from the CLESC_* settings."""

    model_dir: Path
    ls_url: str | None = None
    ls_token: str | None = field(default=None, repr=False)
    ls: Any = field(default=None, repr=False, compare=False)
    """An SDK client for that Label Studio, built by the entry point (webhooks.ls_client.connect: the
    project's one retry policy); `fit` reads a task's annotations through it."""
    authorization: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    """The Authorization header for fetching audio from that LS (webhooks.ls_client.authorization of `ls`,
    so personal access tokens work); None: `Token <ls_token>`."""
    audio_root: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = 50_000_000
    max_seconds: float = 60.0
    max_samples: int = DEFAULT_MAX_SAMPLES
    min_score: float = 0.5
    """Pre-fills scored below this are left empty (CLESC_ML_MIN_SCORE)."""
    fetch_deadline_s: float = 30.0
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)


def majority_labels(annotations: list[dict[str, Any]]) -> dict[str, str]:
    """pace/pitch/volume values chosen by a strict majority of the valid, non-cancelled annotations, one
    per annotator (the newest: `current_annotations`)."""
    records = []
    for ann in current_annotations(annotations):
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
        # The LS URL and token come from the backend's own settings only, never from /setup's body
        # (its `hostname` and `access_token` are the caller's word: a forged /setup would get the token).
        self.source = AudioSource(
            ls_url=cfg.ls_url, token=cfg.ls_token, authorization=cfg.authorization, allowed_hosts=cfg.allowed_hosts,
            audio_root=cfg.audio_root,
            max_bytes=cfg.max_bytes, deadline_s=cfg.fetch_deadline_s)
        self.cfg = cfg

    def measure_task(self, task: dict[str, Any]):
        ref = (task.get("data") or {}).get(AUDIO)
        return measure(decode(self.source.read(ref), max_seconds=self.cfg.max_seconds,
                              max_samples=self.cfg.max_samples))

    def predict(self, tasks, **kwargs):
        """One prediction per task (pace, pitch, volume with scores); [] for a task whose audio fails.

        The whole batch is measured first: tasks that carry a `speaker` add their clip to the
        project's speaker references, so a batch of a speaker's clips is labelled against them."""
        measured: list[Measures | None] = []
        for task in tasks:
            try:
                measured.append(self.measure_task(task))
            except (AudioError, FetchError) as e:
                log.error("task %s: no prediction: %s", task.get("id"), e)
                measured.append(None)
            except Exception as e:  # noqa: BLE001 - a bug on one clip must not cost the batch its other tasks
                log.exception("task %s: no prediction: internal error (%s: %s)", task.get("id"), type(e).__name__, e)
                measured.append(None)
        predictions = []
        for project in dict.fromkeys(task.get("project") for task in tasks):
            of_project = [(t, m) for t, m in zip(tasks, measured) if t.get("project") == project]
            refs = self.calibrations.speakers(project, {t.get("id"): (task_speaker(t), m) for t, m in of_project
                                                        if m is not None and task_speaker(t) and t.get("id") is not None})
            calibration = replace(self.calibrations.calibration(project), speakers=refs)
            for task, m in of_project:
                predictions.append((task, [] if m is None else
                                    prediction(m, calibration, task_speaker(task), self.cfg.min_score)))
        order = {id(t): i for i, t in enumerate(tasks)}
        return [p for _, p in sorted(predictions, key=lambda tp: order[id(tp[0])])]

    def current_model_version(self, project: Any) -> str:
        """The model_version this backend's predictions carry in `project` now (what /setup reports,
        so that LS sees which tasks already hold a prediction of it and does not ask again)."""
        return f"{BACKEND_VERSION}/{model_version(self.calibrations.calibration(project))}"

    def fit(self, tasks, workdir=None, **kwargs):
        """Refit the project's calibration after an annotation event, from that task's majority labels."""
        data = kwargs.get("data") or {}
        annotation = data.get("annotation") or {}
        project = (data.get("project") or {}).get("id") or annotation.get("project")
        task_id = annotation.get("task") or (data.get("task") or {}).get("id")
        cfg = self.config
        if not (project and task_id and cfg and cfg.ls is not None):
            return {}
        try:
            task = cfg.ls.tasks.get(task_id).model_dump(mode="json")
            annotations = [a.model_dump(mode="json") for a in cfg.ls.annotations.list(id=task_id)]
        except Exception as e:  # noqa: BLE001 - the client already retried; keep the calibration as it is
            log.error("fit: could not read task %s from LS: %s", task_id, type(e).__name__)
            return {}
        if task.get("project") not in (None, project) and str(task.get("project")) != str(project):
            log.error("fit: task %s is not in project %s; event ignored", task_id, project)
            return {}
        pairs = self.calibrations.pairs(project)
        labels = majority_labels(annotations if isinstance(annotations, list) else [])
        if labels and task_speaker(task):
            labels["speaker"] = task_speaker(task)
        if labels:
            try:
                pairs[str(task_id)] = {"measures": self.measure_task(task).to_dict(), "labels": labels}
            except (AudioError, FetchError) as e:
                log.error("fit: task %s skipped: %s", task_id, e)
        else:
            pairs.pop(str(task_id), None)
        calibration = fit([(Measures.from_dict(p["measures"]), p["labels"]) for p in pairs.values()], Calibration(),
                          speakers=self.calibrations.speakers(project))
        self.calibrations.save(project, calibration, pairs)
        log.info("fit: project %s calibration %s from %d clip(s)", project, calibration.name, len(pairs))
        return {"calibration": calibration.name, "clips": len(pairs)}


def task_speaker(task: dict[str, Any]) -> str | None:
    """The task's speaker (task data `speaker`, e.g. from a manifest column), for the speaker's own references."""
    speaker = (task.get("data") or {}).get("speaker")
    return str(speaker)[:200] if speaker not in (None, "") else None


def prediction(measures: Measures, calibration: Calibration, speaker: str | None, min_score: float) -> dict[str, Any]:
    """The LS prediction: pace/pitch/volume scored >= min_score and the voice words scored >= min_score."""
    labels = {a: vs for a, vs in label(measures, calibration, speaker).items() if vs[1] >= min_score}
    summary = measures.to_dict()
    result = [choice_result(attr, value, score=round(score, 3), meta={"measures": summary})
              for attr, (value, score) in labels.items()]
    words = [(w, s) for w, s in voice_words(measures) if s >= min_score]
    if words:
        voice = taxonomy_result("voice", [w for w, _ in words], load_taxonomy())
        voice["score"] = round(min(s for _, s in words), 3)
        voice["meta"] = {"scores": dict(words)}
        result.append(voice)
    scores = [s for _, s in labels.values()] + [s for _, s in words]
    return {"result": result, "score": round(sum(scores) / len(scores), 3) if scores else 0.0,
            "model_version": f"{BACKEND_VERSION}/{model_version(calibration)}"}


def describe_file(path: Any, calibration: Calibration | None = None) -> dict[str, Any]:
    """What the backend says of a local audio file: {file, pace, pitch, volume, scores, measures}.

    AudioError when the file cannot be measured (`clesc features` lists it and goes on).
    """
    measures = measure(decode(path))
    labels = label(measures, calibration or Calibration())
    return {"file": str(path), **{a: v for a, (v, _) in labels.items()},
            "scores": {a: round(s, 3) for a, (_, s) in labels.items()},
            "voice": [{"word": w, "score": s} for w, s in voice_words(measures)], "measures": measures.to_dict()}
