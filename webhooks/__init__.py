"""Webhook service: ingest LS webhooks, store, queue, judge (rules), write verdicts back to LS.

Entry points: `webhooks.app.create_app(settings)` (WSGI: `scripts.wsgi:webhooks()`), `webhooks.runners`
(gunicorn and the Huey worker), `webhooks.loop.JudgeLoop` (the jobs). Settings come from
`webhooks.settings.Settings.from_env()` at the entry points only.
"""
