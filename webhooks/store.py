"""The durable store: webhook events, annotation versions seen, verdicts, review tasks, pool projects, syncs,
the annotators' skills with the evidence of each judged annotation, and the lease a job holds on its task.

SQLAlchemy Core on SQLite (a file, embedded) or PostgreSQL (by URL). Nothing here holds a secret:
events keep an allow-listed copy of the annotation, never the project object LS sends.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from webhooks.judge.reliability import Evidence, Skill
from webhooks.private import private_file

log = logging.getLogger("clesc.store")
metadata = MetaData()

projects = Table(
    "projects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("role", String(16), nullable=False),  # expert | crowd | review
    Column("title", String(200), nullable=False),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_key", String(64), nullable=False, unique=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),  # webhook | reconcile | decision
    Column("action", String(40), nullable=False),
    Column("project_id", Integer, nullable=False),
    Column("task_id", Integer, nullable=False),
    Column("annotation_id", Integer),
    Column("annotation_updated_at", String(40)),
    Column("annotation", JSON),
    Column("status", String(16), nullable=False, default="pending"),  # pending | done | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("next_attempt_at", DateTime(timezone=True)),  # after a failed attempt: not retried before
    Index("events_by_status", "status", "project_id", "task_id"),
)

task_queue = Table(
    "task_queue", metadata,  # coalescing: at most one judgement of a task waits in the queue
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("task_id", Integer, primary_key=True, autoincrement=False),
    Column("queued", Boolean, nullable=False, default=False),
    Column("queued_at", DateTime(timezone=True)),
)

task_leases = Table(
    "task_leases", metadata,  # one job judges a task at a time; a lease that is not renewed runs out
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("task_id", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(80), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

annotations_seen = Table(
    "annotations_seen", metadata,
    Column("annotation_id", Integer, primary_key=True, autoincrement=False),
    Column("project_id", Integer, nullable=False),
    Column("task_id", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("was_cancelled", Boolean, nullable=False, default=False),
)

verdicts = Table(
    "verdicts", metadata,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("task_id", Integer, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),
    Column("verdict", JSON, nullable=False),
    Column("versions", JSON, nullable=False),  # {annotation_id: updated_at} the verdict was made on
    Column("prediction_id", Integer),
    Column("judged_at", DateTime(timezone=True), nullable=False),
    Column("judge_count", Integer, nullable=False, default=1),
)

reviews = Table(
    "reviews", metadata,
    Column("review_key", String(80), primary_key=True),  # pool task : annotation : version
    Column("review_task_id", Integer, unique=True),
    Column("project_id", Integer, nullable=False),
    Column("task_id", Integer, nullable=False),
    Column("annotation_id", Integer, nullable=False),
    Column("decision", String(16)),  # None | uphold | overturn | auto (applied without ops) | withdrawn
    Column("decided_at", DateTime(timezone=True)),
    Column("applied", Boolean, nullable=False, default=False),
    UniqueConstraint("project_id", "annotation_id", "review_key"),
)

_EVIDENCE_COLUMNS = ("annotations", "random", "defects", "weight_pace", "weight_pitch", "weight_volume",
                     "agree_pace", "agree_pitch", "agree_volume")
"""webhooks.judge.reliability.Evidence as columns: summed with UPDATE ... SET c = c + delta (no lost update)."""


def _evidence_columns() -> list[Column]:
    return [Column(c, Float, nullable=False, default=0.0) for c in _EVIDENCE_COLUMNS]


annotation_evidence = Table(
    "annotation_evidence", metadata,  # what each judged annotation says about its annotator
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("annotation_id", Integer, primary_key=True, autoincrement=False),
    Column("task_id", Integer, nullable=False),
    Column("annotator", Integer, nullable=False),
    Column("confidence", Float, nullable=False, default=0.0),
    Column("decision", String(16)),  # None | uphold | overturn | auto (applied without ops) | withdrawn: ops replaced the judge's guess
    *_evidence_columns(),
    Index("annotation_evidence_by_annotator", "project_id", "annotator"),
)

annotator_skills = Table(
    "annotator_skills", metadata,  # the sums of annotation_evidence per annotator, and when they last moved
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("annotator", Integer, primary_key=True, autoincrement=False),
    *_evidence_columns(),
    Column("snapshot_annotations", Float, nullable=False, default=0.0),
    Column("snapshot_random", Float, nullable=False, default=0.0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

sync_runs = Table(
    "sync_runs", metadata,
    Column("expert_project", Integer, primary_key=True, autoincrement=False),
    Column("crowd_project", Integer, primary_key=True, autoincrement=False),
    Column("started_at", DateTime(timezone=True), nullable=False),  # of the last sync that finished
)


def now() -> datetime:
    return datetime.now(UTC)


INT32 = 2**31 - 1


class ColumnOverflow(ValueError):
    """A value does not fit its column (SQLite would store it anyway; PostgreSQL refuses it)."""


def check_fits(table: Table, values: dict[str, Any]) -> None:
    """Every string within its String(n) column, every integer within a 32-bit Integer column, before
    anything is written: the one guard of the column sizes. ColumnOverflow names the column (no value).

    >>> check_fits(events, {"annotation_updated_at": "x" * 41})
    Traceback (most recent call last):
    ...
    webhooks.store.ColumnOverflow: events.annotation_updated_at holds at most 40 characters (got 41)
    """
    for name, value in values.items():
        column = table.c.get(name)
        if column is None or value is None:
            continue
        length = getattr(column.type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise ColumnOverflow(f"{table.name}.{name} holds at most {length} characters (got {len(value)})")
        if type(column.type) is Integer and isinstance(value, int) and not -INT32 - 1 <= value <= INT32:
            raise ColumnOverflow(f"{table.name}.{name} holds 32-bit integers")


class Store:
    def __init__(self, url: str):
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if path.name != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                private_file(path)  # SQLite gives its -wal and -shm files the database file's mode
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("postgresql"):
            # A PostgreSQL that is down or restarting fails a request fast (503) instead of hanging it.
            kwargs = {"connect_args": {"connect_timeout": 3}, "pool_size": 10, "max_overflow": 20, "pool_timeout": 5}
        self.engine: Engine = create_engine(url, pool_pre_ping=True, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        _add_missing_columns(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as c:
            c.execute(text("SELECT 1"))

    # pool projects
    def set_projects(self, rows: Iterable[tuple[int, str, str]]) -> None:
        with self.engine.begin() as c:
            c.execute(projects.delete())
            for pid, role, title in rows:
                c.execute(insert(projects).values(id=pid, role=role, title=title))

    def project_roles(self) -> dict[int, str]:
        with self.engine.connect() as c:
            return {r.id: r.role for r in c.execute(select(projects))}

    def project_with_role(self, role: str) -> int | None:
        """The watched project of that role (e.g. the Review project), None when there is none."""
        return next((pid for pid, r in self.project_roles().items() if r == role), None)

    # events
    @staticmethod
    def _event_row(*, delivery_key: str, source: str, action: str, project_id: int, task_id: int,
                   annotation: dict[str, Any] | None) -> dict[str, Any]:
        ann = annotation or {}
        row = dict(delivery_key=delivery_key, received_at=now(), source=source, action=action,
                   project_id=project_id, task_id=task_id, annotation_id=ann.get("id"),
                   annotation_updated_at=ann.get("updated_at"), annotation=annotation, status="pending", attempts=0)
        check_fits(events, row)
        return row

    def add_event(self, **event: Any) -> int | None:
        """Persist one event (keywords: delivery_key, source, action, project_id, task_id, annotation); None
        when this delivery was stored before (a duplicate). ColumnOverflow before anything is written."""
        row = self._event_row(**event)
        try:
            with self.engine.begin() as c:
                return c.execute(insert(events).values(**row)).inserted_primary_key[0]
        except IntegrityError:
            return None

    def accept_event(self, **event: Any) -> tuple[int | None, bool]:
        """Persist one event and claim the task's place in the queue, in one transaction: (event id or None
        for a duplicate, whether the caller must enqueue a job). A task already waiting in the queue is not
        queued again: that job reads the task's state when it runs, so it covers this event too."""
        row = self._event_row(**event)
        try:
            with self.engine.begin() as c:
                event_id = c.execute(insert(events).values(**row)).inserted_primary_key[0]
                return event_id, self._claim(c, row["project_id"], row["task_id"])
        except IntegrityError:
            return None, False

    def _claim(self, c, project_id: int, task_id: int) -> bool:
        ins = (pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert)(task_queue).values(
            project_id=project_id, task_id=task_id, queued=True, queued_at=now())
        stmt = ins.on_conflict_do_update(index_elements=[task_queue.c.project_id, task_queue.c.task_id],
                                         set_={"queued": True, "queued_at": now()},
                                         where=task_queue.c.queued.is_(False)).returning(task_queue.c.task_id)
        return c.execute(stmt).first() is not None  # a row only when inserted or flipped to queued

    def claim_queue(self, project_id: int, task_id: int, stale_after_s: float | None = None) -> bool:
        """Whether a judgement of the task must be enqueued now (False: one is waiting already). With
        `stale_after_s`, a claim older than that counts as lost (its job never ran) and is taken again."""
        with self.engine.begin() as c:
            if stale_after_s is not None:
                cutoff = datetime.fromtimestamp(now().timestamp() - stale_after_s, UTC)
                c.execute(update(task_queue).where(task_queue.c.project_id == project_id, task_queue.c.task_id == task_id,
                                                   task_queue.c.queued_at < cutoff).values(queued=False))
            return self._claim(c, project_id, task_id)

    def release_queue(self, project_id: int, task_id: int) -> None:
        """A job for the task starts (or could not be enqueued): events from now on queue a new one."""
        with self.engine.begin() as c:
            c.execute(update(task_queue).where(task_queue.c.project_id == project_id, task_queue.c.task_id == task_id)
                      .values(queued=False))

    def take_lease(self, project_id: int, task_id: int, owner: str, ttl_s: float) -> bool:
        """Whether `owner` now holds the task's lease for `ttl_s` seconds: False while another holder's lease
        runs (a job of a worker that was killed holds it until it runs out, never longer)."""
        current = now()
        expires = datetime.fromtimestamp(current.timestamp() + ttl_s, UTC)
        ins = (pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert)(task_leases).values(
            project_id=project_id, task_id=task_id, owner=owner, expires_at=expires)
        stmt = ins.on_conflict_do_update(index_elements=[task_leases.c.project_id, task_leases.c.task_id],
                                         set_={"owner": owner, "expires_at": expires},
                                         where=(task_leases.c.expires_at < current) | (task_leases.c.owner == owner)
                                         ).returning(task_leases.c.task_id)
        with self.engine.begin() as c:
            return c.execute(stmt).first() is not None

    def renew_lease(self, project_id: int, task_id: int, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease; False when it ran out and another job took it."""
        expires = datetime.fromtimestamp(now().timestamp() + ttl_s, UTC)
        with self.engine.begin() as c:
            return c.execute(update(task_leases).where(
                task_leases.c.project_id == project_id, task_leases.c.task_id == task_id,
                task_leases.c.owner == owner).values(expires_at=expires)).rowcount == 1

    def release_lease(self, project_id: int, task_id: int, owner: str) -> None:
        with self.engine.begin() as c:
            c.execute(task_leases.delete().where(task_leases.c.project_id == project_id,
                                                 task_leases.c.task_id == task_id, task_leases.c.owner == owner))

    def pending_tasks(self, older_than_s: float = 0.0) -> list[tuple[int, int]]:
        """(project_id, task_id) with pending events received more than `older_than_s` ago and due (not
        waiting out the backoff after a failed attempt)."""
        cutoff = now().timestamp() - older_than_s
        current = now().timestamp()
        with self.engine.connect() as c:
            rows = c.execute(select(events.c.project_id, events.c.task_id, events.c.received_at,
                                    events.c.next_attempt_at).where(events.c.status == "pending")).all()
        return sorted({(p, t) for p, t, at, due in rows
                       if _ts(at) <= cutoff and (due is None or _ts(due) <= current)})

    def fail_attempt(self, project_id: int, task_id: int, error: str, *, max_attempts: int,
                     backoff_s: float) -> tuple[list[int], int, float | None]:
        """A job for the task failed: its pending events count one more attempt and wait out an exponential
        backoff (`backoff_s` * 2^(attempts-1), at most an hour); after `max_attempts` they are `failed`
        with the error. Returns (event ids, attempts, seconds until the retry or None when failed)."""
        error = error[:2000]
        with self.engine.begin() as c:
            rows = c.execute(select(events.c.id, events.c.attempts).where(
                events.c.project_id == project_id, events.c.task_id == task_id,
                events.c.status == "pending")).all()
            if not rows:
                return [], 0, None
            attempts = max(r.attempts for r in rows) + 1
            ids = [r.id for r in rows]
            if attempts >= max_attempts:
                c.execute(update(events).where(events.c.id.in_(ids)).values(
                    status="failed", attempts=attempts, error=error, next_attempt_at=None))
                return ids, attempts, None
            delay = min(3600.0, backoff_s * 2 ** (attempts - 1))
            c.execute(update(events).where(events.c.id.in_(ids)).values(
                attempts=attempts, error=error,
                next_attempt_at=datetime.fromtimestamp(now().timestamp() + delay, UTC)))
            return ids, attempts, delay

    def failed_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The failed events, newest first (their annotation copy left out)."""
        cols = [c for c in events.c if c.name != "annotation"]
        query = select(*cols).where(events.c.status == "failed").order_by(events.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    def event_counts(self) -> dict[str, int]:
        """Events by status."""
        from sqlalchemy import func

        with self.engine.connect() as c:
            return {s: n for s, n in c.execute(select(events.c.status, func.count()).group_by(events.c.status))}

    def retry_failed(self, ids: Iterable[int] | None = None) -> list[tuple[int, int]]:
        """Failed events (`ids`, or all of them) back to pending with no attempt counted; the tasks to enqueue."""
        where = [events.c.status == "failed"]
        if ids is not None:
            where.append(events.c.id.in_(list(ids)))
        with self.engine.begin() as c:
            rows = c.execute(select(events.c.project_id, events.c.task_id).where(*where)).all()
            c.execute(update(events).where(*where).values(status="pending", attempts=0, next_attempt_at=None))
        return sorted({(p, t) for p, t in rows})

    def pending_event_ids(self, project_id: int, task_id: int) -> list[int]:
        with self.engine.connect() as c:
            return list(c.scalars(select(events.c.id).where(
                events.c.project_id == project_id, events.c.task_id == task_id, events.c.status == "pending")))

    def finish_events(self, ids: list[int], status: str = "done", error: str | None = None) -> None:
        if not ids:
            return
        with self.engine.begin() as c:
            c.execute(update(events).where(events.c.id.in_(ids)).values(
                status=status, error=error, attempts=events.c.attempts + 1))

    def events(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(select(events).order_by(events.c.id))]

    # annotation versions
    def seen_live_versions(self, project_id: int) -> dict[int, dict[int, str]]:
        """{task_id: {annotation_id: updated_at}} of the non-cancelled annotations last seen."""
        out: dict[int, dict[int, str]] = {}
        with self.engine.connect() as c:
            for r in c.execute(select(annotations_seen).where(annotations_seen.c.project_id == project_id,
                                                              annotations_seen.c.was_cancelled.is_(False))):
                out.setdefault(r.task_id, {})[r.annotation_id] = r.updated_at
        return out

    def record_seen(self, project_id: int, task_id: int, live: dict[int, str]) -> None:
        """The task's live annotations now; earlier ones no longer live are marked gone (cancelled/deleted)."""
        with self.engine.begin() as c:
            c.execute(update(annotations_seen).where(
                annotations_seen.c.task_id == task_id, annotations_seen.c.project_id == project_id,
                annotations_seen.c.annotation_id.not_in(list(live) or [-1])).values(was_cancelled=True))
            for aid, updated_at in live.items():
                row = {"project_id": project_id, "task_id": task_id, "updated_at": updated_at, "was_cancelled": False}
                check_fits(annotations_seen, {"annotation_id": aid, **row})
                done = c.execute(update(annotations_seen).where(annotations_seen.c.annotation_id == aid).values(**row))
                if done.rowcount == 0:
                    c.execute(insert(annotations_seen).values(annotation_id=aid, **row))

    # verdicts
    def verdict(self, project_id: int, task_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(verdicts).where(verdicts.c.project_id == project_id,
                                                   verdicts.c.task_id == task_id)).first()
        return dict(row._mapping) if row else None

    def save_verdict(self, project_id: int, task_id: int, verdict: dict[str, Any], versions: dict[int, str],
                     prediction_id: int | None) -> None:
        row = {"status": verdict["status"], "verdict": verdict, "versions": {str(k): v for k, v in versions.items()},
               "prediction_id": prediction_id, "judged_at": now()}
        with self.engine.begin() as c:
            done = c.execute(update(verdicts).where(verdicts.c.project_id == project_id, verdicts.c.task_id == task_id)
                             .values(judge_count=verdicts.c.judge_count + 1, **row))
            if done.rowcount == 0:
                c.execute(insert(verdicts).values(project_id=project_id, task_id=task_id, judge_count=1, **row))

    def all_verdicts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(select(verdicts))]

    # reviews
    def review(self, review_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(reviews).where(reviews.c.review_key == review_key)).first()
        return dict(row._mapping) if row else None

    def review_by_task(self, review_task_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(reviews).where(reviews.c.review_task_id == review_task_id)).first()
        return dict(row._mapping) if row else None

    def add_review(self, review_key: str, review_task_id: int | None, project_id: int, task_id: int, annotation_id: int,
                   decision: str | None = None) -> None:
        """A rejection sent to ops (`review_task_id`), or applied at once (`decision="auto"`, no review task)."""
        try:
            with self.engine.begin() as c:
                c.execute(insert(reviews).values(review_key=review_key, review_task_id=review_task_id,
                                                 project_id=project_id, task_id=task_id, annotation_id=annotation_id,
                                                 decision=decision, decided_at=now() if decision else None,
                                                 applied=decision is not None))
        except IntegrityError:  # recorded by an earlier run of the same job, or withdrawn and proposed again
            with self.engine.begin() as c:
                c.execute(update(reviews).where(reviews.c.review_key == review_key,
                                                reviews.c.decision == "withdrawn").values(
                    review_task_id=review_task_id, decision=decision, decided_at=now() if decision else None,
                    applied=decision is not None))
                if review_task_id is not None and decision is None:
                    # two jobs made a review task each: both keep the oldest (Worker._one_review_task)
                    c.execute(update(reviews).where(reviews.c.review_key == review_key, reviews.c.decision.is_(None),
                                                    reviews.c.review_task_id > review_task_id).values(
                        review_task_id=review_task_id))

    def open_reviews(self, project_id: int, task_id: int) -> list[dict[str, Any]]:
        """The review rows of a pool task that ops have not decided yet."""
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(select(reviews).where(
                reviews.c.project_id == project_id, reviews.c.task_id == task_id, reviews.c.decision.is_(None)))]

    def withdraw_review(self, review_key: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(reviews).where(reviews.c.review_key == review_key).values(
                decision="withdrawn", decided_at=now()))

    def decide_review(self, review_task_id: int, decision: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(reviews).where(reviews.c.review_task_id == review_task_id).values(
                decision=decision, decided_at=now(), applied=True))

    def overturned(self, project_id: int, task_id: int) -> set[int]:
        with self.engine.connect() as c:
            return set(c.scalars(select(reviews.c.annotation_id).where(
                reviews.c.project_id == project_id, reviews.c.task_id == task_id, reviews.c.decision == "overturn")))

    def all_reviews(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(select(reviews))]

    # expert/crowd sync
    def last_sync(self, expert_project: int, crowd_project: int) -> datetime | None:
        """When the last finished sync of this project pair started (UTC), or None."""
        with self.engine.connect() as c:
            row = c.execute(select(sync_runs.c.started_at).where(
                sync_runs.c.expert_project == expert_project, sync_runs.c.crowd_project == crowd_project)).first()
        if row is None:
            return None
        return row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)

    def record_sync(self, expert_project: int, crowd_project: int, started_at: datetime) -> None:
        with self.engine.begin() as c:
            c.execute(sync_runs.delete().where(
                sync_runs.c.expert_project == expert_project, sync_runs.c.crowd_project == crowd_project))
            c.execute(insert(sync_runs).values(expert_project=expert_project, crowd_project=crowd_project,
                                               started_at=started_at))

    # annotator skills
    def skills(self, project_id: int, annotators: Iterable[int]) -> dict[int, Skill]:
        """The stored skill of each annotator (the prior for one never judged)."""
        wanted = sorted({a for a in annotators if a is not None})
        out = {a: Skill() for a in wanted}
        if not wanted:
            return out
        with self.engine.connect() as c:
            for row in c.execute(select(annotator_skills).where(annotator_skills.c.project_id == project_id,
                                                                annotator_skills.c.annotator.in_(wanted))):
                out[row.annotator] = Skill(_evidence(row))
        return out

    def evidence(self, project_id: int, annotation_ids: Iterable[int]) -> dict[int, Evidence]:
        """What each annotation counts for in its annotator's skill now (after an ops decision, the decision)."""
        ids = sorted(set(annotation_ids))
        if not ids:
            return {}
        with self.engine.connect() as c:
            return {r.annotation_id: _evidence(r) for r in c.execute(select(annotation_evidence).where(
                annotation_evidence.c.project_id == project_id, annotation_evidence.c.annotation_id.in_(ids)))}

    def record_evidence(self, project_id: int, task_id: int, rows: Iterable[tuple[int, int, Evidence, float]],
                        live: Iterable[int]) -> dict[int, str]:
        """Store what a task's judged annotations (annotation id, annotator, evidence, confidence) say about their
        annotators, replacing what they said before, and drop what annotations no longer live said (unless ops
        decided on them: a decision stays evidence). The annotators' skills move by the difference, atomically.

        Returns the annotators whose skill moved enough to judge their other tasks again: annotator -> "flag"
        or "skill" (webhooks.judge.reliability.Skill.moved).
        """
        rows, live = list(rows), set(live)
        deltas: dict[int, Evidence] = {}
        with self.engine.begin() as c:
            old = {r.annotation_id: r for r in c.execute(select(annotation_evidence).where(
                annotation_evidence.c.project_id == project_id, annotation_evidence.c.task_id == task_id))}
            for aid, annotator, ev, confidence in rows:
                before = old.get(aid)
                counted = ev
                if before is not None and before.decision:
                    counted = _evidence(before)  # the ops decision stands; the judge's new guess does not count
                delta = counted - (_evidence(before) if before is not None else Evidence())
                values = {"task_id": task_id, "annotator": annotator, "confidence": confidence,
                          **dict(zip(_EVIDENCE_COLUMNS, _as_columns(counted)))}
                if before is None:
                    c.execute(insert(annotation_evidence).values(project_id=project_id, annotation_id=aid, **values))
                else:
                    c.execute(update(annotation_evidence).where(annotation_evidence.c.project_id == project_id,
                                                                annotation_evidence.c.annotation_id == aid).values(**values))
                deltas[annotator] = deltas.get(annotator, Evidence()) + delta
            for aid, before in old.items():
                if aid not in live and not before.decision and aid not in {r[0] for r in rows}:
                    c.execute(annotation_evidence.delete().where(annotation_evidence.c.project_id == project_id,
                                                                 annotation_evidence.c.annotation_id == aid))
                    deltas[before.annotator] = deltas.get(before.annotator, Evidence()) - _evidence(before)
            return self._add_skills(c, project_id, deltas)

    def decide_evidence(self, project_id: int, annotation_id: int, decision: str, random: bool) -> dict[int, str]:
        """An ops decision on a rejection replaces the judge's guess in the annotator's skill: upheld counts as
        random (when the rejection was for randomness: `random`), overturned as honest. Returns what moved."""
        with self.engine.begin() as c:
            row = c.execute(select(annotation_evidence).where(annotation_evidence.c.project_id == project_id,
                                                              annotation_evidence.c.annotation_id == annotation_id)).first()
            if row is None:
                return {}
            judged = _evidence(row)
            decided = judged.decided(upheld=decision == "uphold") if random or decision == "overturn" else judged
            c.execute(update(annotation_evidence).where(annotation_evidence.c.project_id == project_id,
                                                        annotation_evidence.c.annotation_id == annotation_id).values(
                decision=decision, **dict(zip(_EVIDENCE_COLUMNS, _as_columns(decided)))))
            return self._add_skills(c, project_id, {row.annotator: decided - judged})

    def _add_skills(self, c, project_id: int, deltas: dict[int, Evidence]) -> dict[int, str]:
        moved: dict[int, str] = {}
        for annotator, delta in sorted(deltas.items()):
            values = dict(zip(_EVIDENCE_COLUMNS, _as_columns(delta)))
            done = c.execute(update(annotator_skills).where(
                annotator_skills.c.project_id == project_id, annotator_skills.c.annotator == annotator).values(
                updated_at=now(), **{k: getattr(annotator_skills.c, k) + v for k, v in values.items()}))
            if done.rowcount == 0:
                c.execute(insert(annotator_skills).values(project_id=project_id, annotator=annotator, updated_at=now(),
                                                          snapshot_annotations=0.0, snapshot_random=0.0, **values))
            row = c.execute(select(annotator_skills).where(annotator_skills.c.project_id == project_id,
                                                           annotator_skills.c.annotator == annotator)).first()
            skill = Skill(_evidence(row))
            snapshot = Skill(Evidence(row.snapshot_annotations, row.snapshot_random))
            how = skill.moved(snapshot)
            if how:
                moved[annotator] = how
                c.execute(update(annotator_skills).where(
                    annotator_skills.c.project_id == project_id, annotator_skills.c.annotator == annotator).values(
                    snapshot_annotations=row.annotations, snapshot_random=row.random))
        return moved

    def tasks_to_rejudge(self, project_id: int, annotator: int, how: str, low: float, high: float) -> list[int]:
        """The annotator's tasks whose verdict may change now: all of them when the flag changed ("flag"),
        else those with a confidence between `low` and `high`."""
        query = select(annotation_evidence.c.task_id).where(annotation_evidence.c.project_id == project_id,
                                                            annotation_evidence.c.annotator == annotator)
        if how != "flag":
            query = query.where(annotation_evidence.c.confidence >= low, annotation_evidence.c.confidence <= high)
        with self.engine.connect() as c:
            return sorted(set(c.scalars(query)))

    def all_skills(self, project_id: int) -> dict[int, Skill]:
        with self.engine.connect() as c:
            return {r.annotator: Skill(_evidence(r)) for r in c.execute(
                select(annotator_skills).where(annotator_skills.c.project_id == project_id))}

    def dump_text(self) -> str:
        """Every row of every table as text (tests grep it for secrets)."""
        out = []
        with self.engine.connect() as c:
            for table in metadata.sorted_tables:
                for row in c.execute(select(table)):
                    out.append(json.dumps(dict(row._mapping), default=str))
        return "\n".join(out)


def _evidence(row: Any) -> Evidence:
    return Evidence(row.annotations, row.random, (row.weight_pace, row.weight_pitch, row.weight_volume),
                    (row.agree_pace, row.agree_pitch, row.agree_volume), row.defects)


def _as_columns(ev: Evidence) -> tuple[float, ...]:
    return (ev.annotations, ev.random, ev.defects, *ev.weight, *ev.agree)


def _ts(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _add_missing_columns(engine: Engine) -> None:
    """Columns added to a table after its first release, added to stores created before them."""
    from sqlalchemy import inspect

    present = {c["name"] for c in inspect(engine).get_columns("events")}
    if "next_attempt_at" not in present:
        kind = "TIMESTAMP WITH TIME ZONE" if engine.dialect.name == "postgresql" else "DATETIME"
        with engine.begin() as c:
            c.execute(text(f"ALTER TABLE events ADD COLUMN next_attempt_at {kind}"))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


class TaskBusy(Exception):
    """Another job holds the task's lease."""


class TaskLease:
    """The store's lease on one pool task, held while a job judges it, so that one task is judged by one job
    at a time across processes and machines. Renewed in the background every third of `ttl_s`; the lease of a
    worker that was killed runs out after `ttl_s`, and nobody else frees it (Huey's own locks are flushed by
    every consumer that starts, which let two jobs judge one task at once). On entry TaskBusy while another
    job holds it, at once or, with `wait_s`, when it is still held after that long.

    >>> store = Store("sqlite:///:memory:")
    >>> with TaskLease(store, 1, 7, ttl_s=30):
    ...     store.take_lease(1, 7, "another job", 30)
    False
    >>> store.take_lease(1, 7, "another job", 30)
    True
    """

    def __init__(self, store: Store, project_id: int, task_id: int, ttl_s: float, wait_s: float = 0.0):
        self.store, self.project_id, self.task_id, self.ttl_s, self.wait_s = store, project_id, task_id, ttl_s, wait_s
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> TaskLease:
        deadline = time.monotonic() + self.wait_s
        while not self.store.take_lease(self.project_id, self.task_id, self.owner, self.ttl_s):
            if time.monotonic() >= deadline:
                raise TaskBusy(f"project {self.project_id} task {self.task_id} is being judged by another job")
            time.sleep(0.2)
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.task_id}", daemon=True)
        self._renewer.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self.store.renew_lease(self.project_id, self.task_id, self.owner, self.ttl_s):
                    log.warning("project %d task %d: the job's lease ran out and another job took it",
                                self.project_id, self.task_id)
                    return
            except Exception as e:  # noqa: BLE001 - the store is restarting: try again at the next renewal
                log.warning("project %d task %d: lease not renewed: %s", self.project_id, self.task_id,
                            type(e).__name__)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self.store.release_lease(self.project_id, self.task_id, self.owner)
        except Exception as e:  # noqa: BLE001 - the store is down: the lease runs out by itself
            log.warning("project %d task %d: lease not released (%s); it runs out in %.0f s", self.project_id,
                        self.task_id, type(e).__name__, self.ttl_s)
