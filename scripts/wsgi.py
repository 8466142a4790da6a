"""WSGI entries for other servers, settings from CLESC_* variables:

    waitress-serve --call 'scripts.wsgi:webhooks'   the webhook service
    gunicorn 'scripts.wsgi:ml_backend()'            the ML backend

`clesc serve` runs the webhook service under waitress with CLESC_READ_TIMEOUT_S; another server for it must
read whole requests before the app runs (gunicorn's gthread worker let slow clients hold its threads).
"""

from __future__ import annotations

from webhooks.settings import Settings


def webhooks():
    from webhooks.app import create_app

    return create_app(Settings.from_env())


def ml_backend():
    from ml_backend.app import create_ml_app

    return create_ml_app(ml_config(Settings.from_env()))


def ml_config(settings: Settings):
    from ml_backend.model import BackendConfig
    from webhooks.ls_client import authorization, connect

    ls = connect(settings.ls_url, settings.ls_token) if settings.ls_url and settings.ls_token else None
    return BackendConfig(model_dir=settings.ml_dir, ls_url=settings.ls_url, ls_token=settings.ls_token, ls=ls,
                         authorization=(lambda: authorization(ls)) if ls is not None else None,
                         audio_root=settings.ml_audio_root, allowed_hosts=settings.ml_allowed_hosts,
                         max_bytes=settings.ml_max_bytes, max_seconds=settings.ml_max_seconds,
                         max_samples=settings.ml_max_samples, min_score=settings.ml_min_score,
                         fetch_deadline_s=settings.ml_fetch_deadline_s, basic_auth_user=settings.ml_basic_auth_user,
                         basic_auth_pass=settings.ml_basic_auth_pass)


def serve_ml_backend(settings: Settings, workers: int | None = None) -> None:
    """`clesc ml-backend`: the ML backend under gunicorn on CLESC_ML_HOST:CLESC_ML_PORT, in the foreground."""
    from ml_backend.app import create_ml_app
    from webhooks.runners import configure_logging, serve_app

    configure_logging()
    serve_app(create_ml_app(ml_config(settings)), settings.ml_host, settings.ml_port, workers or settings.workers,
              "clesc-ml-backend")
