"""Both pools' labels of the same clips, in one tidy table: what reports and exports read.

A `Dataset` comes from a live Label Studio (the Expert and Crowd projects), from two standard
LS JSON exports, or from a CLESC file; `scripts/report/figures.py` and `scripts/pools/export.py` never care
which. One row per annotation (`Annotation`: pool, clip, worker, label record, judge verdict),
and one `Clip` per audio, keyed by the task's audio reference (the same in both projects: the
same URL or the same local-files path), which is how the two pools' tasks are paired.

>>> from label_config import LabelRecord
>>> ds = Dataset(source="example")
>>> ds.clip("a.wav").tasks["expert"] = 12
>>> ds.annotations.append(Annotation("expert", "a.wav", "e1", LabelRecord("slow", "low", "quiet", emotion=("sad",))))
>>> ds.tidy("expert", "pace"), ds.tidy("expert", "emotion")
([('a.wav', 'e1', 'slow')], [('a.wav', 'e1', frozenset({'sad'}))])
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from label_config.records import LabelRecord

WORKER_EMAIL_DOMAIN = "clesc.invalid"
"""LS users standing for CLESC workers are `<worker_id>@clesc.invalid` (RFC 2606: never delivered)."""


def worker_email(worker_id: str) -> str:
    return f"{worker_id}@{WORKER_EMAIL_DOMAIN}"


def worker_name(user: int | None, email: str | None = None) -> str:
    """The worker id of an LS user: the CLESC id for imported workers, else `ls-<user id>`.

    >>> worker_name(7, "t3@clesc.invalid"), worker_name(7, "ann@example.com"), worker_name(None)
    ('t3', 'ls-7', 'unknown')
    """
    if email and email.endswith("@" + WORKER_EMAIL_DOMAIN):
        return email.rsplit("@", 1)[0]
    return "unknown" if user is None else f"ls-{user}"


@dataclass(frozen=True)
class Annotation:
    """One annotator's label of one clip, in one pool.

    `verdict` is the judge's: "accept", "reject" or None (not judged); `reasons` its reason codes.
    `task_id`, `annotation_id`, `lead_time` (seconds) and the LS times (`created_at`, `updated_at`,
    ISO strings) are known for LS data only.
    """

    pool: str
    clip: str
    worker: str
    record: LabelRecord
    verdict: str | None = None
    reasons: tuple[str, ...] = ()
    task_id: int | None = None
    annotation_id: int | None = None
    lead_time: float | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict != "reject"


@dataclass
class Clip:
    """One audio clip: its reference, the task data (source_dataset, speaker, ...), its LS tasks per pool,
    and per pool the judge's task status and consensus where known."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    consensus: dict[str, dict[str, Any]] = field(default_factory=dict)
    measures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """An ops decision on a proposed rejection (label_config.meta, `decisions` of the pool task's meta).

    `worker` is the annotator's name where the data tells it: an upheld annotation may be cancelled in
    LS and so absent from the task's annotations; then it is None unless the decision names the annotator.
    """

    pool: str
    clip: str
    task_id: int | None
    annotation_id: int
    decision: str
    worker: str | None = None
    reasons: tuple[str, ...] = ()
    decided_at: str | None = None
    annotation_present: bool = True
    """Whether the annotation is among the data's (not cancelled) annotations."""


@dataclass(frozen=True)
class RowError:
    """A part of the input that could not be read: where (row, column or task) and why. The rest is kept."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Dataset:
    clips: dict[str, Clip] = field(default_factory=dict)
    annotations: list[Annotation] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    source: str = ""
    judged: bool = False
    """True when the verdicts come from the judge that ran on this data (LS meta), not computed here."""
    reliability: dict[str, dict[str, float]] = field(default_factory=dict)
    """pool -> worker -> the judge's estimate of the share of their work that is honest (where known)."""
    decisions: list[Decision] = field(default_factory=list)
    emails: dict[str, str] = field(default_factory=dict)
    """worker -> the LS user's e-mail, where known (a live LS; CLESC workers keep their worker id)."""
    ls_url: str | None = None
    """The Label Studio the data was read from (a live LS), for links to its tasks."""
    projects: dict[str, int] = field(default_factory=dict)
    """pool -> LS project id, where known (a live LS)."""

    def clip(self, key: str) -> Clip:
        found = self.clips.get(key)
        if found is None:
            found = self.clips[key] = Clip(key)
        return found

    def pool(self, name: str) -> list[Annotation]:
        return [a for a in self.annotations if a.pool == name]

    def by_clip(self, pool: str) -> dict[str, list[Annotation]]:
        out: dict[str, list[Annotation]] = {}
        for a in self.annotations:
            if a.pool == pool:
                out.setdefault(a.clip, []).append(a)
        return out

    def tidy(self, pool: str, attribute: str) -> list[tuple[str, str, Any]]:
        """(task, worker, label) rows of one pool for one attribute, as crowd-kit takes them.

        A word kind ("emotion", "voice") gives frozensets of words; `other` words are left out.
        """
        out = []
        for a in self.annotations:
            if a.pool == pool:
                value = getattr(a.record, attribute)
                out.append((a.clip, a.worker, frozenset(value) if isinstance(value, tuple) else value))
        return out


# --- building large datasets ----------------------------------------------------------------


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while millions of small acyclic objects are built (~15% faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
