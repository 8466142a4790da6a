"""Helpers shared by the tests: `clesc` subprocesses, bounded waits, finding a sample clip's task, how the
browser tests start Debian's Chromium.

Everything here is plain functions and classes (no fixtures: those live in tests/conftest.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import requests

from scripts.local.process import ClescProcess, poll
from webhooks.settings import PROJECT_ROOT

CLESC = str(PROJECT_ROOT / ".venv" / "bin" / "clesc")
SAMPLES = PROJECT_ROOT / "samples" / "clips"

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's chromium (`make test-deps`), driven by Playwright's bundled driver (docs/platform-notes.md)."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Proc(ClescProcess):
    """A `clesc` subcommand of this checkout's .venv in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        super().__init__(args, env, log, exe=CLESC)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.3, what: str = "condition"):
    """Poll `predicate` until it returns something true (returned) or `timeout` seconds pass (AssertionError)."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return value


def healthy(url: str) -> bool:
    """GET url/health answers 200."""
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def task_for_clip(ls, project_id: int, clip: str):
    """The task of `project_id` whose audio is the sample clip named `clip`."""
    return next(t for t in ls.tasks.list(project=project_id, page_size=100) if t.data["audio"].endswith("/" + clip))
