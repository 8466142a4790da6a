"""Calls to Label Studio with retries and backoff (LS restarts, network blips, 5xx, 429)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from label_studio_sdk.core.api_error import ApiError

log = logging.getLogger("clesc.ls")
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ApiError) and (exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429)


def with_backoff(call: Callable[..., T], *args, attempts: int = 5, base_delay: float = 0.5, **kwargs) -> T:
    """Run `call`, retrying transient failures with exponential backoff; re-raise the last one."""
    for attempt in range(1, attempts + 1):
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - filtered by is_transient
            if attempt == attempts or not is_transient(exc):
                raise
            delay = base_delay * 2 ** (attempt - 1)
            log.warning("Label Studio call %s failed (%s); retry %d/%d in %.1f s",
                        getattr(call, "__qualname__", call), type(exc).__name__, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
