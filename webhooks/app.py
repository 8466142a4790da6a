"""The webhook service: a Flask application factory with one blueprint.

`POST /webhook` answers fast (LS waits for it inside the annotator's Submit, 1 s timeout, no retry):
check the secret, validate, keep an allow-listed copy, persist, enqueue, 202. `GET /health`.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from label_config.schema import REVIEW
from webhooks.ingest import BadPayload, decode_body, parse_webhook
from webhooks.queue import JobQueue
from webhooks.settings import Settings
from webhooks.store import ColumnOverflow, Store

SECRET_HEADER = "X-Clesc-Secret"
log = logging.getLogger("clesc.webhooks")
bp = Blueprint("webhooks", __name__)


def create_app(settings: Settings, store: Store | None = None, queue: JobQueue | None = None) -> Flask:
    if not settings.webhook_secret:
        raise ValueError("CLESC_WEBHOOK_SECRET must be set: LS sends it in the X-Clesc-Secret header")
    app = Flask("clesc-webhooks")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["clesc"] = {
        "settings": settings,
        "store": store or Store(settings.database_url),
        "queue": queue or JobQueue.from_settings(settings),
    }
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _store_down)
    return app


def _store_down(exc: SQLAlchemyError):
    """The store is unreachable (PostgreSQL restarting, disk full): 503, nothing half-stored (the event's
    transaction rolled back); LS does not retry, the reconcile catches up what it sent meanwhile."""
    log.error("store unavailable: %s", type(exc).__name__)
    response = jsonify(error="store unavailable", detail="the event store cannot be reached; try again")
    response.headers["Retry-After"] = "5"
    return response, 503


def _ctx():
    return current_app.extensions["clesc"]


def _http_error(exc: HTTPException):
    return jsonify(error=exc.name, detail=exc.description), exc.code


def _refuse(status: int, detail: str):
    log.warning("webhook refused %d: %s", status, detail)
    return jsonify(error="refused", detail=detail), status


@bp.post("/webhook")
def webhook():
    ctx = _ctx()
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), ctx["settings"].webhook_secret.encode()):
        return _refuse(401, f"missing or wrong {SECRET_HEADER} header")
    raw = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH, before anything is read
    try:
        event = parse_webhook(decode_body(raw))  # strict UTF-8, depth limit before parsing, bounded values
    except BadPayload as e:
        return _refuse(400, str(e))
    if event is None:
        return jsonify(status="ignored", reason="action not handled"), 200
    role = ctx["store"].project_roles().get(event.project_id)
    if role is None:
        return jsonify(status="ignored", reason=f"project {event.project_id} is not a watched pool"), 200
    try:
        event_id, enqueue = ctx["store"].accept_event(
            delivery_key=event.delivery_key, source="webhook", action=event.action,
            project_id=event.project_id, task_id=event.task_id, annotation=event.annotation,
        )
    except ColumnOverflow as e:  # parse_webhook bounds what is stored; this is the store's own guard
        return _refuse(400, str(e))
    if event_id is None:
        log.info("duplicate delivery %s annotation %s ignored", event.action, event.annotation["id"])
        return jsonify(status="duplicate"), 200
    log.info("event %d: %s project %d task %d annotation %d", event_id, event.action, event.project_id,
             event.task_id, event.annotation["id"])
    try:
        if role == REVIEW:
            ctx["queue"].apply_decision(event.task_id)
        elif enqueue:  # else a judgement of this task waits in the queue already (coalesced)
            ctx["queue"].enqueue_claimed(ctx["store"], event.project_id, event.task_id)
    except Exception:  # noqa: BLE001 - the event is durable; the worker's sweep enqueues it again
        log.exception("event %d stored but not enqueued; the sweep will pick it up", event_id)
    return jsonify(status="accepted", event=event_id), 202


@bp.get("/health")
def health():
    ctx = _ctx()
    report, ok = {}, True
    try:
        ctx["store"].ping()
        report["store"] = "ok"
    except Exception as e:  # noqa: BLE001
        ok, report["store"] = False, f"error: {type(e).__name__}"
    try:
        report["queue"] = {"status": "ok", "pending_jobs": ctx["queue"].pending_count()}
    except Exception as e:  # noqa: BLE001
        ok, report["queue"] = False, {"status": f"error: {type(e).__name__}"}
    if report["store"] == "ok":  # failed events are listed, not a 503: the service itself works
        try:
            counts = ctx["store"].event_counts()
            report["events"] = {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0),
                                "done": counts.get("done", 0),
                                "failed_recent": [{"id": e["id"], "project": e["project_id"], "task": e["task_id"],
                                                   "attempts": e["attempts"], "error": e["error"]}
                                                  for e in ctx["store"].failed_events(limit=10)]}
        except SQLAlchemyError as e:
            ok, report["store"] = False, f"error: {type(e).__name__}"
    report["status"] = "ok" if ok else "degraded"
    return jsonify(report), 200 if ok else 503
