"""Helpers shared by the tests: `clesc` subprocesses, bounded waits, finding a sample clip's task, how the
browser tests start Debian's Chromium.

Everything here is plain functions and classes (no fixtures: those live in tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from scripts.local.process import stop_process_group
from webhooks.settings import PROJECT_ROOT

CLESC = str(PROJECT_ROOT / ".venv" / "bin" / "clesc")
SAMPLES = PROJECT_ROOT / "samples" / "clips"

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's chromium (`make test-deps`), driven by Playwright's bundled driver (docs/platform-notes.md)."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Proc:
    """A `clesc` subcommand in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args, self.env, self.log = args, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen([CLESC, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is not None:
            if sig == signal.SIGKILL:
                os.killpg(self.popen.pid, signal.SIGKILL)
            else:
                stop_process_group(self.popen.pid, timeout=15)
            self.popen.wait(timeout=15)
            self.popen = None


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.3, what: str = "condition"):
    """Poll `predicate` until it returns something true (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(url: str) -> bool:
    """GET url/health answers 200."""
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def task_for_clip(ls, project_id: int, clip: str):
    """The task of `project_id` whose audio is the sample clip named `clip`."""
    return next(t for t in ls.tasks.list(project=project_id, page_size=100) if t.data["audio"].endswith("/" + clip))
