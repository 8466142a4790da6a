"""Helpers shared by the tests: `clesc` subprocesses, bounded waits, finding a sample clip's task, how the
browser tests start Debian's Chromium.

Everything here is plain functions and classes (no fixtures: those live in tests/conftest.py);
`running_service` is the generator those fixtures yield from.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

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


def running_service(ls, ls_server, home: Path, *, own_pools: str | None = None, clips_dir: Path | None = None,
                    workers: int = 1, **extra_env: str):
    """The webhook service (waitress) and `workers` worker processes (Huey consumers) wired to the session's
    LS by `clesc setup`, yielded until the caller is done, then stopped and unwired.

    `own_pools`: Expert and Crowd projects of their own ("Expert <own_pools>", holding the clips of
    `clips_dir`), deleted afterwards, so no other service of the session judges their tasks; None: the
    session's pools. The Review project is the session's. `svc.pools`: role -> namespace with `.id`.
    """
    from scripts.labelstudio.projects import import_folder
    from scripts.labelstudio.wiring import setup
    from scripts.local.process import free_port
    from webhooks.settings import Settings
    from webhooks.store import Store

    env = {**os.environ, "CLESC_HOME": str(home), "CLESC_LS_URL": ls_server.url,
           "CLESC_LS_TOKEN": ls_server.credentials.token, "CLESC_WEBHOOK_SECRET": "hook-secret-0b9e1d",
           "CLESC_SERVICE_PORT": str(free_port()), "CLESC_WORKERS": "2",
           "CLESC_OPS_USERS": ls_server.credentials.username}
    if own_pools:
        env.update(CLESC_EXPERT_PROJECT=f"Expert {own_pools}", CLESC_CROWD_PROJECT=f"Crowd {own_pools}")
    env.update(extra_env)
    settings = Settings.from_env(env)
    ids = setup(settings, ls, echo=lambda _: None)
    if own_pools:
        for role in ("expert", "crowd"):
            import_folder(ls, ids[role], clips_dir)
    svc = SimpleNamespace(env=env, settings=settings, url=settings.service_url, home=home,
                          store=Store(settings.database_url),
                          pools={role: SimpleNamespace(id=pid) for role, pid in ids.items()})
    svc.serve = Proc(["serve"], env, home / "serve.log").start()
    svc.workers = [Proc(["worker"], env, home / f"worker-{n}.log").start() for n in range(workers)]
    svc.worker = svc.workers[0]
    wait_for(lambda: healthy(svc.url), 60, what="the webhook service")
    try:
        yield svc
    finally:
        for w in svc.workers:
            w.stop()
        svc.serve.stop()
        for pid in ids.values():
            for hook in ls.webhooks.list(project=pid):
                if hook.url.startswith(svc.url):
                    ls.webhooks.delete(hook.id)
        if own_pools:
            for role in ("expert", "crowd"):
                ls.projects.delete(ids[role])


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_owner_only(server) -> None:
    """The data dir 0700, LS's .env (SECRET_KEY) 0600 and, on SQLite (the demo's), the database and its journals."""
    data = server.data_dir
    assert file_mode(data) == 0o700
    names = (".env", "label_studio.sqlite3") if server.database == "sqlite" else (".env",)
    for name in names:
        assert (data / name).exists() and file_mode(data / name) == 0o600, name
    assert all(file_mode(p) & 0o077 == 0 for p in data.glob("label_studio.sqlite3*"))
