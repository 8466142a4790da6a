"""The per-project calibrations of the ML backend, kept as JSON files in CLESC_ML_DIR.

One calibration per LS project, the (measures, majority labels) pairs it was fitted on, and the
speaker, median F0 and syllable rate of every clip the backend measured in the project (the
speakers' own references); files are replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ml_backend.labels import Calibration, speaker_references
from ml_backend.measures import Measures

log = logging.getLogger("clesc.ml_backend")


class CalibrationStore:
    """One calibration per LS project, and the (measures, majority labels) pairs it was fitted on."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, kind: str, project: Any) -> Path:
        return self.folder / f"{kind}-{int(project) if str(project).isdigit() else 'default'}.json"

    def calibration(self, project: Any) -> Calibration:
        path = self._path("calibration", project)
        if not path.exists():
            return Calibration()
        try:
            return Calibration.from_dict(json.loads(path.read_text()))
        except ValueError as e:  # fitted by older rules: the defaults until the next fit
            log.warning("calibration of project %s not used: %s", project, e)
            return Calibration()

    def pairs(self, project: Any) -> dict[str, dict[str, Any]]:
        path = self._path("pairs", project)
        return json.loads(path.read_text()) if path.exists() else {}

    def save(self, project: Any, calibration: Calibration, pairs: dict[str, dict[str, Any]]) -> None:
        for kind, data in (("pairs", pairs), ("calibration", calibration.to_dict())):
            self._write(kind, project, data)

    def _write(self, kind: str, project: Any, data: Any) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self._path(kind, project))

    def speakers(self, project: Any, measured: dict[str, tuple[str, Measures]] | None = None) -> dict[str, dict]:
        """The project's speaker references, after adding `measured` ({task id: (speaker, measures)}).

        Each task counts once however often it is measured (its latest measures kept)."""
        path = self._path("speakers", project)
        clips = json.loads(path.read_text()) if path.exists() else {}
        if measured:
            for task_id, (speaker, m) in measured.items():
                clips[str(task_id)] = {"speaker": speaker, "f0_median_hz": m.f0_median_hz,
                                       "syllable_rate": m.syllable_rate}
            self._write("speakers", project, clips)
        return speaker_references((c["speaker"], _Clip(c["f0_median_hz"], c["syllable_rate"]))
                                  for c in clips.values())


class _Clip:
    """The two measures a speaker reference needs, as stored."""

    def __init__(self, f0_median_hz: float | None, syllable_rate: float | None):
        self.f0_median_hz = float("nan") if f0_median_hz is None else f0_median_hz
        self.syllable_rate = float("nan") if syllable_rate is None else syllable_rate
