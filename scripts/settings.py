"""All configuration, read from CLESC_* environment variables in this one place.

Inner packages (webhooks/, ml_backend/) receive a Settings object; they never read the environment.
The README's settings table lists the same variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this package runs from (an editable install); defaults below live under it."""


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path
    ls_url: str | None
    ls_token: str | None
    ls_port: int
    ls_venv: Path
    ls_username: str
    ls_password: str | None
    overlap: int
    samples_dir: Path
    demo_detach: bool

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def path(name: str, default: Path) -> Path:
            return Path(env[name]).expanduser().resolve() if env.get(name) else default

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

        return cls(
            home=path("CLESC_HOME", PROJECT_ROOT / ".clesc"),
            ls_url=(env.get("CLESC_LS_URL") or "").rstrip("/") or None,
            ls_token=env.get("CLESC_LS_TOKEN") or None,
            ls_port=integer("CLESC_LS_PORT", 8080, 1),
            ls_venv=path("CLESC_LS_VENV", PROJECT_ROOT / ".venv-ls"),
            ls_username=env.get("CLESC_LS_USERNAME") or "admin@example.com",
            ls_password=env.get("CLESC_LS_PASSWORD") or None,
            overlap=integer("CLESC_OVERLAP", 3, 1),
            samples_dir=path("CLESC_SAMPLES_DIR", PROJECT_ROOT / "samples" / "clips"),
            demo_detach=_flag(env.get("CLESC_DEMO_DETACH")),
        )
