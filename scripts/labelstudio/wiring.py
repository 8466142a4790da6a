"""`clesc setup`: wire a running Label Studio to this service (idempotent).

The Expert, Crowd and Review projects with our interfaces, a webhook per project to the service
with the secret header, and the projects' roles in the store (what the service watches).
"""

from __future__ import annotations

from collections.abc import Callable

from label_studio_sdk import LabelStudio

from label_config.schema import POOLS, REVIEW
from scripts.labelstudio.projects import REVIEW_VIEW, ensure_ml_backend, ensure_pools, ensure_review_view, ensure_webhook
from webhooks.app import SECRET_HEADER
from webhooks.settings import Settings
from webhooks.store import Store


def setup(settings: Settings, client: LabelStudio | None = None, echo: Callable[[str], None] = print,
          adopt: bool = True) -> dict[str, int]:
    """The projects by role ("expert", "crowd", "review") -> LS project id.

    Titles come from CLESC_EXPERT_PROJECT, CLESC_CROWD_PROJECT and CLESC_REVIEW_PROJECT. `adopt=False` (what
    `clesc setup` does unless told `--adopt`) refuses same-titled projects clesc-studio did not set up
    (NotOurs). With CLESC_ML_URL set, the ML backend is connected to both pools, with
    CLESC_ML_BASIC_AUTH_USER/PASS as the credentials LS sends it when they are set."""
    if not settings.webhook_secret:
        raise SystemExit("set CLESC_WEBHOOK_SECRET (any long random string) before `clesc setup`")
    client = client or settings.ls_client()
    titles = {role: ref for role, ref in settings.pool_projects.items() if not ref.isdigit()}
    titles[REVIEW] = settings.review_project
    projects = ensure_pools(client, settings.overlap, with_review=True, titles=titles, adopt=adopt)
    url = settings.service_url + "/webhook"
    for role, project in projects.items():
        state = ensure_webhook(client, project.id, url, {SECRET_HEADER: settings.webhook_secret})
        echo(f"{project.title:7s} project {project.id}: {'created' if project.created else 'exists'}; "
             f"webhook -> {url}: {state}")
    if ensure_review_view(client, projects[REVIEW].id):
        echo(f"Review  tab {REVIEW_VIEW!r}: the proposed rejections, surest first")
    if settings.ml_url:
        for role in POOLS:
            connected = ensure_ml_backend(client, projects[role].id, settings.ml_url, basic_auth=settings.ml_basic_auth)
            echo(f"{projects[role].title:7s} ML backend {settings.ml_url}: {'connected' if connected else 'connected already'}")
    Store(settings.database_url).set_projects((p.id, role, p.title) for role, p in projects.items())
    return {role: p.id for role, p in projects.items()}
