"""Label Studio projects, tasks, users, webhooks and ML backends: a thin adapter over the LS SDK.

The Expert and Crowd pools (projects with our interface) and the Review project, their clips and the
tasks in them. Every function is idempotent (safe to re-run); the client comes from
webhooks.ls_client.connect (one retry policy).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio

from label_config import annotator_instructions, labeling_config
from label_config.records import clip_key
from label_config.render import project_description, review_config
from label_config.schema import POOLS, REVIEW

BATCH = 100
"""Tasks per import request."""

AUDIO_SUFFIXES = ("wav", "flac", "ogg", "mp3")
AUDIO_FILES = rf".*\.({'|'.join(AUDIO_SUFFIXES)})$"


@dataclass(frozen=True)
class PoolProject:
    title: str
    id: int
    created: bool


def find_project(client: LabelStudio, title: str) -> int | None:
    for p in client.projects.list(title=title, page_size=100):
        if p.title == title:
            return p.id
    return None


def resolve_projects(client: LabelStudio, refs: Mapping[str, str]) -> dict[str, int]:
    """Project ids by role from references that are ids or titles (CLESC_EXPERT_PROJECT, ...).

    LookupError names every reference that matches no project.
    """
    ids = {p.id for p in client.projects.list(page_size=100)}
    found: dict[str, int | None] = {}
    for role, ref in refs.items():
        found[role] = (int(ref) if int(ref) in ids else None) if ref.isdigit() else find_project(client, ref)
    missing = [f"{role} project {refs[role]!r}" for role, pid in found.items() if pid is None]
    if missing:
        raise LookupError(f"no {' and no '.join(missing)} in Label Studio; run `clesc setup` first")
    return {role: pid for role, pid in found.items() if pid is not None}


MANAGED = "(set up by clesc-studio)"
"""Ends the description of every project `clesc setup` creates: how it tells its own projects from a team's."""


class NotOurs(ValueError):
    """A project with the title setup wants exists, and setup did not create it (`--adopt` takes it over)."""


def ensure_project(client: LabelStudio, title: str, *, label_config: str, overlap: int,
                   description: str, instructions: str | None = None, skip: bool = True,
                   adopt: bool = True) -> PoolProject:
    """Create the project, or bring an existing one with this title to our config. `skip`: annotators may skip
    a task (not in Review: a proposed rejection needs a decision). `adopt=False`: refuse (NotOurs) a project of
    that title that clesc-studio did not set up, rather than rewrite someone's project."""
    description = f"{description} {MANAGED}"
    fields = dict(
        label_config=label_config,
        description=description,
        maximum_annotations=overlap,
        expert_instruction=instructions or "",
        show_instruction=bool(instructions),
        show_skip_button=skip,
    )
    pid = find_project(client, title)
    if pid is None:
        return PoolProject(title, client.projects.create(title=title, **fields).id, True)
    current = client.projects.get(pid)
    ours = MANAGED in (current.description or "") or current.label_config == label_config
    if not ours and not adopt:
        raise NotOurs(f"a project titled {title!r} (id {pid}) exists and clesc-studio did not set it up; "
                      "use `clesc setup --adopt` to take it over (its labeling interface will be replaced), "
                      "or choose other titles (CLESC_EXPERT_PROJECT, CLESC_CROWD_PROJECT, CLESC_REVIEW_PROJECT)")
    if (current.label_config, current.maximum_annotations, current.show_skip_button, current.description) != \
            (label_config, overlap, skip, description):
        client.projects.update(pid, **fields)
    return PoolProject(title, pid, False)


def default_titles() -> dict[str, str]:
    """The project title of each role: Expert, Crowd, Review."""
    return {role: role.capitalize() for role in (*POOLS, REVIEW)}


def ensure_pools(client: LabelStudio, overlap: int, *, with_review: bool = False,
                 titles: Mapping[str, str] | None = None, adopt: bool = True) -> dict[str, PoolProject]:
    """The Expert and Crowd projects (and the Review project when asked), by role ("expert", "crowd", "review").

    With `adopt=False`, NotOurs names every same-titled project clesc-studio did not set up, before anything
    is created or changed."""
    titles = {**default_titles(), **(titles or {})}
    roles = [*POOLS, *([REVIEW] if with_review else [])]
    if not adopt:
        foreign = []
        for role in roles:
            pid = find_project(client, titles[role])
            if pid is not None:
                current = client.projects.get(pid)
                config = review_config() if role == REVIEW else labeling_config()
                if MANAGED not in (current.description or "") and current.label_config != config:
                    foreign.append(f"{titles[role]!r} (id {pid})")
        if foreign:
            raise NotOurs(f"projects titled {', '.join(foreign)} exist and clesc-studio did not set them up; use "
                          "`clesc setup --adopt` to take them over (their labeling interface will be replaced), or "
                          "choose other titles (CLESC_EXPERT_PROJECT, CLESC_CROWD_PROJECT, CLESC_REVIEW_PROJECT)")
    config, instructions = labeling_config(), annotator_instructions()
    out = {
        pool: ensure_project(client, titles[pool], label_config=config, overlap=overlap,
                             description=project_description(titles[pool]), instructions=instructions)
        for pool in POOLS
    }
    if with_review:
        out[REVIEW] = ensure_project(
            client, titles[REVIEW], label_config=review_config(), overlap=1, skip=False,
            description="Ops review of labels the judge proposes to reject: uphold or overturn.")
    return out


REVIEW_VIEW = "By confidence"
"""The Review project's Data Manager tab listing proposed rejections surest first."""


def ensure_review_view(client: LabelStudio, project_id: int) -> bool:
    """The Review project's tab ordered by the judge's confidence, most certain first; True if created now."""
    if any((getattr(v, "data", None) or {}).get("title") == REVIEW_VIEW for v in client.views.list(project=project_id)):
        return False
    client.views.create(project=project_id, data={"title": REVIEW_VIEW, "ordering": ["-tasks:data.confidence"]})
    return True


def import_folder(client: LabelStudio, project_id: int, folder: Path, *, timeout: float = 120.0) -> int:
    """Import every audio file of `folder` through LS local-files storage; return the project's task count.

    The folder must lie under the LS server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT. Re-running
    re-syncs the same storage, which adds only files LS has not imported yet.
    """
    path = str(folder.resolve())
    storage = next((s for s in client.import_storage.local.list(project=project_id) if s.path == path), None)
    if storage is None:
        storage = client.import_storage.local.create(
            project=project_id, path=path, regex_filter=AUDIO_FILES, use_blob_urls=True,
            title=f"clips: {folder.name}",
        )
    client.import_storage.local.sync(id=storage.id)
    expected = sum(1 for f in folder.iterdir() if f.suffix.lower().lstrip(".") in AUDIO_SUFFIXES)
    deadline = time.monotonic() + timeout
    while True:
        status = client.import_storage.local.get(id=storage.id)
        if status.status == "failed":
            raise RuntimeError(f"LS storage sync of {path} failed: {status.traceback or status.meta}")
        count = client.projects.get(project_id).task_number or 0
        if status.status == "completed" and count >= expected:
            return count
        if time.monotonic() > deadline:
            raise TimeoutError(f"LS imported {count} of {expected} clips from {path} in {timeout:.0f} s")
        time.sleep(0.5)


WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]


def ensure_webhook(client: LabelStudio, project_id: int, url: str, headers: dict[str, str]) -> str:
    """One webhook per project to `url`, sending the payload and our secret header; 'created' | 'updated' | 'unchanged'."""
    existing = [w for w in client.webhooks.list(project=project_id) if w.url == url]
    if not existing:
        client.webhooks.create(url=url, project=project_id, send_payload=True, send_for_all_actions=False,
                               actions=WEBHOOK_ACTIONS, headers=headers, is_active=True)
        return "created"
    hook = existing[0]
    if (hook.headers != headers or sorted(hook.actions or []) != sorted(WEBHOOK_ACTIONS)
            or not hook.is_active or not hook.send_payload):
        client.webhooks.update(hook.id, url=url, send_payload=True, send_for_all_actions=False,
                               actions=WEBHOOK_ACTIONS, headers=headers, is_active=True)
        return "updated"
    return "unchanged"


def ensure_ml_backend(client: LabelStudio, project_id: int, url: str, title: str = "clesc acoustic",
                      basic_auth: tuple[str, str] | None = None) -> bool:
    """Connect the ML backend at `url` to the project unless it is connected; True if connected now.

    With `basic_auth` (CLESC_ML_BASIC_AUTH_USER/PASS), LS sends those credentials on every call.
    """
    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": basic_auth[0], "basic_auth_pass": basic_auth[1]} \
        if basic_auth else {}
    for backend in client.ml.list(project=project_id):
        if backend.url.rstrip("/") == url.rstrip("/"):
            if auth:
                client.ml.update(id=backend.id, url=url, project=project_id, **auth)
            return False
    client.ml.create(project=project_id, url=url, title=title, is_interactive=False, **auth)
    return True


def retrieve_predictions(client: LabelStudio, project_id: int) -> None:
    """The data manager's "Retrieve predictions" on every task: LS asks the connected ML backend."""
    client.actions.create(id="retrieve_tasks_predictions", project=project_id,
                          selected_items={"all": True, "excluded": []})


def ensure_user(client: LabelStudio, email: str) -> int:
    """The id of the LS user with this e-mail, created (without a password) if there is none."""
    for u in client.users.list():
        if u.email == email:
            return u.id
    return client.users.create(username=email.split("@")[0], email=email).id


def list_tasks(client: Any, project_id: int, *, fields: str = "all", query: dict | None = None,
               page_size: int = 100, include: Iterable[str] | None = None) -> Iterable[Any]:
    """Every task of a project, page by page (LS SDK pager), optionally filtered by a Data Manager query.

    `include`: only these task fields (LS computes and sends much less: a page of 500 tasks without
    annotations 1.35 s instead of 3.2 s here; with `annotations` included they are id and updated_at only).
    """
    kwargs: dict[str, Any] = {"project": project_id, "fields": fields, "page_size": page_size}
    if query is not None:
        kwargs["query"] = json.dumps(query)
    if include is not None:
        kwargs["include"] = ",".join(include)
    yield from client.tasks.list(**kwargs)


def task_index(client: Any, project_id: int) -> dict[str, Any]:
    """Clip key -> task (the first one, by id) of a project."""
    index: dict[str, Any] = {}
    for task in list_tasks(client, project_id):
        key = clip_key(task.data or {})
        if key is not None and key not in index:
            index[key] = task
    return index


def ensure_local_storage(client: Any, project_id: int, folder: Path) -> None:
    """LS serves a local file only through a local-files storage of the project that covers it (not synced here)."""
    path = str(folder.resolve())
    if not any(s.path == path for s in client.import_storage.local.list(project=project_id)):
        client.import_storage.local.create(project=project_id, path=path, use_blob_urls=True,
                                           regex_filter=r"^$", title=f"clips: {folder.name}")
