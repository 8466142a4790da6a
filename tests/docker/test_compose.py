"""The deployment files (no Docker engine here to run them): what they promise, checked as data."""

import yaml

from webhooks.settings import PROJECT_ROOT

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
