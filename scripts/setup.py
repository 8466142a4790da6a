"""`clesc setup`: wire a running Label Studio to this service (idempotent)."""

from __future__ import annotations

from collections.abc import Callable

from label_studio_sdk import LabelStudio

from scripts.pools import REVIEW, ensure_pools, ensure_webhook
from webhooks.app import SECRET_HEADER
from webhooks.settings import Settings
from webhooks.store import Store


def setup(settings: Settings, client: LabelStudio | None = None, echo: Callable[[str], None] = print) -> dict[str, int]:
    if not settings.webhook_secret:
        raise SystemExit("set CLESC_WEBHOOK_SECRET (any long random string) before `clesc setup`")
    client = client or settings.ls_client()
    projects = ensure_pools(client, settings.overlap, with_review=True)
    url = settings.service_url + "/webhook"
    for title, project in projects.items():
        state = ensure_webhook(client, project.id, url, {SECRET_HEADER: settings.webhook_secret})
        echo(f"{title:7s} project {project.id}: {'created' if project.created else 'exists'}; webhook -> {url}: {state}")
    Store(settings.database_url).set_projects(
        (p.id, "review" if title == REVIEW else title.lower(), title) for title, p in projects.items())
    return {title: p.id for title, p in projects.items()}
