"""All configuration, read from CLESC_* environment variables in this one place.

`Settings.from_env()` is called by the entry points (the `clesc` command, the WSGI entry, the worker);
everything else receives the object. The README's settings table lists the same variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from label_config.schema import POOLS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this package runs from (an editable install); defaults below live under it."""

DEFAULT_RATES_PER_HOUR = {"expert": 30.0, "crowd": 10.0}
"""Placeholder hourly rates for reports (CLESC_RATE_<POOL>_PER_HOUR sets yours)."""
JOB_LEASE_S = 30.0
"""Default of CLESC_JOB_LEASE_S: how long a job's hold on its task lasts unless renewed (every third of it)."""



def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path
    ls_url: str | None
    ls_token: str | None = field(repr=False)
    ls_port: int
    ls_venv: Path
    ls_username: str
    ls_password: str | None = field(repr=False)
    overlap: int
    samples_dir: Path
    demo_detach: bool
    webhook_secret: str | None = field(repr=False)
    database_url: str
    redis_url: str | None
    service_host: str
    service_port: int
    service_url: str
    judge: str
    reject_on: tuple[str, ...] | None  # None: the judge policy's default
    review_min_confidence: float
    auto_apply_confidence: float | None  # None: ops decide every rejection (with apply_rejections=review)
    ops_users: tuple[str, ...]  # e-mails (lowercase) or LS user ids whose Review decisions count; (): everyone's
    apply_rejections: str
    cancel_on_uphold: bool
    max_body_bytes: int
    reconcile_minutes: int
    workers: int
    ml_host: str
    ml_port: int
    ml_dir: Path
    ml_audio_root: Path | None
    ml_allowed_hosts: tuple[str, ...]
    ml_max_bytes: int
    ml_max_seconds: int
    ml_max_samples: int
    ml_min_score: float
    ml_fetch_deadline_s: int
    ml_basic_auth_user: str | None
    ml_basic_auth_pass: str | None = field(repr=False)
    llm_url: str | None
    llm_model: str
    llm_api_key: str | None = field(repr=False)
    llm_timeout_s: int
    llm_concurrency: int
    llm_fallback: str
    llm_first_token_s: float
    llm_health_timeout_s: float
    llm_invalid_retries: int
    vllm_venv: Path
    ls_document_root: Path | None = None
    sync_reference_prediction: bool = False
    rates: dict[str, dict[str, float | bool | None]] = field(default_factory=dict)
    """pool -> per_hour, per_annotation and per_hour_placeholder (CLESC_RATE_<POOL>_PER_HOUR unset: the default)."""
    currency: str = "USD"
    pool_projects: dict[str, str] = field(default_factory=lambda: {pool: pool.capitalize() for pool in POOLS})
    review_project: str = "Review"
    ml_url: str | None = None
    event_max_attempts: int = 8
    event_retry_s: float = 5.0
    read_timeout_s: int = 10
    sweep_after_s: int = 120
    job_lease_s: float = JOB_LEASE_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from CLESC_* variables (`env`, default the process environment); ValueError names a bad one."""
        env = os.environ if env is None else env

        def path(name: str, default: Path) -> Path:
            value = env.get(name)
            return Path(value).expanduser().resolve() if value else default

        def integer(name: str, default: int, low: int) -> int:
            raw = env.get(name)
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from None
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
            return value

        def number(name: str, default: float | None) -> float | None:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None
            if value < 0 or value != value:
                raise ValueError(f"{name} must be >= 0, got {raw!r}")
            return value

        def at_least(name: str, default: float, low: float) -> float:
            value = number(name, default)
            if value < low:
                raise ValueError(f"{name} must be >= {low:g}, got {env.get(name)!r}")
            return value

        def fraction(name: str, default: float | None) -> float | None:
            value = number(name, default)
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"{name} must be a number in (0, 1], got {env.get(name)!r}")
            return value

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = (env.get(name) or default).strip().lower()
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
            return value

        home = path("CLESC_HOME", PROJECT_ROOT / ".clesc")
        service_port = integer("CLESC_SERVICE_PORT", 8090, 1)
        service_host = env.get("CLESC_SERVICE_HOST") or "127.0.0.1"
        raw_reject_on = env.get("CLESC_REJECT_ON")
        reject_on = tuple(r.strip() for r in raw_reject_on.split(",") if r.strip()) if raw_reject_on else None
        return cls(
            home=home,
            ls_url=(env.get("CLESC_LS_URL") or "").rstrip("/") or None,
            ls_token=env.get("CLESC_LS_TOKEN") or None,
            ls_port=integer("CLESC_LS_PORT", 8080, 1),
            ls_venv=path("CLESC_LS_VENV", PROJECT_ROOT / ".venv-ls"),
            ls_username=env.get("CLESC_LS_USERNAME") or "admin@example.com",
            ls_password=env.get("CLESC_LS_PASSWORD") or None,
            overlap=integer("CLESC_OVERLAP", 3, 1),
            samples_dir=path("CLESC_SAMPLES_DIR", PROJECT_ROOT / "samples" / "clips"),
            demo_detach=_flag(env.get("CLESC_DEMO_DETACH")),
            webhook_secret=env.get("CLESC_WEBHOOK_SECRET") or None,
            database_url=env.get("CLESC_DATABASE_URL") or f"sqlite:///{home / 'clesc.db'}",
            redis_url=env.get("CLESC_REDIS_URL") or None,
            service_host=service_host,
            service_port=service_port,
            service_url=(env.get("CLESC_SERVICE_URL") or f"http://{service_host}:{service_port}").rstrip("/"),
            judge=choice("CLESC_JUDGE", "rules", ("rules", "llm")),
            reject_on=reject_on,
            review_min_confidence=fraction("CLESC_REVIEW_MIN_CONFIDENCE", 0.5),
            auto_apply_confidence=fraction("CLESC_AUTO_APPLY_CONFIDENCE", None),
            ops_users=tuple(u.strip().lower() for u in (env.get("CLESC_OPS_USERS") or "").split(",") if u.strip()),
            apply_rejections=choice("CLESC_APPLY_REJECTIONS", "review", ("review", "auto")),
            cancel_on_uphold=_flag(env.get("CLESC_CANCEL_ON_UPHOLD"), default=True),
            max_body_bytes=integer("CLESC_MAX_BODY_BYTES", 1_000_000, 1024),
            reconcile_minutes=integer("CLESC_RECONCILE_MINUTES", 5, 1),
            workers=integer("CLESC_WORKERS", 2, 1),
            ml_host=env.get("CLESC_ML_HOST") or "127.0.0.1",
            ml_port=integer("CLESC_ML_PORT", 9090, 1),
            ml_dir=path("CLESC_ML_DIR", home / "ml-backend"),
            ml_audio_root=path("CLESC_ML_AUDIO_ROOT", Path("/nonexistent")) if env.get("CLESC_ML_AUDIO_ROOT") else None,
            ml_allowed_hosts=tuple(h.strip() for h in (env.get("CLESC_ML_ALLOWED_HOSTS") or "").split(",") if h.strip()),
            ml_max_bytes=integer("CLESC_ML_MAX_BYTES", 50_000_000, 1024),
            ml_max_seconds=integer("CLESC_ML_MAX_SECONDS", 60, 1),
            ml_max_samples=integer("CLESC_ML_MAX_SAMPLES", 5_760_000, 8000),
            ml_min_score=number("CLESC_ML_MIN_SCORE", 0.5),
            ml_fetch_deadline_s=integer("CLESC_ML_FETCH_DEADLINE_S", 30, 1),
            ml_basic_auth_user=env.get("CLESC_ML_BASIC_AUTH_USER") or None,
            ml_basic_auth_pass=env.get("CLESC_ML_BASIC_AUTH_PASS") or None,
            llm_url=(env.get("CLESC_LLM_URL") or "").rstrip("/") or None,
            llm_model=env.get("CLESC_LLM_MODEL") or "mistralai/Mixtral-8x7B-Instruct-v0.1",
            llm_api_key=env.get("CLESC_LLM_API_KEY") or None,
            llm_timeout_s=integer("CLESC_LLM_TIMEOUT_S", 120, 1),
            llm_concurrency=integer("CLESC_LLM_CONCURRENCY", 8, 1),
            llm_fallback=choice("CLESC_LLM_FALLBACK", "rules", ("rules", "pending")),
            llm_first_token_s=number("CLESC_LLM_FIRST_TOKEN_S", 20.0) or 20.0,
            llm_health_timeout_s=number("CLESC_LLM_HEALTH_TIMEOUT_S", 5.0) or 5.0,
            llm_invalid_retries=integer("CLESC_LLM_INVALID_RETRIES", 1, 0),
            vllm_venv=path("CLESC_VLLM_VENV", PROJECT_ROOT / ".venv-vllm"),
            ls_document_root=path("CLESC_LS_DOCUMENT_ROOT", Path("/nonexistent")) if env.get("CLESC_LS_DOCUMENT_ROOT") else None,
            sync_reference_prediction=_flag(env.get("CLESC_SYNC_REFERENCE_PREDICTION")),
            rates={
                pool: {"per_hour": number(f"CLESC_RATE_{pool.upper()}_PER_HOUR", per_hour),
                       "per_annotation": number(f"CLESC_RATE_{pool.upper()}_PER_ANNOTATION", None),
                       "per_hour_placeholder": not (env.get(f"CLESC_RATE_{pool.upper()}_PER_HOUR") or "").strip()}
                for pool, per_hour in DEFAULT_RATES_PER_HOUR.items()
            },
            currency=(env.get("CLESC_CURRENCY") or "USD").strip(),
            pool_projects={pool: (env.get(f"CLESC_{pool.upper()}_PROJECT") or pool.capitalize()).strip()
                           for pool in POOLS},
            review_project=(env.get("CLESC_REVIEW_PROJECT") or "Review").strip(),
            ml_url=(env.get("CLESC_ML_URL") or "").rstrip("/") or None,
            event_max_attempts=integer("CLESC_EVENT_MAX_ATTEMPTS", 8, 1),
            event_retry_s=number("CLESC_EVENT_RETRY_S", 5.0) or 0.0,
            read_timeout_s=integer("CLESC_READ_TIMEOUT_S", 10, 1),
            sweep_after_s=integer("CLESC_SWEEP_AFTER_S", 120, 1),
            job_lease_s=at_least("CLESC_JOB_LEASE_S", JOB_LEASE_S, 1.0),
        )

    @property
    def ml_basic_auth(self) -> tuple[str, str] | None:
        """(user, password) LS sends to the ML backend, when both CLESC_ML_BASIC_AUTH_USER/PASS are set."""
        if self.ml_basic_auth_user and self.ml_basic_auth_pass:
            return self.ml_basic_auth_user, self.ml_basic_auth_pass
        return None

    def ls_client(self):
        """An SDK client for the configured Label Studio (CLESC_LS_URL, CLESC_LS_TOKEN), retrying as
        every LS call of the project does (webhooks.ls_client)."""
        from webhooks.ls_client import connect

        return connect(self.ls_url or "", self.ls_token or "")
