"""The deployment files (no Docker engine here to run them): what they promise, checked as data and by
Debian's docker-compose (`make test-deps`)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.local.labelstudio import Credentials, LabelStudioServer
from webhooks.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker" / "compose.yaml").read_text())


def test_vllm_serves_mixtral_with_structured_outputs_and_a_health_check():
    for name in ("vllm", "vllm-bf16"):
        svc = COMPOSE["services"][name]
        args = " ".join(svc["command"])
        assert "Mixtral-8x7B-Instruct" in svc["command"][0]
        assert '--structured-outputs-config={"backend":"xgrammar","disable_any_whitespace":true}' in svc["command"]
        assert "guided" not in args
        assert "/health" in " ".join(svc["healthcheck"]["test"])
    assert "--tensor-parallel-size=2" in COMPOSE["services"]["vllm-bf16"]["command"]


def test_the_services_point_at_vllm_ls_postgres_and_redis():
    for name in ("clesc-serve", "clesc-worker", "clesc-ml-backend"):
        env = COMPOSE["services"][name]["environment"]
        assert env["CLESC_LLM_URL"] == "http://vllm:8000/v1" and env["CLESC_JUDGE"] == "llm"
        assert env["CLESC_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["CLESC_REDIS_URL"].startswith("redis://")
    assert [c for c in (COMPOSE["services"][n]["command"] for n in ("clesc-serve", "clesc-worker", "clesc-ml-backend"))] \
        == [["serve"], ["worker"], ["ml-backend"]]
    sync = COMPOSE["services"]["clesc-sync"]
    assert sync["command"][:2] == ["sync", "--every"] and sync["environment"]["CLESC_DATABASE_URL"].startswith("postgresql")


def test_label_studio_signs_up_by_invitation_only_and_takes_no_secret_on_its_command_line():
    """Issue 14: any LS account joins the organisation and can read the webhooks' secret header; argv is public."""
    ls = COMPOSE["services"]["label-studio"]
    assert ls["environment"]["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert {"LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"} <= set(ls["environment"])
    assert "password" not in " ".join(ls.get("command") or []).lower()


# --- validated by a real compose implementation (Debian's docker-compose 1.29: `config` parses, checks
# against the compose schema and interpolates; no engine runs here and no image can be pulled) ----------

DEPLOY_ENV = {"LS_TOKEN": "tok-compose-1", "CLESC_WEBHOOK_SECRET": "hook-compose-1", "POSTGRES_PASSWORD": "pw-compose-1",
              "LS_ADMIN_PASSWORD": "admin-compose-1", "CLESC_ML_BASIC_AUTH_PASS": "ml-compose-1"}
CLESC_SERVICES = ("clesc-serve", "clesc-worker", "clesc-sync", "clesc-ml-backend")


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "Debian's docker-compose is installed by `make test-deps`"
    base = {k: v for k, v in os.environ.items() if k not in DEPLOY_ENV}
    return subprocess.run([exe, "-f", str(PROJECT_ROOT / "docker" / "compose.yaml"), *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def resolved() -> dict:
    r = compose("config", env=DEPLOY_ENV)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_compose_config_is_valid_and_every_secret_is_required():
    assert compose("config", "-q", env=DEPLOY_ENV).returncode == 0
    for name in DEPLOY_ENV:
        r = compose("config", "-q", env={k: v for k, v in DEPLOY_ENV.items() if k != name})
        assert r.returncode != 0 and f"set {name}" in r.stderr, (name, r.stderr)
    profiles = compose("--profile", "bf16", "config", "--services", env=DEPLOY_ENV)
    assert profiles.returncode == 0 and "vllm-bf16" in profiles.stdout.split()


def _settings_read() -> set[str]:
    source = (PROJECT_ROOT / "webhooks" / "settings.py").read_text()
    names = set(re.findall(r'"(CLESC_[A-Z0-9_]+)"', source))
    for pool in ("EXPERT", "CROWD"):
        names |= {f"CLESC_{pool}_PROJECT", f"CLESC_RATE_{pool}_PER_HOUR", f"CLESC_RATE_{pool}_PER_ANNOTATION"}
    return names


def test_the_services_env_is_what_the_code_reads(resolved):
    services = resolved["services"]
    read = _settings_read()
    for name in CLESC_SERVICES:
        env = services[name]["environment"]
        assert set(env) <= read, f"{name} sets variables no code reads: {set(env) - read}"
        settings = Settings.from_env(env)  # every value parses
        assert settings.redis_url == "redis://redis:6379/0" and settings.ls_url == "http://label-studio:8080"
        assert settings.database_url.startswith("postgresql+psycopg://clesc:pw-compose-1@postgres:5432/")
        assert settings.webhook_secret == "hook-compose-1" and settings.ls_token == "tok-compose-1"
        assert {"postgres", "redis"} <= set(services[name]["depends_on"])
    pg = services["postgres"]["environment"]
    store_db = Settings.from_env(services["clesc-serve"]["environment"]).database_url.rsplit("/", 1)[1]
    assert store_db == pg["POSTGRES_DB"] and pg["POSTGRES_USER"] == "clesc"
    # Label Studio on the same PostgreSQL, with the variables LS reads (as the tests' LabelStudioServer sets them)
    ls = services["label-studio"]["environment"]
    ours = LabelStudioServer(Path("ls"), Path("/tmp/x"), 8080, Credentials("admin@example.com", "pw", "tok"),
                             Path("/tmp/m"),
                             postgres={"host": "postgres", "port": "5432", "name": ls["POSTGRE_NAME"],
                                       "user": ls["POSTGRE_USER"], "password": ls["POSTGRE_PASSWORD"]}).environment()
    for key in ("DJANGO_DB", "POSTGRE_HOST", "POSTGRE_PORT", "POSTGRE_NAME", "POSTGRE_USER", "POSTGRE_PASSWORD"):
        assert str(ls[key]) == ours[key], key
    assert ls["POSTGRE_USER"] == pg["POSTGRES_USER"] and ls["POSTGRE_PASSWORD"] == pg["POSTGRES_PASSWORD"]
    # LS's database exists: it is POSTGRES_DB or made by a script of the image's initdb folder
    initdb = " ".join(p.read_text() for p in (PROJECT_ROOT / "docker" / "initdb").glob("*.sql"))
    assert ls["POSTGRE_NAME"] == pg["POSTGRES_DB"] or f"CREATE DATABASE {ls['POSTGRE_NAME']}" in initdb
    initdb_mount = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in str(v)]
    assert initdb_mount and str(PROJECT_ROOT / "docker" / "initdb") in str(initdb_mount)


def test_health_checks_probe_the_ports_and_users_the_code_uses(resolved):
    services = resolved["services"]
    serve = Settings.from_env(services["clesc-serve"]["environment"])
    ml = Settings.from_env(services["clesc-ml-backend"]["environment"])
    assert serve.service_host == "0.0.0.0" and ml.ml_host == "0.0.0.0"  # reachable from the other containers
    probe = lambda name: " ".join(services[name]["healthcheck"]["test"])  # noqa: E731
    assert f"localhost:{serve.service_port}/health" in probe("clesc-serve")
    assert serve.service_url == f"http://clesc-serve:{serve.service_port}"
    assert f"localhost:{ml.ml_port}/health" in probe("clesc-ml-backend")
    assert "localhost:8080/health" in probe("label-studio") and serve.ls_url.endswith(":8080")
    assert f"pg_isready -U {services['postgres']['environment']['POSTGRES_USER']}" in probe("postgres")
    assert "redis-cli" in probe("redis") and "ping" in probe("redis")
    llm = Settings.from_env(services["clesc-worker"]["environment"]).llm_url
    assert llm == "http://vllm:8000/v1" and "localhost:8000/health" in probe("vllm")
    assert resolved["services"]["clesc-worker"]["deploy"]["replicas"] == 2  # two workers on the Redis queue


def test_setup_connects_the_ml_backend_with_the_credentials_it_asks_for(resolved, tmp_path):
    """`setup` (run in clesc-worker) connects the backend it deploys, with its credentials, and the backend's
    health check sends them: run here against a real `clesc ml-backend` started with that service's env."""
    from scripts.local.process import free_port
    from tests.helpers import Proc, wait_for

    services = resolved["services"]
    setup = Settings.from_env(services["clesc-worker"]["environment"])
    ml_env = services["clesc-ml-backend"]["environment"]
    ml = Settings.from_env(ml_env)
    assert setup.ml_url == f"http://clesc-ml-backend:{ml.ml_port}"
    assert setup.ml_basic_auth == ml.ml_basic_auth == ("label-studio", "ml-compose-1")
    port = free_port()
    probe = services["clesc-ml-backend"]["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python3", "-c"]
    code = probe[3].replace(f"localhost:{ml.ml_port}", f"127.0.0.1:{port}")
    env = {**os.environ, **{k: str(v) for k, v in ml_env.items() if k.startswith("CLESC_ML_BASIC_AUTH")},
           "CLESC_HOME": str(tmp_path), "CLESC_ML_PORT": str(port), "CLESC_WORKERS": "1"}
    backend = Proc(["ml-backend"], env, tmp_path / "ml.log").start()
    try:
        run = lambda e: subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, timeout=30)  # noqa: E731
        wait_for(lambda: run(env).returncode == 0, 60, 1, what="the health check to pass")
        wrong = run({**env, "CLESC_ML_BASIC_AUTH_PASS": "not-it"})
        assert wrong.returncode != 0 and b"401" in wrong.stderr
    finally:
        backend.stop()
