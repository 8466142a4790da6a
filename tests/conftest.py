"""Session fixtures: one real Label Studio server for the whole test session.

It runs from Label Studio's own environment (.venv-ls, created on first use), on a free loopback
port, with a temporary data dir and media root, and is stopped by PID at the end even when
tests fail.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio

from scripts.pools import POOLS, ensure_pools, import_folder
from scripts.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.process import free_port
from webhooks.settings import PROJECT_ROOT, Settings

SAMPLES = PROJECT_ROOT / "samples" / "clips"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory) -> LabelStudioServer:
    exe = ensure_venv(Settings.from_env().ls_venv)
    base = tmp_path_factory.mktemp("label-studio")
    media = base / "media"
    media.mkdir()
    creds = Credentials("admin@example.com", secrets.token_urlsafe(12), secrets.token_hex(20))
    server = LabelStudioServer(exe, base / "data", free_port(), creds, document_root=media)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ls(ls_server) -> LabelStudio:
    """An SDK client logged in as the server's admin (legacy API token)."""
    return LabelStudio(base_url=ls_server.url, api_key=ls_server.credentials.token)


@pytest.fixture(scope="session")
def clips_dir(ls_server) -> Path:
    """The sample clips, copied under the server's local-files document root."""
    target = ls_server.document_root / "clips"
    if not target.exists():
        shutil.copytree(SAMPLES, target)
    return target


@pytest.fixture(scope="session")
def pools(ls, clips_dir):
    """Expert, Crowd and Review projects in the test LS, the pools holding the sample clips."""
    projects = ensure_pools(ls, overlap=3, with_review=True)
    for title in POOLS:
        import_folder(ls, projects[title].id, clips_dir)
    return projects


def task_for_clip(ls, project_id: int, clip: str):
    """The task of `project_id` whose audio is the sample clip named `clip`."""
    return next(t for t in ls.tasks.list(project=project_id, page_size=100) if t.data["audio"].endswith("/" + clip))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the test item (rep_setup, rep_call) for fixtures' teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
