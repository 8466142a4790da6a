"""A local Label Studio: its own virtual environment, and a server process we start and stop by PID.

Label Studio is a separate service (in production too), so it never shares our environment:
`ensure_venv` creates `.venv-ls` on first use with the pinned version.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

LABEL_STUDIO_VERSION = "1.23.2"
"""The Label Studio release the tests run against; FACTS.md flags were verified on it."""

_STAMP = ".clesc-label-studio"


class LabelStudioError(RuntimeError):
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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


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
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(creds.__dict__))
        return creds


class LabelStudioServer:
    """One `label-studio start` process on loopback with its own data dir.

    >>> server = LabelStudioServer(exe, data_dir, port, creds, document_root)  # doctest: +SKIP
    >>> server.start(); ...; server.stop()                                      # doctest: +SKIP
    """

    def __init__(self, exe: Path, data_dir: Path, port: int, credentials: Credentials,
                 document_root: Path, host: str = "127.0.0.1"):
        self.exe, self.data_dir, self.port, self.credentials = exe, data_dir, port, credentials
        self.document_root, self.host = document_root, host
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "label-studio.log"
        self.pid_path = data_dir / "label-studio.pid"

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
        )
        return env

    def start(self, timeout: float = 240.0) -> None:
        if port_in_use(self.port, self.host):
            raise LabelStudioError(f"port {self.port} on {self.host} is already in use; set CLESC_LS_PORT to another port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        c = self.credentials
        cmd = [
            str(self.exe), "start", "--no-browser", "--internal-host", self.host, "--port", str(self.port),
            "--username", c.username, "--password", c.password, "--user-token", c.token,
            # Takes effect on the first start of a data dir only (FACTS.md); harmless later.
            "--enable-legacy-api-token",
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            cmd, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self.pid_path.write_text(str(self.process.pid))
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LabelStudioError(
                    f"Label Studio exited with code {self.process.returncode}; log tail:\n{self.log_tail()}")
            try:
                r = requests.get(self.url + "/health", timeout=2)
                if r.ok and r.json().get("status") == "UP":
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        raise LabelStudioError(f"Label Studio not healthy after {timeout:.0f} s; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            stop_process_group(self.process.pid, timeout)
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self.process = None
        self.pid_path.unlink(missing_ok=True)


def stop_process_group(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM the process group led by `pid`, SIGKILL it after `timeout`; True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        _reap(pid)
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def running_pid(pid_path: Path, expect: str = "label-studio") -> int | None:
    """The PID in `pid_path` if that process is alive and its command line contains `expect`."""
    try:
        pid = int(pid_path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if expect in cmdline else None
