"""A local Label Studio: its own virtual environment, and a server process we start and stop by PID.

Label Studio is a separate service (in production too), so it never shares our environment:
`ensure_venv` creates `.venv-ls` on first use with the pinned version.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from scripts.local.process import ServerError, ServerProcess
from webhooks.private import UMASK, private_dir, private_file, tighten

LABEL_STUDIO_VERSION = "1.23.2"
"""The Label Studio release the tests run against; docs/platform-notes.md was checked on it."""

_STAMP = ".clesc-label-studio"


class LabelStudioError(ServerError):
    pass


def ensure_venv(venv: Path, *, python: str | None = None, echo=print) -> Path:
    """Create or update the Label Studio environment; return its `label-studio` executable."""
    exe = venv / "bin" / "label-studio"
    stamp = venv / _STAMP
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == LABEL_STUDIO_VERSION:
        return exe
    base = python or getattr(sys, "_base_executable", None) or sys.executable
    echo(f"Installing Label Studio {LABEL_STUDIO_VERSION} into {venv} (first use: about 2 minutes)...")
    if not (venv / "bin" / "python").exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"label-studio=={LABEL_STUDIO_VERSION}"],
        check=True,
    )
    stamp.write_text(LABEL_STUDIO_VERSION + "\n")
    return exe


@dataclass
class Credentials:
    """The admin login and API token of a local Label Studio data dir, kept next to its database."""

    username: str
    password: str
    token: str

    @classmethod
    def load_or_create(cls, data_dir: Path, username: str, password: str | None = None) -> Credentials:
        path = data_dir / "credentials.json"
        if path.exists():
            saved = json.loads(path.read_text())
            return cls(saved["username"], saved["password"], saved["token"])
        creds = cls(username, password or secrets.token_urlsafe(12), secrets.token_hex(20))
        private_dir(data_dir)
        private_file(path).write_text(json.dumps(creds.__dict__))
        return creds


PRIVATE_FILES = ("label_studio.sqlite3*", ".env", "credentials.json")
"""What LS's data dir holds that other local users must not read: the database (API tokens, webhook headers),
`.env` (SECRET_KEY), our credentials file."""


class LabelStudioServer(ServerProcess):
    """One `label-studio start` process on loopback with its own data dir.

    Hardened (issue 14): sign-up only by an invitation link (`DISABLE_SIGNUP_WITHOUT_LINK`: any account
    joins the one organisation and could read every project and webhook); the admin's e-mail, password and
    token reach LS through its environment (`LABEL_STUDIO_USERNAME`, `_PASSWORD`, `_USER_TOKEN`, which
    `label-studio start` reads), never its command line, which every local user sees in `ps`; the data
    dir is 0700 and LS runs with umask 077, so its database and `.env` are 0600.

    Use (the tests' session fixture `ls_server` does this):

        server = LabelStudioServer(exe, data_dir, port, creds, document_root)
        server.start(); ...; server.stop()
    """

    name = "Label Studio"
    error = LabelStudioError
    umask = UMASK
    legacy_token = True
    """False: a Label Studio as a team runs it, with personal access tokens only (no legacy token)."""

    def __init__(self, exe: Path, data_dir: Path, port: int, credentials: Credentials,
                 document_root: Path, host: str = "127.0.0.1", postgres: Mapping[str, str] | None = None):
        """`postgres`: LS's database on PostgreSQL (as docker/compose.yaml deploys it), keys `host`, `port`,
        `name`, `user`, `password`; None: LS's own SQLite file in `data_dir`."""
        super().__init__(port, data_dir / "label-studio.log", host, pid_path=data_dir / "label-studio.pid")
        self.exe, self.data_dir, self.credentials, self.document_root = exe, data_dir, credentials, document_root
        self.postgres = dict(postgres) if postgres else None

    @property
    def database(self) -> str:
        """"postgresql" or "sqlite": the database this Label Studio runs on."""
        return "postgresql" if self.postgres else "sqlite"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "VIRTUAL_ENV"))}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
            LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(self.document_root),
            # Our webhook service and ML backend live on loopback next to LS.
            SSRF_PROTECTION_ENABLED="false",
            ML_BLOCK_LOCAL_IP="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            COLLECT_ANALYTICS="false",
            # New accounts only through the admin's invitation link (docs/platform-notes.md).
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            # The admin, created on the first start of a data dir; read from the environment, not argv.
            LABEL_STUDIO_USERNAME=self.credentials.username,
            LABEL_STUDIO_PASSWORD=self.credentials.password,
        )
        if self.legacy_token:
            env["LABEL_STUDIO_USER_TOKEN"] = self.credentials.token
        if self.postgres:  # the variables LS's settings read (docker/compose.yaml sets the same)
            env.update(DJANGO_DB="default", POSTGRE_HOST=self.postgres["host"], POSTGRE_PORT=str(self.postgres["port"]),
                       POSTGRE_NAME=self.postgres["name"], POSTGRE_USER=self.postgres["user"],
                       POSTGRE_PASSWORD=self.postgres.get("password", ""))
        return env

    def command(self) -> list[str]:
        """No secret here: a command line is readable by every local user (`ps`, /proc/PID/cmdline)."""
        out = [str(self.exe), "start", "--no-browser", "--internal-host", self.host, "--port", str(self.port)]
        if self.legacy_token:
            # Takes effect on the first start of a data dir only (docs/platform-notes.md); harmless later.
            out.append("--enable-legacy-api-token")
        return out

    def healthy(self) -> bool:
        r = requests.get(self.url + "/health", timeout=2)
        return r.ok and r.json().get("status") == "UP"

    def start(self, timeout: float = 240.0) -> None:
        private_dir(self.data_dir)
        tighten(self.data_dir, PRIVATE_FILES)  # a data dir from before the umask
        super().start(timeout)
        tighten(self.data_dir, PRIVATE_FILES)


def personal_access_token(url: str, username: str, password: str, timeout: float = 30.0) -> str:
    """A personal access token of an LS user, as the UI makes one (Account & Settings > Personal Access Token):
    log in with the form (CSRF), then POST /api/token/. LS 1.23 issues these by default; the SDK turns one into
    short-lived access tokens by itself."""
    session = requests.Session()
    login = session.get(url + "/user/login/", timeout=timeout)
    csrf = session.cookies.get("csrftoken") or ""
    done = session.post(url + "/user/login/", data={"email": username, "password": password,
                                                    "csrfmiddlewaretoken": csrf},
                        headers={"Referer": login.url}, timeout=timeout)
    done.raise_for_status()
    made = session.post(url + "/api/token/", headers={"X-CSRFToken": session.cookies.get("csrftoken") or csrf,
                                                     "Referer": url + "/"}, timeout=timeout)
    if made.status_code >= 400:
        raise LabelStudioError(f"LS refused to make a personal access token: {made.status_code} {made.text[:200]}")
    token = made.json().get("token")
    if not token:
        raise LabelStudioError(f"LS answered no token: {made.text[:200]}")
    return token
