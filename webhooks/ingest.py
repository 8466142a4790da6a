"""Webhook payloads: validation, and the allow-listed copy that is stored (secrets never kept).

Pure functions; the Flask view calls them. LS sends `project` with `token` and
`task_data_password` inside: we keep none of `project` but its id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from label_config.redact import redact

WATCHED_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED"})
ANNOTATION_FIELDS = ("id", "task", "project", "completed_by", "created_at", "updated_at", "was_cancelled",
                     "ground_truth", "lead_time", "last_action", "result")


class BadPayload(ValueError):
    """The body is not an LS webhook we can use; the message says which field and why (no values)."""


@dataclass(frozen=True)
class WebhookEvent:
    action: str
    project_id: int
    task_id: int
    annotation: dict[str, Any]

    @property
    def delivery_key(self) -> str:
        """Same for the same delivery sent twice; different for any change to the annotation."""
        a = self.annotation
        basis = [self.action, a.get("id"), a.get("updated_at"), a.get("was_cancelled"), a.get("last_action"),
                 a.get("result")]
        return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()


def _int(value: Any, name: str) -> int:
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadPayload(f"{name} must be a non-negative integer (got {type(value).__name__})")
    return value


def parse_webhook(body: Any) -> WebhookEvent | None:
    """Validate an LS webhook body; None for an action this service does not handle."""
    if not isinstance(body, Mapping):
        raise BadPayload(f"body must be a JSON object (got {type(body).__name__})")
    action = body.get("action")
    if not isinstance(action, str):
        raise BadPayload("'action' must be a string")
    if action not in WATCHED_ACTIONS:
        return None
    ann = body.get("annotation")
    if not isinstance(ann, Mapping):
        raise BadPayload("'annotation' must be an object")
    annotation_id = _int(ann.get("id"), "annotation.id")
    task_id = _int(ann.get("task", body.get("task")), "annotation.task")
    project = body.get("project")
    project_id = _int(project if project is not None else ann.get("project"), "project.id")
    result = ann.get("result", [])
    if not isinstance(result, list):
        raise BadPayload("annotation.result must be a list")
    updated_at = ann.get("updated_at")
    if updated_at is not None and not isinstance(updated_at, str):
        raise BadPayload("annotation.updated_at must be a string")
    kept = {k: ann[k] for k in ANNOTATION_FIELDS if k in ann}
    kept.update(id=annotation_id, task=task_id, project=project_id)
    return WebhookEvent(action, project_id, task_id, redact(kept))
