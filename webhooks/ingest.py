"""Webhook payloads: strict decoding, validation, and the allow-listed copy that is stored (secrets never kept).

Pure functions; the Flask view calls them. LS sends `project` with `token` and
`task_data_password` inside: we keep none of `project` but its id.

Every malformed body is a `BadPayload` (a 400 naming what is wrong, never a value): the body must be
UTF-8 JSON nested at most `MAX_DEPTH` deep (checked before parsing, so no parser or `redact` recursion
can overflow), with finite numbers, integers within 64 bits, ids within the store's integer columns
and strings that UTF-8 and PostgreSQL can store (no lone surrogates, no NUL).

>>> decode_body(b'{"a": [1, 2.5, "x"]}')
{'a': [1, 2.5, 'x']}
>>> decode_body(b'[' * 100 + b']' * 100)
Traceback (most recent call last):
...
webhooks.ingest.BadPayload: body is nested deeper than 64 levels
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from dataclasses import dataclass
from typing import Any

from label_config.redact import redact

WATCHED_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED"})
ANNOTATION_FIELDS = ("id", "task", "project", "completed_by", "created_at", "updated_at", "was_cancelled",
                     "ground_truth", "lead_time", "last_action", "result")


MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (an LS webhook nests 7 deep)."""
MAX_ID = 2**31 - 1
"""Largest id: the store's Integer columns (PostgreSQL INTEGER; LS's own ids are Django AutoFields, the same)."""
MAX_INT = 2**63 - 1
"""Largest integer anywhere in a body (signed 64 bits, what SQLite, PostgreSQL and most JSON readers hold)."""
MAX_UPDATED_AT = 40
"""annotation.updated_at is stored in a String(40) column (LS sends 27 characters)."""

_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
"""The only ways JSON text can hold NUL or a lone surrogate (raw ones are refused by the UTF-8 decoder
and the parser); without them the parsed strings need no walk."""


class BadPayload(ValueError):
    """The body is not an LS webhook we can use; the message says which field and why (no values)."""


def _too_deep(text: str, limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit` (outside strings). Exact for valid JSON; for invalid
    JSON never less than what a parser would reach before failing."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return bool(brackets) and max(accumulate(map(_STEP.__getitem__, brackets))) > limit


class _Refused(ValueError):
    """What is wrong with a JSON value, said without where (decode_json adds that)."""


def _parse_int(s: str) -> int:
    value = int(s)
    if abs(value) > MAX_INT:
        raise _Refused(f"an integer is outside the 64-bit range ({len(s)} digits)")
    return value


def _parse_float(s: str) -> float:
    value = float(s)
    if not math.isfinite(value):
        raise _Refused("a number overflows to infinity")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON (numbers must be finite)")


def _check_strings(value: Any) -> None:
    """Every key and string must be valid Unicode without NUL (lone surrogates cannot be UTF-8 encoded;
    PostgreSQL refuses NUL in text and JSON)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("a string holds a lone surrogate (\\ud800-\\udfff): not UTF-8") from None
            if "\x00" in v:
                raise _Refused("a string holds NUL (\\u0000), which cannot be stored")


def decode_body(raw: bytes) -> Any:
    """The JSON value of a request body, strictly (decode_json)."""
    return decode_json(raw, "body")


def decode_json(raw: bytes, what: str) -> Any:
    """The JSON value of `raw`, strictly: UTF-8 only, nested at most MAX_DEPTH deep, finite numbers, 64-bit
    integers, storable strings. BadPayload names `what` (a body, a file) and what is wrong (never a value).

    >>> decode_json(b'{"n": Infinity}', "tasks.json")
    Traceback (most recent call last):
    ...
    webhooks.ingest.BadPayload: tasks.json: Infinity is not JSON (numbers must be finite)
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadPayload(f"{what} is not UTF-8: invalid byte at {e.start}") from None
    if _too_deep(text, MAX_DEPTH):
        raise BadPayload(f"{what} is nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
        if _RISKY_ESCAPE.search(text):
            _check_strings(value)
    except _Refused as e:
        raise BadPayload(f"{what}: {e}") from None
    except json.JSONDecodeError as e:
        raise BadPayload(f"{what} is not JSON: {e.msg} at character {e.pos}") from None
    except RecursionError:  # not reachable past the depth check; kept so that it could never be a 500
        raise BadPayload(f"{what} is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # an integer literal longer than Python converts (4,300 digits)
        raise BadPayload(f"{what} is not JSON: a number cannot be read") from None
    return value


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
    if value > MAX_ID:
        raise BadPayload(f"{name} must be at most {MAX_ID}")
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
    if updated_at is not None and len(updated_at) > MAX_UPDATED_AT:
        raise BadPayload(f"annotation.updated_at must be at most {MAX_UPDATED_AT} characters (got {len(updated_at)})")
    kept = {k: ann[k] for k in ANNOTATION_FIELDS if k in ann}
    kept.update(id=annotation_id, task=task_id, project=project_id)
    return WebhookEvent(action, project_id, task_id, redact(kept))
