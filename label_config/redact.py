"""Label Studio payloads carry secrets: `project.token`, `project.task_data_password`, access tokens.

>>> redact({"project": {"id": 1, "token": "abc", "task_data_password": "pw"}})
{'project': {'id': 1, 'token': '[redacted]', 'task_data_password': '[redacted]'}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_KEY = re.compile(r"token|password|secret|authorization|api[_-]?key", re.I)


def redact(value: Any) -> Any:
    """A copy with every value under a secret-looking key replaced, at any depth."""
    if isinstance(value, Mapping):
        return {k: ("[redacted]" if isinstance(k, str) and SECRET_KEY.search(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
