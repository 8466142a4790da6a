"""The job queue: Huey, on a SQLite file (embedded, no server) or on Redis (workers on many machines).

The web process only enqueues; `clesc worker` runs a Huey consumer whose jobs call the JudgeLoop.

- Coalesced: a task waits in the queue at most once (the store's `task_queue` claim, taken in the same
  transaction as the event); the job releases it when it starts, before it reads the task from LS, so a
  burst of webhooks for one task is one judgement of its latest state, and nothing sent after that read
  is missed (it queues the next one).
- One job judges a task at a time, on any worker: it holds the task's lease in the store
  (`webhooks.store.TaskLease`); another job for the task is retried a second later.
- Failures are counted in the store, not by Huey: each failed job adds an attempt to the task's pending
  events and schedules the next try after an exponential backoff (CLESC_EVENT_RETRY_S doubling, at most
  an hour); after CLESC_EVENT_MAX_ATTEMPTS the events are `failed` with the last error (`GET /health`,
  `clesc events --failed`) until retried on demand (`clesc events --retry ID|--all-failed`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask

from label_config.schema import REVIEW
from webhooks.private import private_dir, private_file
from webhooks.settings import JOB_LEASE_S, Settings
from webhooks.store import TaskBusy, TaskLease

log = logging.getLogger("clesc.queue")
STALE_PENDING_S = 120.0
"""Default of CLESC_SWEEP_AFTER_S: events pending this long are enqueued again by the minutely sweep."""


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey("clesc", url=settings.redis_url)
    private_dir(settings.home)
    return SqliteHuey("clesc", filename=str(private_file(settings.home / "queue.db")))


def describe(error: Exception) -> str:
    """One line for an error: an LS API error by its status and body (not its response headers)."""
    status = getattr(error, "status_code", None)
    if status is not None:
        return f"{type(error).__name__}: status {status}: {str(getattr(error, 'body', ''))[:500]}"
    return f"{type(error).__name__}: {error}"


def every_minutes(n: int) -> Callable[[datetime], bool]:
    """A Huey schedule that fires every `n` minutes, counted from the epoch (cron's `*/7` fires at :56 and
    again at :00, and `*/90` hourly).

    >>> seven = every_minutes(7)
    >>> due = [m for m in range(180) if seven(datetime(2026, 12, 5, 10 + m // 60, m % 60))]
    >>> due[:3], {b - a for a, b in zip(due, due[1:])}
    ([6, 13, 20], {7})
    >>> sum(every_minutes(90)(datetime(2026, 12, 5, h, m)) for h in range(24) for m in range(60))
    16
    """
    epoch = datetime(1970, 1, 1)

    def due(dt: datetime) -> bool:
        return int((dt.replace(tzinfo=None) - epoch).total_seconds() // 60) % n == 0
    return due


class JobQueue:
    """Huey tasks bound to a loop factory (called only in the worker, where the jobs run)."""

    def __init__(self, huey: Huey, loop_factory: Callable[[], object] | None = None, reconcile_minutes: int = 5,
                 max_attempts: int = 8, retry_s: float = 5.0, sweep_after_s: float = STALE_PENDING_S,
                 lease_s: float = JOB_LEASE_S):
        self.huey = huey
        self._loop_factory = loop_factory
        self._loop = None
        self.max_attempts, self.retry_s, self.sweep_after_s = max_attempts, retry_s, sweep_after_s
        self.lease_s = lease_s

        @huey.task(name="clesc.judge")
        def judge_job(project_id: int, task_id: int, attempt: int = 0) -> None:
            try:
                with self._task_lock(project_id, task_id):
                    self.loop().store.release_queue(project_id, task_id)
                    self.loop().judge_task(project_id, task_id)
            except TaskBusy:
                raise RetryTask(delay=1) from None
            except Exception as e:  # noqa: BLE001 - counted on the events, retried with backoff, then failed
                self._failed(project_id, task_id, e, judge_job, (project_id, task_id), attempt)

        @huey.task(name="clesc.decision")
        def decision_job(review_task_id: int, attempt: int = 0) -> None:
            try:
                self.loop().apply_decision(review_task_id)  # takes the pool task's lease (task_lock)
            except TaskBusy:
                raise RetryTask(delay=1) from None
            except Exception as e:  # noqa: BLE001
                review_project = self.loop().store.project_with_role(REVIEW)
                if review_project is None:
                    review_project = -1
                self._failed(review_project, review_task_id, e, decision_job, (review_task_id,), attempt)

        @huey.periodic_task(every_minutes(reconcile_minutes), name="clesc.reconcile")
        def reconcile_job() -> None:
            self.loop().reconcile(enqueue=self)

        @huey.periodic_task(crontab(minute="*"), name="clesc.sweep")
        def sweep_job() -> None:
            self.sweep(self.sweep_after_s)

        self._judge, self._decision = judge_job, decision_job

    @classmethod
    def from_settings(cls, settings: Settings, loop_factory: Callable[[], object] | None = None) -> JobQueue:
        return cls(make_huey(settings), loop_factory, settings.reconcile_minutes,
                   settings.event_max_attempts, settings.event_retry_s, settings.sweep_after_s, settings.job_lease_s)

    def _failed(self, project_id: int, task_id: int, error: Exception, job, args: tuple, attempt: int) -> None:
        """Count the failure on the task's pending events and retry after the backoff, or fail them. A job
        without pending events (a task judged again because skills moved) counts its attempts itself."""
        message = describe(error)
        ids, attempts, delay = self.loop().store.fail_attempt(project_id, task_id, message,
                                                              max_attempts=self.max_attempts, backoff_s=self.retry_s)
        if not ids:
            attempts = attempt + 1
            delay = min(3600.0, self.retry_s * 2 ** attempt) if attempts < self.max_attempts else None
            log.warning("job for project %d task %d failed (attempt %d, no pending event): %s%s", project_id, task_id,
                        attempts, message, "" if delay is None else f"; next in {delay:.0f} s")
            if delay is not None:
                job.schedule(args=(*args, attempts), delay=delay)
        elif delay is None:
            log.error("project %d task %d: %d event(s) failed after %d attempts: %s (`clesc events --retry`)",
                      project_id, task_id, len(ids), attempts, message)
        else:
            log.warning("project %d task %d: attempt %d of %d failed (%s); next in %.0f s", project_id, task_id,
                        attempts, self.max_attempts, message, delay)
            job.schedule(args=(*args, attempts), delay=delay)

    def loop(self):
        if self._loop is None:
            if self._loop_factory is None:
                raise RuntimeError("this JobQueue only enqueues; jobs run in `clesc worker`")
            self._loop = self._loop_factory()
            if getattr(self._loop, "requeue", False) is None:
                self._loop.requeue = self.judge  # tasks to judge again go back to the queue
            if hasattr(self._loop, "task_lock"):
                self._loop.task_lock = self._task_lock
        return self._loop

    def _task_lock(self, project_id: int, task_id: int) -> TaskLease:
        """The lease judge jobs of this pool task hold (TaskBusy at once when another job has it: the job
        is retried a second later)."""
        return TaskLease(self.loop().store, project_id, task_id, self.lease_s)

    def judge(self, project_id: int, task_id: int) -> None:
        self._judge(project_id, task_id)

    def apply_decision(self, review_task_id: int) -> None:
        self._decision(review_task_id)

    def judge_coalesced(self, store, project_id: int, task_id: int) -> bool:
        """Enqueue a judgement unless one waits already; True if enqueued."""
        if not store.claim_queue(project_id, task_id):
            return False
        self.enqueue_claimed(store, project_id, task_id)
        return True

    def enqueue_claimed(self, store, project_id: int, task_id: int) -> None:
        """Enqueue the judgement whose claim the caller took; on failure the claim is released (the sweep
        enqueues the pending events later) and the error raised."""
        try:
            self.judge(project_id, task_id)
        except Exception:
            try:
                store.release_queue(project_id, task_id)
            except Exception:  # noqa: BLE001 - the store is down too; the sweep's enqueue ignores the claim
                pass
            raise

    def pending_count(self) -> int:
        return self.huey.pending_count()

    def sweep(self, older_than_s: float) -> int:
        """Enqueue again every task whose events are still pending (a worker died mid-job, an enqueue failed)."""
        pending = self.loop().store.pending_tasks(older_than_s)
        roles = self.loop().store.project_roles()
        store = self.loop().store
        for project_id, task_id in pending:
            if roles.get(project_id) == REVIEW:
                self.apply_decision(task_id)
            elif store.claim_queue(project_id, task_id, stale_after_s=self.sweep_after_s):
                self.enqueue_claimed(store, project_id, task_id)
            # else a judgement of the task waits in the queue already: it covers these events
        if pending:
            log.info("sweep: enqueued %d task(s) with pending events", len(pending))
        return len(pending)
