"""The per-project calibrations of the ML backend, kept as JSON files in CLESC_ML_DIR.

One calibration per LS project and the (measures, majority labels) pairs it was fitted on; files are
replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ml_backend.labels import Calibration

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
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self._path(kind, project))
