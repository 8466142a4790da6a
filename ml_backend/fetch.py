"""Getting a task's audio: from Label Studio (local-files, uploads) or a configured folder, nothing else.

Only URLs on the Label Studio host (or hosts listed in the config) are fetched, redirects are not
followed, and the size is capped while reading: a task's data cannot make the backend reach into
the network (no SSRF) or exhaust its memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import requests


class FetchError(ValueError):
    """The audio could not be fetched, or may not be; the message says why."""


@dataclass(frozen=True)
class AudioSource:
    ls_url: str | None  # e.g. http://127.0.0.1:8080, from the backend's settings (CLESC_LS_URL) only
    token: str | None = field(default=None, repr=False)
    """A legacy LS token, sent as `Token <token>`; `authorization` takes precedence."""
    authorization: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    """The Authorization header value for LS, asked per fetch (personal access tokens: a fresh `Bearer`
    access token; webhooks.ls_client.authorization)."""
    allowed_hosts: tuple[str, ...] = ()
    audio_root: Path | None = None  # local paths and local-files are read under this folder only
    max_bytes: int = 50_000_000
    timeout_s: float = 15.0
    deadline_s: float = 30.0
    """The whole fetch must finish within this (a slow drip of bytes cannot hold a thread longer)."""

    def _allowed(self, url: str) -> bool:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https"):
            return False
        hosts = set(self.allowed_hosts)
        if self.ls_url:
            hosts.add(urlparse(self.ls_url).netloc)
        return parsed.netloc in hosts

    def read(self, ref: str) -> bytes:
        """The bytes of the audio a task's `audio` field points to."""
        if not isinstance(ref, str) or not ref.strip():
            raise FetchError("the task has no audio URL")
        if ref.startswith("/data/local-files/") and self.audio_root is not None:
            rel = (parse_qs(urlparse(ref).query).get("d") or [""])[0]
            return self._read_local(rel)
        if ref.startswith("/") and not ref.startswith("/data/"):
            return self._read_local(ref)
        if ref.startswith("/"):
            if not self.ls_url:
                raise FetchError(f"relative URL {ref!r} but no Label Studio URL is known (connect the backend from LS)")
            ref = urljoin(self.ls_url.rstrip("/") + "/", ref.lstrip("/"))
        parsed = urlparse(ref)
        if parsed.scheme in ("", "file"):
            return self._read_local(parsed.path)
        if not self._allowed(ref):
            raise FetchError(f"refusing to fetch {parsed.scheme}://{parsed.netloc}: not the Label Studio host "
                             "nor an allowed host")
        # The token goes to the Label Studio host only, never to the other allowed hosts.
        to_ls = bool(self.ls_url) and parsed.netloc == urlparse(self.ls_url).netloc
        headers = {"Authorization": self._authorization()} if to_ls and (self.authorization or self.token) else {}
        deadline = time.monotonic() + self.deadline_s
        try:
            with requests.get(ref, headers=headers, timeout=min(self.timeout_s, self.deadline_s), stream=True,
                              allow_redirects=False) as r:
                if r.status_code != 200:
                    raise FetchError(f"the audio host answered {r.status_code} for {parsed.path}")
                if int(r.headers.get("Content-Length") or 0) > self.max_bytes:
                    raise FetchError(f"audio is larger than {self.max_bytes} bytes")
                data = bytearray()
                for chunk in r.iter_content(16384):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise FetchError(f"audio is larger than {self.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise FetchError(f"the audio took longer than {self.deadline_s:g} s to fetch")
                return bytes(data)
        except requests.RequestException as e:
            raise FetchError(f"could not fetch {parsed.path}: {type(e).__name__}") from None

    def _authorization(self) -> str:
        if self.authorization is not None:
            try:
                return self.authorization()
            except Exception as e:  # noqa: BLE001 - e.g. LS refused to refresh the personal access token
                raise FetchError(f"no access token from Label Studio: {type(e).__name__}") from None
        return f"Token {self.token}"

    def _read_local(self, rel: str) -> bytes:
        if self.audio_root is None:
            raise FetchError("local paths are not allowed (set CLESC_ML_AUDIO_ROOT)")
        root = self.audio_root.resolve()
        path = (root / rel.lstrip("/")).resolve() if not Path(rel).is_absolute() else Path(rel).resolve()
        if root not in path.parents and path != root:
            raise FetchError(f"{rel!r} is outside the audio root")
        if not path.is_file():
            raise FetchError(f"{rel!r}: no such file")
        if path.stat().st_size > self.max_bytes:
            raise FetchError(f"audio is larger than {self.max_bytes} bytes")
        return path.read_bytes()
