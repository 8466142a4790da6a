"""WSGI entry for any WSGI server: `gunicorn webhooks.wsgi:app` (settings from CLESC_* variables)."""

from webhooks.app import create_app
from webhooks.settings import Settings

app = create_app(Settings.from_env())
