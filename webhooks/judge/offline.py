"""Offline judging of a standard Label Studio JSON export (what `clesc judge --export` runs).

>>> from webhooks.judge.rules import RulesJudge
>>> judge_export([{"id": 7, "data": {"audio": "/clip.wav"}}], RulesJudge())[0]["status"]
'incomplete'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from label_config.records import shown
from webhooks.judge.verdict import TaskVerdict


class Judge(Protocol):
    def judge(self, task_id: int | None, annotations: Sequence[Mapping[str, Any]]) -> TaskVerdict: ...


Progress = Callable[[int, int], None]
"""Called after each task with (tasks done, tasks in all)."""


def judge_export(tasks: Sequence[Mapping[str, Any]], judge: Judge, progress: Progress | None = None) -> list[dict[str, Any]]:
    """The VERDICTS.json list for the tasks of an LS JSON export, in the export's order.

    A task without "annotations" has none, so it is judged "incomplete".
    """
    many = getattr(judge, "judge_many", None)  # judges that gain from concurrent requests (the LLM)
    if many is not None:
        return [v.to_json() for v in many(tasks, progress)]
    verdicts = []
    for done, task in enumerate(tasks, start=1):
        verdicts.append(judge.judge(task.get("id"), task.get("annotations") or []).to_json())
        if progress is not None:
            progress(done, len(tasks))
    return verdicts


def load_export(path: str | Path) -> list[dict[str, Any]]:
    """Read an LS JSON export; ValueError says what is wrong with the file (which task, which key).

    Its JSON is read as strictly as a webhook's body (webhooks.ingest.decode_json: UTF-8, nesting, finite
    numbers, 64-bit integers)."""
    from webhooks.ingest import decode_json

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        tasks = decode_json(raw, str(path))
    except ValueError as e:
        raise ValueError(f"{e}; expected a Label Studio JSON export") from None
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a JSON list of tasks (a Label Studio JSON export), got {type(tasks).__name__}")
    seen: dict[int, int] = {}
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise ValueError(f"{path}: task #{i} is {type(task).__name__}, expected an object")
        if "id" not in task:
            raise ValueError(f"{path}: task #{i} has no 'id'")
        task_id = task["id"]
        if type(task_id) is not int or task_id < 0:
            raise ValueError(f"{path}: task #{i}: 'id' must be a Label Studio task id (an integer >= 0), "
                             f"got {shown(task_id)}")
        if task_id in seen:  # two verdicts for one task: a write-back or a report would count it twice
            raise ValueError(f"{path}: task {task_id} is listed twice (#{seen[task_id]} and #{i})")
        seen[task_id] = i
        if not isinstance(task.get("annotations", []), list):
            raise ValueError(f"{path}: task {task_id}: 'annotations' must be a list")
    return tasks


def judge_file(export: str | Path, out: str | Path, judge: Judge, progress: Progress | None = None) -> list[dict[str, Any]]:
    """`clesc judge`: VERDICTS.json for an LS JSON export file, written to `out`; the verdicts.

    ValueError names what is wrong with the export (load_export) or with `out` (webhooks.files: it is
    written whole or not at all, and never over the export).
    """
    from webhooks.files import check_output, write_whole

    check_output(out, [export])  # before judging: a wrong --out is said at once
    verdicts = judge_export(load_export(export), judge, progress=progress)
    text = json.dumps(verdicts, indent=1, ensure_ascii=False)
    write_whole(out, lambda tmp: tmp.write_text(text, encoding="utf-8"), inputs=[export])
    return verdicts
