"""The job queue on a real SQLite store and a real Huey (SQLite) queue, jobs run one by one here.

Coalescing (a burst of webhooks for one task is one job), and failures counted on the events with
exponential backoff until `failed` (issue 14, item 7: before, an event for a missing task stayed
`pending` with 0 attempts and was retried for ever). The judge loop itself needs Label Studio; here a
stand-in loop (named as such) plays it: it either judges (finishes the task's pending events, as the
real JudgeLoop does) or raises as the LS client does for a task that does not exist.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from huey.exceptions import RetryTask

from webhooks.app import SECRET_HEADER, create_app
from webhooks.queue import JobQueue
from webhooks.settings import Settings
from webhooks.store import Store, TaskLease

SECRET = "queue-secret-1"
PROJECT = 4


class StandInLoop:
    """Stands in for webhooks.worker.JudgeLoop (which reads Label Studio): records the tasks it judged."""

    def __init__(self, store: Store, missing: set[int] = frozenset()):
        self.store, self.missing, self.judged = store, missing, []
        self.requeue = None

    def judge_task(self, project_id: int, task_id: int):
        ids = self.store.pending_event_ids(project_id, task_id)
        if task_id in self.missing:
            raise LookupError(f"status_code: 404, task {task_id} not found")
        self.judged.append(task_id)
        self.store.finish_events(ids)


@pytest.fixture
def env(tmp_path):
    settings = Settings.from_env({"CLESC_HOME": str(tmp_path), "CLESC_WEBHOOK_SECRET": SECRET,
                                  "CLESC_EVENT_MAX_ATTEMPTS": "3", "CLESC_EVENT_RETRY_S": "10"})
    store = Store(settings.database_url)
    store.set_projects([(PROJECT, "crowd", "Crowd")])
    loop = StandInLoop(store, missing={404})
    queue = JobQueue.from_settings(settings, loop_factory=lambda: loop)
    app = create_app(settings, store, JobQueue.from_settings(settings)).test_client()
    return settings, store, queue, loop, app


def webhook(app, task: int, n: int):
    body = {"action": "ANNOTATION_UPDATED", "project": {"id": PROJECT},
            "annotation": {"id": 1000 + n, "task": task, "project": PROJECT, "result": [],
                           "updated_at": f"2026-03-01T00:00:00.{n:06d}Z"}}
    return app.post("/webhook", data=json.dumps(body), headers={SECRET_HEADER: SECRET},
                    content_type="application/json")


def run_next(queue: JobQueue) -> bool:
    task = queue.huey.dequeue()
    if task is None:
        return False
    queue.huey.execute(task)
    return True


def test_a_burst_for_one_task_is_one_judgement_of_its_latest_state(env):
    _, store, queue, loop, app = env
    assert all(webhook(app, 7, n).status_code == 202 for n in range(50))
    assert all(webhook(app, 8, n).status_code == 202 for n in range(50, 53))
    assert queue.pending_count() == 2  # one job per task, not 53
    while run_next(queue):
        pass
    assert sorted(loop.judged) == [7, 8]
    assert store.event_counts() == {"done": 53}  # every accepted webhook processed
    # once its job started, the next webhook for the task queues a new judgement
    assert webhook(app, 7, 99).status_code == 202 and queue.pending_count() == 1


def test_the_claim_is_released_when_the_job_starts(env):
    _, store, queue, loop, app = env
    webhook(app, 7, 1)
    assert not store.claim_queue(PROJECT, 7)  # waiting in the queue
    run_next(queue)
    assert store.claim_queue(PROJECT, 7)


def test_a_poison_event_backs_off_then_fails_and_is_retried_on_demand(env):
    settings, store, queue, loop, app = env
    event_id = webhook(app, 404, 1).json["event"]
    run_next(queue)
    [event] = store.events()
    assert event["status"] == "pending" and event["attempts"] == 1 and "404" in event["error"]
    assert event["next_attempt_at"] is not None
    [retry] = queue.huey.pending()
    assert retry.eta is not None  # the next try waits out the backoff
    assert store.pending_tasks(0) == []  # the sweep leaves it alone meanwhile
    delays = []
    for attempt in (2, 3):
        ids, attempts, delay = store.fail_attempt(PROJECT, 404, "LookupError: still missing",
                                                  max_attempts=3, backoff_s=settings.event_retry_s)
        delays.append(delay)
        assert ids == [event_id] and attempts == attempt
    assert delays == [20.0, None]  # 10 s, 20 s, then failed
    [event] = store.failed_events()
    assert event["status"] == "failed" and event["attempts"] == 3 and "still missing" in event["error"]
    assert store.pending_tasks(0) == [] and store.event_counts() == {"failed": 1}
    health = app.get("/health").json
    assert health["events"]["failed"] == 1 and health["events"]["failed_recent"][0]["id"] == event_id
    assert store.retry_failed([event_id]) == [(PROJECT, 404)]
    [event] = store.events()
    assert event["status"] == "pending" and event["attempts"] == 0 and event["next_attempt_at"] is None
    assert store.retry_failed() == []  # nothing failed any more


def test_a_failed_job_counts_and_fails_in_the_end_through_the_queue(tmp_path):
    settings = Settings.from_env({"CLESC_HOME": str(tmp_path), "CLESC_EVENT_MAX_ATTEMPTS": "2",
                                  "CLESC_EVENT_RETRY_S": "0"})
    store = Store(settings.database_url)
    store.set_projects([(PROJECT, "crowd", "Crowd")])
    loop = StandInLoop(store, missing={404})
    queue = JobQueue.from_settings(settings, loop_factory=lambda: loop)
    store.add_event(delivery_key="k", source="webhook", action="ANNOTATION_CREATED", project_id=PROJECT,
                    task_id=404, annotation={"id": 1})
    queue.judge(PROJECT, 404)
    run_next(queue)
    assert store.events()[0]["attempts"] == 1
    queue.huey.execute(queue.huey.dequeue() or _scheduled(queue))
    [event] = store.events()
    assert event["status"] == "failed" and event["attempts"] == 2


def _scheduled(queue: JobQueue):
    [task] = queue.huey.scheduled()
    return task


def test_a_store_made_before_next_attempt_at_gets_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    Store(f"sqlite:///{path}")
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE events DROP COLUMN next_attempt_at")
    con.commit()
    con.close()
    store = Store(f"sqlite:///{path}")
    store.add_event(delivery_key="x", source="webhook", action="A", project_id=1, task_id=2, annotation=None)
    assert store.events()[0]["next_attempt_at"] is None


class SlowLoop(StandInLoop):
    """A stand-in loop whose judgement takes a while and records how many ran at once."""

    def __init__(self, store: Store):
        super().__init__(store)
        self.running = self.most_at_once = 0
        self.guard = threading.Lock()

    def judge_task(self, project_id: int, task_id: int):
        with self.guard:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.3)
        with self.guard:
            self.running -= 1
        super().judge_task(project_id, task_id)


def test_two_workers_never_judge_one_task_at_once_and_a_killed_holder_runs_out(tmp_path):
    """Two workers (two JobQueues on one Huey and one store, as on two machines) run jobs for the same task
    at the same moment: one judges, the other is told to retry (Huey's RetryTask) and judges after it. A
    lease left by a killed worker blocks the task only until CLESC_JOB_LEASE_S runs out."""
    settings = Settings.from_env({"CLESC_HOME": str(tmp_path), "CLESC_JOB_LEASE_S": "1"})
    store = Store(settings.database_url)
    store.set_projects([(PROJECT, "crowd", "Crowd")])
    loop = SlowLoop(store)
    workers = [JobQueue.from_settings(settings, loop_factory=lambda: loop) for _ in range(2)]
    outcomes = []

    def run(queue: JobQueue) -> None:
        try:
            queue._judge.call_local(PROJECT, 7)
            outcomes.append("judged")
        except RetryTask:
            outcomes.append("retry")

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["judged", "retry"] and loop.most_at_once == 1
    assert store.take_lease(PROJECT, 7, "nobody", 30)  # the job gave its lease back

    store.release_lease(PROJECT, 7, "nobody")
    assert store.take_lease(PROJECT, 8, "a-killed-worker", settings.job_lease_s)
    with pytest.raises(RetryTask):
        workers[0]._judge.call_local(PROJECT, 8)
    time.sleep(1.1)
    workers[0]._judge.call_local(PROJECT, 8)
    assert loop.judged == [7, 8]


def test_a_long_job_keeps_its_lease_by_renewing_it(tmp_path):
    settings = Settings.from_env({"CLESC_HOME": str(tmp_path), "CLESC_JOB_LEASE_S": "1"})
    store = Store(settings.database_url)
    lease = TaskLease(store, PROJECT, 9, settings.job_lease_s)
    with lease:
        time.sleep(2.5)  # past the lease time: renewed every third of it
        assert not store.take_lease(PROJECT, 9, "another-job", 30)
    assert store.take_lease(PROJECT, 9, "another-job", 30)


@pytest.mark.parametrize("minutes", [5, 7, 90])
def test_the_worker_reconciles_every_n_minutes_as_documented(tmp_path, minutes):
    """CLESC_RECONCILE_MINUTES=7 once fired at :56 and again at :00 (cron's */7), and 90 hourly."""
    from datetime import datetime, timedelta

    settings = Settings.from_env({"CLESC_HOME": str(tmp_path), "CLESC_RECONCILE_MINUTES": str(minutes)})
    queue = JobQueue.from_settings(settings, loop_factory=lambda: None)
    start = datetime(2026, 12, 5, 9, 0)
    fired = [m for m in range(6 * 60)
             if any(t.name == "clesc.reconcile" for t in queue.huey.read_periodic(start + timedelta(minutes=m)))]
    assert len(fired) >= 3 and {b - a for a, b in zip(fired, fired[1:])} == {minutes}
