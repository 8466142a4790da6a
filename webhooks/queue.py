"""The job queue: Huey, on a SQLite file (embedded, no server) or on Redis (workers on many machines).

The web process only enqueues; `clesc worker` runs a Huey consumer whose jobs call the JudgeLoop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask, TaskLockedException

from label_config.schema import REVIEW
from webhooks.settings import Settings

log = logging.getLogger("clesc.queue")
STALE_PENDING_S = 120.0
LOCK_STRIPES = 64


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey("clesc", url=settings.redis_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("clesc", filename=str(settings.home / "queue.db"))


class JobQueue:
    """Huey tasks bound to a loop factory (called only in the worker, where the jobs run)."""

    def __init__(self, huey: Huey, loop_factory: Callable[[], object] | None = None, reconcile_minutes: int = 5):
        self.huey = huey
        self._loop_factory = loop_factory
        self._loop = None
        # One task is judged by one job at a time. Locks are striped so that their names are known at
        # start-up: the consumer flushes them there, freeing a lock held by a worker that was killed.
        locks = [huey.lock_task(f"judge-{i}") for i in range(LOCK_STRIPES)]

        @huey.task(retries=8, retry_delay=5, name="clesc.judge")
        def judge_job(project_id: int, task_id: int) -> None:
            try:
                with locks[(project_id * 1_000_003 + task_id) % LOCK_STRIPES]:
                    self.loop().judge_task(project_id, task_id)
            except TaskLockedException:
                raise RetryTask(delay=1) from None

        @huey.task(retries=8, retry_delay=5, name="clesc.decision")
        def decision_job(review_task_id: int) -> None:
            self.loop().apply_decision(review_task_id)

        @huey.periodic_task(crontab(minute=f"*/{reconcile_minutes}"), name="clesc.reconcile")
        def reconcile_job() -> None:
            self.loop().reconcile(enqueue=self)

        @huey.periodic_task(crontab(minute="*"), name="clesc.sweep")
        def sweep_job() -> None:
            self.sweep(STALE_PENDING_S)

        self._judge, self._decision = judge_job, decision_job

    @classmethod
    def from_settings(cls, settings: Settings, loop_factory: Callable[[], object] | None = None) -> JobQueue:
        return cls(make_huey(settings), loop_factory, settings.reconcile_minutes)

    def loop(self):
        if self._loop is None:
            if self._loop_factory is None:
                raise RuntimeError("this JobQueue only enqueues; jobs run in `clesc worker`")
            self._loop = self._loop_factory()
            if getattr(self._loop, "requeue", False) is None:
                self._loop.requeue = self.judge  # tasks to judge again go back to the queue
        return self._loop

    def judge(self, project_id: int, task_id: int) -> None:
        self._judge(project_id, task_id)

    def apply_decision(self, review_task_id: int) -> None:
        self._decision(review_task_id)

    def pending_count(self) -> int:
        return self.huey.pending_count()

    def sweep(self, older_than_s: float) -> int:
        """Enqueue again every task whose events are still pending (a worker died mid-job, an enqueue failed)."""
        pending = self.loop().store.pending_tasks(older_than_s)
        roles = self.loop().store.project_roles()
        for project_id, task_id in pending:
            if roles.get(project_id) == REVIEW:
                self.apply_decision(task_id)
            else:
                self.judge(project_id, task_id)
        if pending:
            log.info("sweep: enqueued %d task(s) with pending events", len(pending))
        return len(pending)
