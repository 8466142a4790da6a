"""The Label Studio client: every call the project makes to LS goes through a client built here.

One retry policy for all of them (the worker's write-back, setup, import, sync, reports, the demo):
the SDK's own, configured once. Connection errors and answers 408, 409, 429 and 5xx are retried
`RETRIES` times with exponential backoff from 1 s (with jitter; a `Retry-After` header is honoured),
so an LS restart of up to ~30 s is ridden out; any other error is raised at once.
"""

from __future__ import annotations

from label_studio_sdk import LabelStudio

RETRIES = 5
"""Retries per call: waits of about 1, 2, 4, 8 and 16 s."""

TIMEOUT_S = 60.0
"""Per request."""


def connect(url: str, token: str, *, retries: int = RETRIES, timeout_s: float = TIMEOUT_S) -> LabelStudio:
    """An SDK client for the Label Studio at `url` with an API token, under the project's retry policy."""
    if not url or not token:
        raise ValueError("set CLESC_LS_URL and CLESC_LS_TOKEN to reach Label Studio")
    return LabelStudio(base_url=url.rstrip("/"), api_key=token, max_retries=retries, timeout=timeout_s)


def authorization(client: LabelStudio) -> str:
    """The `Authorization` header value this client sends now, for plain HTTP requests to the same LS (the
    ML backend's audio fetch): `Token <key>` for a legacy token; for a personal access token (a JWT refresh
    token, all a team's LS 1.23 issues by default) `Bearer <access token>`, refreshed by the SDK when expired."""
    return client._client_wrapper.get_headers()["Authorization"]
