"""The WSGI app Label Studio connects to as an ML backend: label-studio-ml's Flask app, configured.

`create_ml_app(config)` (WSGI: `scripts.wsgi:ml_backend()`) serves `ClescBackend` with two changes
to label-studio-ml 1.0.9's routes: `/webhook` answers at once and refits in the background, and
`GET /versions` exists (1.0.9 routes only POST; LS 1.23 asks with GET).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from label_config.redact import redact
from ml_backend.model import BACKEND_VERSION, BackendConfig, ClescBackend

log = logging.getLogger("clesc.ml_backend")

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
