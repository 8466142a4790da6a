"""The webhook service: ingest Label Studio webhooks, store them, queue jobs, judge, write verdicts back.

What it holds:
- settings.py: every CLESC_* setting, read in one place (`Settings.from_env()`, at the entry points only);
- app.py + ingest.py: the Flask application factory `create_app(settings)` and the webhook's validation;
- store.py: the durable store (SQLAlchemy: SQLite or PostgreSQL); queue.py: the Huey job queue;
- ls_client.py: the Label Studio client every call goes through (one retry policy);
- worker.py: `JudgeLoop`, the worker's jobs (judge a task, write back, ops decisions, reconcile);
- runners.py: the long-running processes (waitress, gunicorn, the Huey consumer);
- private.py: owner-only folders and files (CLESC_HOME, LS's data dir, the databases);
- files.py: output files written whole or not at all, never over an input (judge, export, report);
- judge/: the judge backends (rules, llm), pure apart from the LLM's HTTP client.

May import: label_config, and its own modules; never scripts or ml_backend.
"""
