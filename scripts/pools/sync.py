"""`clesc sync`: keep the Expert and Crowd projects in step.

- A clip in one project and not the other gets its task there (same data), and both tasks are linked.
- Each task's meta `clesc_pair` carries the other pool's task, judge status and consensus
  (scripts/pools/pairs.py), so annotators' leads and ops see one pool from the other; optionally
  (CLESC_SYNC_REFERENCE_PREDICTION) the Expert consensus becomes a prediction in the Crowd task.

Incremental: only tasks updated since the last finished sync (minus a margin for clock skew) are read,
page by page; the time is kept in the store. Interrupting it is safe: every write is idempotent
(created tasks are found again by their audio, meta is compared before it is written), and a sync
that did not finish does not move the mark, so the next run covers what it missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from label_config.meta import read_pair
from label_config.records import clip_key
from label_config.schema import POOLS
from label_config.taxonomy import Taxonomy
from scripts.labelstudio.projects import BATCH, list_tasks
from scripts.pools.pairs import REFERENCE_MODEL_VERSION, PairWriter, run_bounded

__all__ = ["MARGIN", "REFERENCE_MODEL_VERSION", "SyncReport", "Syncer", "sync"]
MARGIN = timedelta(seconds=120)
PAGE = 500
"""Tasks per page when reading a project with its annotations."""
LS_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
"""The only datetime format Label Studio's Data Manager filters accept."""


@dataclass
class SyncReport:
    full: bool = True
    read: dict[str, int] = field(default_factory=lambda: {p: 0 for p in POOLS})
    created: dict[str, int] = field(default_factory=lambda: {p: 0 for p in POOLS})
    updated: int = 0
    unchanged: int = 0
    predictions: int = 0

    def summary(self) -> str:
        kind = "full" if self.full else "incremental"
        return (f"{kind} sync: read expert {self.read['expert']}, crowd {self.read['crowd']} tasks; "
                f"created expert {self.created['expert']}, crowd {self.created['crowd']}; "
                f"{self.updated} task metas updated, {self.unchanged} unchanged; "
                f"{self.predictions} reference predictions written")


def _since_query(since: datetime) -> dict[str, Any]:
    return {"filters": {"conjunction": "and", "items": [{
        "filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
        "value": since.astimezone(UTC).strftime(LS_TIME)}]}}


def _audio_query(audio: str) -> dict[str, Any]:
    return {"filters": {"conjunction": "and", "items": [{
        "filter": "filter:tasks:data.audio", "operator": "equal", "type": "String", "value": audio}]}}


class Syncer:
    def __init__(self, client: Any, projects: Mapping[str, int], *, reference_prediction: bool = False,
                 taxonomy: Taxonomy | None = None):
        self.client = client
        self.projects = dict(projects)
        self.pairs = PairWriter(client, projects, reference_prediction=reference_prediction, taxonomy=taxonomy)

    def changed(self, pool: str, since: datetime | None) -> Iterable[Any]:
        return list_tasks(self.client, self.projects[pool], query=None if since is None else _since_query(since),
                          page_size=PAGE)

    def _find(self, pool: str, audio: str) -> Any | None:
        found = list(list_tasks(self.client, self.projects[pool], query=_audio_query(audio), page_size=10))
        return min(found, key=lambda t: t.id) if found else None

    def _get(self, task_id: int) -> Any:
        return self.client.tasks.get(task_id)

    def run(self, since: datetime | None, progress: Callable[[str, int], None] | None = None) -> SyncReport:
        report = SyncReport(full=since is None)
        tasks: dict[str, dict[str, Any]] = {p: {} for p in POOLS}
        for pool in POOLS:
            for task in self.changed(pool, since):
                key = clip_key(task.data or {})
                if key is not None and (key not in tasks[pool] or task.id < tasks[pool][key].id):
                    tasks[pool][key] = task
                report.read[pool] += 1
                if progress is not None:
                    progress(f"reading {pool}", 1)
        # Partners of changed tasks: the linked task, else the task with the same audio, else none yet
        # (looked up CONCURRENCY at a time).
        keys = sorted(set(tasks["expert"]) | set(tasks["crowd"]))
        missing: dict[str, list[str]] = {p: [] for p in POOLS}
        lookups = [(pool, other, key) for key in keys for pool, other in (("expert", "crowd"), ("crowd", "expert"))
                   if key not in tasks[pool] and key in tasks[other]]

        def partner_of(pool: str, other: str, key: str):
            link = read_pair(tasks[other][key].meta)
            partner = None
            if link is not None and link.project == self.projects[pool]:
                try:
                    partner = self._get(link.task)
                except Exception:  # noqa: BLE001 - a deleted partner: look it up by audio
                    partner = None
                if partner is not None and clip_key(partner.data or {}) != key:
                    partner = None
            if partner is None and not report.full:
                partner = self._find(pool, key)
            return pool, key, partner

        def found(result) -> None:
            pool, key, partner = result
            if partner is None:
                missing[pool].append(key)
            else:
                tasks[pool][key] = partner

        run_bounded([lambda args=args: partner_of(*args) for args in lookups], done=found)
        for pool in POOLS:
            missing[pool].sort()
        for pool, keys_missing in missing.items():
            other = "crowd" if pool == "expert" else "expert"
            for start in range(0, len(keys_missing), BATCH):
                batch = keys_missing[start:start + BATCH]
                payload = [{"data": dict(tasks[other][k].data)} for k in batch]
                ids = self.client.projects.import_tasks(self.projects[pool], request=payload, return_task_ids=True).task_ids
                for key, task_id in zip(batch, ids or []):
                    tasks[pool][key] = self._get(task_id)
                for key in batch:
                    if key not in tasks[pool]:  # an LS that does not return ids: find the task by its audio
                        tasks[pool][key] = self._find(pool, key)
                report.created[pool] += len(batch)
                if progress is not None:
                    progress(f"creating {pool}", len(batch))
        written = self.pairs.write_pairs(tasks, keys, progress)
        report.updated, report.unchanged, report.predictions = written.updated, written.unchanged, written.predictions
        return report


def sync(client: Any, projects: Mapping[str, int], store: Any, *, full: bool = False, reference_prediction: bool = False,
         progress: Callable[[str, int], None] | None = None, margin: timedelta = MARGIN) -> SyncReport:
    """One sync run; the store keeps when the last finished one started (by project pair).

    `margin` widens the window for clocks that differ between this machine and the LS server.
    Tasks this run writes are read once more by the next run (their updated_at moved), which finds
    nothing to change.
    """
    started = datetime.now(UTC)
    last = None if full else store.last_sync(projects["expert"], projects["crowd"])
    since = None if last is None else last - margin
    report = Syncer(client, projects, reference_prediction=reference_prediction).run(since, progress)
    store.record_sync(projects["expert"], projects["crowd"], started)
    return report
