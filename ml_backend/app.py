"""The WSGI app Label Studio connects to as an ML backend: label-studio-ml's Flask app, configured.

`create_ml_app(config)` (WSGI: `scripts.wsgi:ml_backend()`) serves `ClescBackend` with these changes
to label-studio-ml 1.0.9's routes:
- every route requires HTTP basic auth when CLESC_ML_BASIC_AUTH_USER/PASS are set (LS sends the
  ML backend's `basic_auth_user`/`basic_auth_pass` with every call); 401 otherwise;
- `/setup` takes the project and schema only: the LS URL and token come from the backend's own
  settings, never from the caller's `hostname`/`access_token`; a project that is not an id is 400;
  it answers the model_version of the project's predictions, so LS predicts each task once per version;
- `/train` and `/is_training` (1.0.9's job manager writes JSON files under any path given as
  `project`) are 404: LS 1.23 trains through `/webhook`;
- `/webhook` answers at once and refits in the background (the model checks the task against LS);
- `GET /versions` exists (1.0.9 routes only POST; LS 1.23 asks with GET).
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
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


PROJECT = re.compile(r"^\d{1,12}(\.\d{1,20})?$")
"""What LS sends as /setup's project: "<id>" or "<id>.<timestamp>"."""


def setup_view():
    """LS's /setup: the project and its schema; hostname and access_token in the body are ignored.

    Answers the model_version our predictions in that project carry now: LS 1.23 predicts again for
    every task with no prediction of the version /setup reports (label-studio-ml reports "INITIAL",
    which no prediction carries, so LS stored another prediction each time a task was opened)."""
    from flask import jsonify, request
    from label_studio_ml.api import _manager

    data = request.get_json(silent=True) or {}
    project = str(data.get("project") or "")
    if not PROJECT.match(project):
        return jsonify({"error": "project must be a Label Studio project id"}), 400
    # LS's model_version is not handed on: label-studio-ml would look for a training job of that name.
    model = _manager.fetch(project, data.get("schema"), bool(data.get("force_reload", False)))
    return jsonify({"model_version": model.model.current_model_version(project.split(".")[0])})


def _not_served():
    from flask import jsonify

    return jsonify({"error": "not served: Label Studio 1.23 trains through /webhook"}), 404


def _authorized(header: str | None, user: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(given, f"{user}:{password}".encode())


def create_ml_app(config: BackendConfig):
    """The WSGI app LS connects to as an ML backend (label-studio-ml's Flask app, configured)."""
    from flask import jsonify, request
    from label_studio_ml.api import _manager, init_app

    ClescBackend.config = config
    config.model_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("label_studio_ml").setLevel(logging.WARNING)
    app = init_app(ClescBackend, model_dir=str(config.model_dir))
    app.view_functions["webhook"] = webhook_view
    app.view_functions["_setup"] = setup_view
    app.view_functions["_train"] = _not_served
    app.view_functions["_is_training"] = _not_served
    if config.basic_auth_user and config.basic_auth_pass:
        def require_auth():
            if not _authorized(request.headers.get("Authorization"), config.basic_auth_user, config.basic_auth_pass):
                return jsonify({"error": "credentials required"}), 401, {"WWW-Authenticate": 'Basic realm="clesc"'}
            return None

        app.before_request_funcs.setdefault(None, []).insert(0, require_auth)
    else:
        log.warning("CLESC_ML_BASIC_AUTH_USER/PASS are not set: the ML backend accepts unauthenticated requests")
    # A model per process before any request: LS may send /predict to a gunicorn worker that never
    # saw its /setup (label-studio-ml keeps the model per process and refuses to predict without one).
    _manager.fetch()
    if "clesc_versions" not in app.view_functions:
        # label-studio-ml 1.0.9 only routes POST /versions; LS 1.23 asks with GET.
        app.add_url_rule("/versions", "clesc_versions", lambda: jsonify({"versions": [BACKEND_VERSION]}),
                         methods=["GET"])
    return app
