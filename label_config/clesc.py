"""The CLESC dataset's annotation cells <-> typed records. Pure functions, no I/O.

CLESC (Hugging Face `toloka/CLESC`, CC BY 4.0) has one row per clip with the columns
`audio, Crowd_Worker_1..3, Expert_1..3, source_dataset`. Each annotation cell is a string
holding a Python dict with single quotes, keys `pace, pitch, voice, volume, emotion, worker_id`;
`emotion` and `voice` are free text: comma-separated, mixed case, stray commas and spaces.

`parse_cell` reads a cell (with `ast.literal_eval`, never `eval`) and matches its words to the
pool; `format_cell` writes a record back in the same format, so an exported file re-imports to
the same words.

>>> cell = parse_cell("{'pace': 'Normal', 'pitch': 'low', 'voice': 'Husky,, softly-spoken ', "
...                   "'volume': 'quiet', 'emotion': 'Hurt, depressed , mumbly', 'worker_id': 't7'}")
>>> cell.worker_id, cell.record.pace, cell.record.emotion, cell.record.voice, cell.record.other
('t7', 'normal', ('hurt', 'depressed'), ('husky', 'softly spoken'), ('mumbly',))
>>> print(format_cell(cell.record, cell.worker_id))
{'pace': 'normal', 'pitch': 'low', 'voice': 'husky, softly spoken', 'volume': 'quiet', 'emotion': 'hurt, depressed, mumbly', 'worker_id': 't7'}
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from label_config.records import (
    SPLIT_WORDS,  # the same separators as the LS "other" box
    LabelRecord,
)
from label_config.schema import ATTRIBUTES, WORD_KINDS
from label_config.taxonomy import Taxonomy, load_taxonomy

OVERLAP = 3
"""Annotations per clip and pool in CLESC."""

POOL_PREFIXES: dict[str, str] = {"crowd": "Crowd_Worker", "expert": "Expert"}
"""Pool name -> CLESC column prefix; the columns are PREFIX_1 .. PREFIX_{OVERLAP}."""

POOL_COLUMNS: dict[str, tuple[str, ...]] = {
    pool: tuple(f"{prefix}_{i}" for i in range(1, OVERLAP + 1)) for pool, prefix in POOL_PREFIXES.items()
}
CELL_COLUMNS: tuple[str, ...] = tuple(c for cols in POOL_COLUMNS.values() for c in cols)
"""The six annotation columns, in CLESC's order: Crowd_Worker_1..3, Expert_1..3."""

COLUMNS: tuple[str, ...] = ("audio", *CELL_COLUMNS, "source_dataset")
"""All CLESC columns, in order."""

WORKER_ID = "worker_id"
CELL_KEYS: tuple[str, ...] = ("pace", "pitch", "voice", "volume", "emotion", WORKER_ID)
"""The keys of a cell's dict, in CLESC's order (the schema's attributes and word kinds, plus the worker)."""

VALUE_ALIASES: dict[str, dict[str, str]] = {
    "pace": {"medium": "normal", "moderate": "normal", "average": "normal"},
    "pitch": {"normal": "medium", "mid": "medium", "middle": "medium", "average": "medium"},
    "volume": {"normal": "medium", "moderate": "medium", "average": "medium"},
}
"""Other spellings of the middle value seen in free-form datasets -> the schema's value (the same meaning)."""

Matcher = Callable[[str], "str | None"]
"""A word -> pool word hook, asked about words the built-in matching does not find; None: no match."""


_VALUE = r"'([^'\\\n]*)'"
_CANONICAL_CELL = re.compile(r"\{" + ", ".join(f"'{k}': {_VALUE}" for k in CELL_KEYS) + r"\}")
"""A cell exactly as Python's repr writes CLESC's dict of plain strings (no quote or backslash inside a
value): read without the parser, as `ast.literal_eval` would read it. Anything else goes to the parser."""


def _read_dict(text: str) -> object:
    canonical = _CANONICAL_CELL.fullmatch(text)
    if canonical is not None:
        return dict(zip(CELL_KEYS, canonical.groups()))
    return ast.literal_eval(text)


class CellError(ValueError):
    """A CLESC cell that cannot be read; the message names the problem and shows the cell."""


@dataclass(frozen=True)
class CellRecord:
    """One CLESC annotation cell: the worker and their labels, with the free-text words matched to the pool.

    `record.emotion` and `record.voice` hold pool words (each under its own kind, whichever field it
    was written in); `record.other` keeps every word that matched nothing, normalised (lowercase,
    single spaces), so nothing the annotator wrote is lost. `raw_emotion` and `raw_voice` are the
    cell's strings as written; they take no part in comparisons.
    """

    worker_id: str
    record: LabelRecord
    raw_emotion: str = field(default="", compare=False)
    raw_voice: str = field(default="", compare=False)


def normalise(word: str) -> str:
    """Lowercase, '_' -> ' ', single spaces, no surrounding spaces or quotes/full stops.

    >>> normalise("  Softly_  Spoken. ")
    'softly spoken'
    """
    return " ".join(word.replace("_", " ").split()).strip(" .!?'\"").lower()


def _variant_key(word: str) -> str:
    """Letters only: 'softly-spoken', 'softly spoken' and 'softlyspoken' share a key."""
    return re.sub(r"[^a-z]", "", word.lower())


class PoolMatcher:
    """Free word -> pool word: exact, then normalised, then spelling variant, then `fallback`.

    A spelling variant differs only in spaces, hyphens and underscores ('softly-spoken',
    'matter of fact'). `fallback` (e.g. an embedding-based matcher) is asked about the
    normalised word when none of these match; it must answer a pool word or None.

    >>> m = PoolMatcher(load_taxonomy())
    >>> m("Sad"), m("matter of fact"), m("softly-spoken"), m("mumbly")
    ('sad', 'matter-of-fact', 'softly spoken', None)
    """

    def __init__(self, taxonomy: Taxonomy, fallback: Matcher | None = None):
        self.taxonomy = taxonomy
        self.fallback = fallback
        self._variants = {_variant_key(w): w for w in taxonomy}
        self._answers: dict[str, str | None] = {}

    def __call__(self, word: str) -> str | None:
        if word in self._answers:
            return self._answers[word]
        found = self._answers[word] = self._match(word)
        return found

    def _match(self, word: str) -> str | None:
        if word in self.taxonomy:
            return word
        norm = normalise(word)
        if norm in self.taxonomy:
            return norm
        found = self._variants.get(_variant_key(norm))
        if found is None and self.fallback is not None and norm:
            found = self.fallback(norm)
            if found is not None and found not in self.taxonomy:
                raise ValueError(f"matcher answered {found!r} for {word!r}, which is not a pool word")
        return found


_cached: tuple[Taxonomy, PoolMatcher] | None = None


def _matcher_for(taxonomy: Taxonomy, fallback: Matcher | None) -> PoolMatcher:
    global _cached
    if fallback is not None:
        return PoolMatcher(taxonomy, fallback)
    if _cached is None or _cached[0] is not taxonomy:
        _cached = (taxonomy, PoolMatcher(taxonomy))
    return _cached[1]


def _show(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_cell(text: str, taxonomy: Taxonomy | None = None, matcher: Matcher | None = None) -> CellRecord:
    """Parse one CLESC annotation cell into a CellRecord.

    pace, pitch and volume must be values of the schema (label_config.schema.ATTRIBUTES),
    in any case, or a spelling of the middle value in VALUE_ALIASES ('normal' pitch = 'medium'). `emotion` and `voice` are split on commas (and ';' or newlines); each word is
    matched by `PoolMatcher` (with `matcher` as its fallback) and lands under the kind of the
    pool word it matched, whichever field it was written in; a word matching nothing goes to
    `other`. Repeated words count once. `worker_id` must be a non-empty string (an int is taken
    as its string).

    Raises CellError for a cell that is not a string, not a dict literal, has missing or
    unknown keys, a value of the wrong type or a pace/pitch/volume value outside the schema.

    >>> parse_cell("{'pace': 'fast'}")
    Traceback (most recent call last):
    ...
    label_config.clesc.CellError: CLESC cell: missing key(s) pitch, voice, volume, emotion, worker_id in "{'pace': 'fast'}"
    """
    if not isinstance(text, str):
        raise CellError(f"CLESC cell: expected a string holding a dict, got {type(text).__name__} {text!r}")
    try:
        data = _read_dict(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise CellError(f"CLESC cell: not a Python dict literal ({type(e).__name__}: {e}): {_show(text)}") from None
    if not isinstance(data, dict):
        raise CellError(f"CLESC cell: expected a dict, got {type(data).__name__}: {_show(text)}")
    missing = [k for k in CELL_KEYS if k not in data]
    if missing:
        raise CellError(f"CLESC cell: missing key(s) {', '.join(missing)} in {_show(text)}")
    unknown = [repr(k) for k in data if k not in CELL_KEYS]
    if unknown:
        raise CellError(f"CLESC cell: unknown key(s) {', '.join(unknown)} (expected {', '.join(CELL_KEYS)}) in {_show(text)}")

    categorical = {}
    for attr, spec in ATTRIBUTES.items():
        value = data[attr]
        chosen = value.strip().lower() if isinstance(value, str) else None
        chosen = VALUE_ALIASES.get(attr, {}).get(chosen, chosen)
        if chosen not in spec.values:
            raise CellError(f"CLESC cell: {attr} {value!r} is not one of {', '.join(spec.values)} in {_show(text)}")
        categorical[attr] = chosen

    worker = data[WORKER_ID]
    if isinstance(worker, int) and not isinstance(worker, bool):
        worker = str(worker)
    if not isinstance(worker, str) or not worker.strip():
        raise CellError(f"CLESC cell: worker_id must be a non-empty string, got {worker!r} in {_show(text)}")

    tax = taxonomy or load_taxonomy()
    match = _matcher_for(tax, matcher)
    words: dict[str, list[str]] = {k: [] for k in WORD_KINDS}
    other: list[str] = []
    for kind in WORD_KINDS:
        value = data[kind]
        if value is None:
            continue
        if not isinstance(value, str):
            raise CellError(f"CLESC cell: {kind} must be comma-separated text, got {type(value).__name__} in {_show(text)}")
        for written in SPLIT_WORDS.split(value):
            if not normalise(written):
                continue
            found = match(written)
            if found is None:
                bucket, word = other, normalise(written)
            else:
                bucket, word = words[tax[found].kind], found
            if word not in bucket:
                bucket.append(word)

    return CellRecord(
        worker_id=worker.strip(),
        record=LabelRecord(**categorical, **{k: tuple(v) for k, v in words.items()}, other=tuple(other)),
        raw_emotion=data["emotion"] or "",
        raw_voice=data["voice"] or "",
    )


def format_cell(record: LabelRecord, worker_id: str) -> str:
    """A CLESC cell for a record: a single-quoted Python dict, keys in CELL_KEYS order.

    Words are joined by ', '. CLESC has no column for words outside the pool, so the record's
    `other` words are written after its emotion words; `parse_cell` puts them back in `other`,
    as they match no pool word. (An `other` word that is itself a pool word, which LS's free
    text box allows, re-imports as a pool word.)

    >>> print(format_cell(LabelRecord("slow", "low", "quiet", emotion=("sad",), other=("mumbly",)), "e1"))
    {'pace': 'slow', 'pitch': 'low', 'voice': '', 'volume': 'quiet', 'emotion': 'sad, mumbly', 'worker_id': 'e1'}
    """
    if not isinstance(worker_id, str) or not worker_id.strip():
        raise ValueError(f"worker_id must be a non-empty string, got {worker_id!r}")
    values = {
        **record.categorical(),
        "voice": ", ".join(record.voice),
        "emotion": ", ".join((*record.emotion, *record.other)),
        WORKER_ID: worker_id,
    }
    return repr({k: values[k] for k in CELL_KEYS})

