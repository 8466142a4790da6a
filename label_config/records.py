"""LS annotation JSON <-> typed label records, with the validation Label Studio does not do.

Label Studio accepts any result (an unknown choice, a word outside the taxonomy); every LS result
entering clesc-studio goes through `parse_annotation`, which names the field and value at fault.

>>> ann = {"id": 5, "task": 1, "completed_by": 3, "lead_time": 12.5, "result": [
...     {"from_name": "pace", "to_name": "audio", "type": "choices", "value": {"choices": ["slow"]}},
...     {"from_name": "pitch", "to_name": "audio", "type": "choices", "value": {"choices": ["low"]}},
...     {"from_name": "volume", "to_name": "audio", "type": "choices", "value": {"choices": ["quiet"]}},
...     {"from_name": "emotion", "to_name": "audio", "type": "taxonomy",
...      "value": {"taxonomy": [["sadness", "sad"]]}}]}
>>> rec = parse_annotation(ann)
>>> rec.pace, rec.emotion, rec.annotator
('slow', ('sad',), 3)
>>> parse_annotation(to_annotation(rec)) == rec
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from label_config.redact import redact
from label_config.schema import ATTRIBUTES, AUDIO, OTHER, WORD_KINDS
from label_config.taxonomy import Taxonomy, load_taxonomy

_RESULT_TYPES = {**{a: "choices" for a in ATTRIBUTES}, **{k: "taxonomy" for k in WORD_KINDS}, OTHER: "textarea"}
SPLIT_WORDS = re.compile(r"[,;\n]+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an LS result: which control, what value, why."""

    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (got {shown(self.value)})"


def shown(value: Any, limit: int = 120) -> str:
    """`value` as an error message quotes it: its repr, secret-looking keys redacted, cut at `limit` characters.

    >>> shown({"token": "abc", "choices": "x" * 200}, limit=40)
    "{'token': '[redacted]', 'choices': 'xxxx..."
    """
    text = repr(redact(value))
    return text if len(text) <= limit else text[:limit] + "..."


class InvalidLabel(ValueError):
    """An LS annotation that does not fit the schema. `problems` lists every fault found."""

    def __init__(self, problems: Sequence[Problem], annotation_id: Any = None):
        self.problems = list(problems)
        self.annotation_id = annotation_id
        where = f"annotation {annotation_id}: " if annotation_id is not None else ""
        super().__init__(where + "; ".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LabelRecord:
    """One annotator's description of one clip."""

    pace: str
    pitch: str
    volume: str
    emotion: tuple[str, ...] = ()
    voice: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    annotator: int | None = None
    annotation_id: int | None = None
    task_id: int | None = None
    lead_time: float | None = None

    def words(self, kind: str) -> tuple[str, ...]:
        return getattr(self, kind)

    def categorical(self) -> dict[str, str]:
        return {a: getattr(self, a) for a in ATTRIBUTES}


def user_id(completed_by: Any) -> int | None:
    """The LS user id from `completed_by`, given as an id or, in some API forms, a user object; None
    where it is no whole number (a boolean, 7.9, infinity, text that is no number).

    >>> [user_id(v) for v in (7, {"id": 7}, "7", 7.0, True, 7.9, float("inf"), "x", None)]
    [7, 7, 7, 7, None, None, None, None, None]
    """
    if isinstance(completed_by, Mapping):
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or completed_by is None:
        return None
    if isinstance(completed_by, int):
        return completed_by
    if isinstance(completed_by, float):
        return int(completed_by) if completed_by.is_integer() else None
    if isinstance(completed_by, str) and completed_by.strip().isdigit():
        return int(completed_by)
    return None


def superseded_by(annotations: Sequence[tuple[Any, Any]]) -> dict[int, int]:
    """One vote per annotator: for one task's annotations as (annotator, annotation id) pairs, the
    position of each one its annotator superseded -> the position of that annotator's newest (LS lets a
    user submit another). Newest: the highest integer id (LS's ids grow); only where an annotator's
    annotations have none, the later in the list. An unknown annotator (None) is never merged.

    >>> superseded_by([(7, 5), (8, 6), (7, 9), (None, 1), (None, 2), (7, None)])
    {0: 2, 5: 2}
    """
    newest: dict[Any, int] = {}
    for i, (who, aid) in enumerate(annotations):
        if who is not None:
            j = newest.get(who)
            if j is None or _newness(aid, i) > _newness(annotations[j][1], j):
                newest[who] = i
    return {i: newest[who] for i, (who, _) in enumerate(annotations) if who is not None and newest[who] != i}


def _newness(annotation_id: Any, position: int) -> tuple[int, int, int]:
    return (1, annotation_id, position) if type(annotation_id) is int else (0, 0, position)


def current_annotations(annotations: Sequence[Any]) -> list[Any]:
    """A task's LS annotations that count: not cancelled, and one per annotator (`superseded_by`).

    >>> [a["id"] for a in current_annotations([{"id": 1, "completed_by": 7}, {"id": 2, "completed_by": 7},
    ...                                         {"id": 3, "completed_by": 8, "was_cancelled": True}])]
    [2]
    """
    live = [a for a in annotations if not is_cancelled(a)]
    gone = superseded_by([(user_id(a.get("completed_by")), a.get("id")) if isinstance(a, Mapping) else (None, None)
                          for a in live])
    return [a for i, a in enumerate(live) if i not in gone]


def clip_key(data: Mapping[str, Any]) -> str | None:
    """The clip a task is about: its audio reference (URL or LS local-files path), or None."""
    audio = data.get(AUDIO) if isinstance(data, Mapping) else None
    return audio.strip() if isinstance(audio, str) and audio.strip() else None


def is_cancelled(annotation: Any) -> bool:
    """A skipped annotation (LS's `was_cancelled` true). A value that is no boolean is not a skip:
    `parse_annotation` rejects it, so the label is reported rather than silently not counted.

    >>> is_cancelled({"was_cancelled": True}), is_cancelled({"was_cancelled": "false"}), is_cancelled({})
    (True, False, False)
    """
    if not isinstance(annotation, Mapping):
        return False
    value = annotation.get("was_cancelled")
    return value is True or (type(value) is int and value == 1)


def parse_annotation(annotation: Mapping[str, Any], taxonomy: Taxonomy | None = None) -> LabelRecord:
    """Parse one LS annotation (its `result` list and ids) into a LabelRecord.

    Raises InvalidLabel listing every problem: unknown control, unknown choice, more than one
    value for a single-choice attribute, a word outside the pool, a taxonomy path whose family
    does not own the word, a missing required attribute. Cancelled annotations carry no labels:
    filter them out before parsing.
    """
    tax = taxonomy or load_taxonomy()
    problems: list[Problem] = []
    if not isinstance(annotation, Mapping):
        raise InvalidLabel([Problem("annotation", type(annotation).__name__, "expected a JSON object")])
    cancelled = annotation.get("was_cancelled")
    if cancelled is not None and type(cancelled) is not bool and not (type(cancelled) is int and cancelled in (0, 1)):
        # a string "false" would read as a skip to a bare truth test, and the label would silently not count
        raise InvalidLabel([Problem("was_cancelled", cancelled, "expected true or false")], annotation.get("id"))
    result = annotation.get("result")
    if not isinstance(result, list):
        raise InvalidLabel([Problem("result", result, "expected a list of results")], annotation.get("id"))

    categorical: dict[str, list[str]] = {a: [] for a in ATTRIBUTES}
    words: dict[str, list[str]] = {k: [] for k in WORD_KINDS}
    other: list[str] = []
    for item in result:
        if not isinstance(item, Mapping):
            problems.append(Problem("result", item, "each result must be a JSON object"))
            continue
        name = item.get("from_name")
        value = item.get("value") if isinstance(item.get("value"), Mapping) else {}
        if name not in _RESULT_TYPES:
            problems.append(Problem(str(name), item.get("type"), f"unknown control (expected one of {', '.join(_RESULT_TYPES)})"))
            continue
        if item.get("type") != _RESULT_TYPES[name]:
            problems.append(Problem(name, item.get("type"), f"result type must be '{_RESULT_TYPES[name]}'"))
            continue
        if item.get("to_name", AUDIO) != AUDIO:
            problems.append(Problem(name, item.get("to_name"), f"result must point to '{AUDIO}'"))
            continue
        if name in ATTRIBUTES:
            chosen = value.get("choices")
            if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
                problems.append(Problem(name, chosen, "choices must be a list of strings"))
                continue
            for c in chosen:
                if c not in ATTRIBUTES[name].values:
                    problems.append(Problem(name, c, f"not a {name} value (use {', '.join(ATTRIBUTES[name].values)})"))
                else:
                    categorical[name].append(c)
        elif name in WORD_KINDS:
            paths = value.get("taxonomy")
            if not isinstance(paths, list):
                problems.append(Problem(name, paths, "taxonomy must be a list of [family, word] paths"))
                continue
            for path in paths:
                problem = _check_path(tax, name, path)
                if problem:
                    problems.append(problem)
                elif path[1] not in words[name]:
                    words[name].append(path[1])
        else:
            texts = value.get("text")
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                problems.append(Problem(OTHER, texts, "text must be a list of strings"))
                continue
            for text in texts:
                for w in SPLIT_WORDS.split(text):
                    w = " ".join(w.split()).lower()
                    if w and w not in other:
                        other.append(w)

    for attr, chosen in categorical.items():
        if len(chosen) > 1:
            problems.append(Problem(attr, chosen, "single choice, got several values"))
        elif not chosen and not any(p.field == attr for p in problems):
            problems.append(Problem(attr, None, "required, missing"))
    if problems:
        raise InvalidLabel(problems, annotation.get("id"))
    lead_time = annotation.get("lead_time")
    return LabelRecord(
        pace=categorical["pace"][0],
        pitch=categorical["pitch"][0],
        volume=categorical["volume"][0],
        emotion=tuple(words["emotion"]),
        voice=tuple(words["voice"]),
        other=tuple(other),
        annotator=user_id(annotation.get("completed_by")),
        annotation_id=annotation.get("id"),
        task_id=_task_id(annotation.get("task")),
        lead_time=float(lead_time) if isinstance(lead_time, (int, float)) else None,
    )


def _task_id(task: Any) -> int | None:
    if isinstance(task, Mapping):
        task = task.get("id")
    return task if isinstance(task, int) else None


def _check_path(tax: Taxonomy, kind: str, path: Any) -> Problem | None:
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        return Problem(kind, path, "each taxonomy entry must be a [family, word] list")
    if len(path) != 2:
        return Problem(kind, path, "expected a [family, word] path (a family alone is not a word)")
    family, word = path
    if word not in tax or tax[word].kind != kind:
        return Problem(kind, word, f"not a word of the {kind} pool")
    if not tax.family_owns(kind, family, word):
        return Problem(kind, path, f"'{word}' belongs to family '{tax[word].family}', not '{family}'")
    return None


def choice_result(attribute: str, value: str, score: float | None = None,
                  meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One LS Choices result (pace, pitch or volume), with a score and meta for predictions.

    >>> choice_result("pace", "fast", score=0.9)
    {'from_name': 'pace', 'to_name': 'audio', 'type': 'choices', 'value': {'choices': ['fast']}, 'score': 0.9}
    """
    out: dict[str, Any] = {"from_name": attribute, "to_name": AUDIO, "type": "choices", "value": {"choices": [value]}}
    if score is not None:
        out["score"] = score
    if meta is not None:
        out["meta"] = dict(meta)
    return out


def taxonomy_result(kind: str, words: Sequence[str], taxonomy: Taxonomy) -> dict[str, Any]:
    """One LS Taxonomy result: each pool word as its [family, word] path."""
    return {"from_name": kind, "to_name": AUDIO, "type": "taxonomy",
            "value": {"taxonomy": [[taxonomy[w].family, w] for w in words]}}


def to_result(record: LabelRecord, taxonomy: Taxonomy | None = None) -> list[dict[str, Any]]:
    """The LS `result` list for a record: what LS stores for an annotation or a prediction."""
    tax = taxonomy or load_taxonomy()
    out = [choice_result(a, getattr(record, a)) for a in ATTRIBUTES]
    out += [taxonomy_result(kind, record.words(kind), tax) for kind in WORD_KINDS if record.words(kind)]
    if record.other:
        out.append({"from_name": OTHER, "to_name": AUDIO, "type": "textarea", "value": {"text": [", ".join(record.other)]}})
    return out


def consensus_result(consensus: Mapping[str, Any], taxonomy: Taxonomy | None = None) -> list[dict[str, Any]]:
    """A consensus ({pace, pitch, volume, emotion, voice}) as an LS prediction result.

    Attributes without a majority (None) and words outside the pool are left out.

    >>> [r["from_name"] for r in consensus_result({"pace": "fast", "pitch": None, "emotion": ["happy", "zzz"]})]
    ['pace', 'emotion']
    """
    tax = taxonomy or load_taxonomy()
    out = [choice_result(a, consensus[a]) for a in ATTRIBUTES if consensus.get(a)]
    for kind in WORD_KINDS:
        words = [w for w in consensus.get(kind) or [] if w in tax and tax[w].kind == kind]
        if words:
            out.append(taxonomy_result(kind, words, tax))
    return out


def to_annotation(record: LabelRecord, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """The LS annotation JSON for a record (ids, annotator, lead time and result)."""
    return {
        "id": record.annotation_id,
        "task": record.task_id,
        "completed_by": record.annotator,
        "lead_time": record.lead_time,
        "result": to_result(record, taxonomy),
    }


def check_tasks(tasks: Any, taxonomy: Taxonomy | None = None) -> tuple[int, list[tuple[Any, InvalidLabel]]]:
    """Check every non-cancelled annotation of LS tasks (an LS JSON export): (valid count, [(task id, error)]).

    >>> valid, problems = check_tasks([{"id": 1, "annotations": [{"id": 2, "result": []}]}])
    >>> valid, problems[0][0], [p.field for p in problems[0][1].problems]
    (0, 1, ['pace', 'pitch', 'volume'])
    """
    tax = taxonomy or load_taxonomy()
    valid, problems = 0, []
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, Mapping):
            continue
        for ann in task.get("annotations") or []:
            if is_cancelled(ann):
                continue
            try:
                parse_annotation(ann, tax)
                valid += 1
            except InvalidLabel as e:
                problems.append((task.get("id"), e))
    return valid, problems
