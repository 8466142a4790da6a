"""`clesc setup`: wire a running Label Studio to this service (idempotent).

The Expert, Crowd and Review projects with our interfaces, a webhook per project to the service
with the secret header, and the projects' roles in the store (what the service watches).
"""

from __future__ import annotations

from collections.abc import Callable

from label_studio_sdk import LabelStudio

from label_config.schema import REVIEW
from scripts.labelstudio.projects import REVIEW_VIEW, ensure_pools, ensure_review_view, ensure_webhook
from webhooks.app import SECRET_HEADER
from webhooks.settings import Settings
from webhooks.store import Store


def setup(settings: Settings, client: LabelStudio | None = None, echo: Callable[[str], None] = print) -> dict[str, int]:
    """The projects by role ("expert", "crowd", "review") -> LS project id."""
    if not settings.webhook_secret:
        raise SystemExit("set CLESC_WEBHOOK_SECRET (any long random string) before `clesc setup`")
    client = client or settings.ls_client()
    projects = ensure_pools(client, settings.overlap, with_review=True, titles=settings.pool_projects)
    url = settings.service_url + "/webhook"
    for role, project in projects.items():
        state = ensure_webhook(client, project.id, url, {SECRET_HEADER: settings.webhook_secret})
        echo(f"{project.title:7s} project {project.id}: {'created' if project.created else 'exists'}; "
             f"webhook -> {url}: {state}")
    if ensure_review_view(client, projects[REVIEW].id):
        echo(f"Review  tab {REVIEW_VIEW!r}: the proposed rejections, surest first")
    Store(settings.database_url).set_projects((p.id, role, p.title) for role, p in projects.items())
    return {role: p.id for role, p in projects.items()}
