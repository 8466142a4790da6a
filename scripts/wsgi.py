"""WSGI entries for other servers, settings from CLESC_* variables:

    gunicorn 'scripts.wsgi:webhooks()'      the webhook service
    gunicorn 'scripts.wsgi:ml_backend()'    the ML backend
"""

from webhooks.settings import Settings


def webhooks():
    from webhooks.app import create_app

    return create_app(Settings.from_env())


def ml_backend():
    from ml_backend.model import create_ml_app

    return create_ml_app(ml_config(Settings.from_env()))


def ml_config(settings: Settings):
    from ml_backend.model import BackendConfig

    return BackendConfig(model_dir=settings.ml_dir, ls_url=settings.ls_url, ls_token=settings.ls_token,
                         audio_root=settings.ml_audio_root, allowed_hosts=settings.ml_allowed_hosts,
                         max_bytes=settings.ml_max_bytes, max_seconds=settings.ml_max_seconds)
