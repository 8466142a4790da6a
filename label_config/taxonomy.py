"""The word pool: emotion and voice words with family, valence, arousal, opposes and implies.

`taxonomy.yaml` next to this module is the one source of truth. It renders the LS Taxonomy
controls, the judge's word lists and the validation of LS results.

>>> tax = load_taxonomy()
>>> tax["whispering"].implies["volume"]
('quiet',)
>>> "agitated" in tax["calm"].opposes
True
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from label_config.schema import ATTRIBUTES, WORD_KINDS

WORD_RE = re.compile(r"^[a-z][a-z -]*[a-z]$")
FAMILY_RE = re.compile(r"^[a-z][a-z-]*$")


class TaxonomyError(ValueError):
    """The taxonomy file breaks one of its rules; the message names the word and the rule."""


@dataclass(frozen=True)
class Word:
    word: str
    kind: str
    family: str
    valence: float
    arousal: float
    opposes: frozenset[str] = frozenset()
    implies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_contract(self) -> dict[str, Any]:
        """The word as `clesc taxonomy --json` prints it (docs/contracts.md)."""
        return {
            "word": self.word,
            "family": self.family,
            "valence": self.valence,
            "arousal": self.arousal,
            "opposes": sorted(self.opposes),
            "implies": {k: list(v) for k, v in self.implies.items()},
        }


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    hint: str
    words: tuple[str, ...]


class Taxonomy(Mapping[str, Word]):
    """All words of both kinds, by word. Iteration follows the file's order."""

    def __init__(self, families: list[Family], words: dict[str, Word], version: int = 1):
        self.version = version
        self._words = words
        self.families = tuple(families)

    def __getitem__(self, word: str) -> Word:
        return self._words[word]

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def words_of(self, kind: str) -> list[Word]:
        return [w for w in self._words.values() if w.kind == kind]

    def families_of(self, kind: str) -> list[Family]:
        return [f for f in self.families if f.kind == kind]

    def family_owns(self, kind: str, family: str, word: str) -> bool:
        w = self._words.get(word)
        return w is not None and w.kind == kind and w.family == family

    def to_contract(self) -> dict[str, list[dict[str, Any]]]:
        return {kind: [w.to_contract() for w in self.words_of(kind)] for kind in WORD_KINDS}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "taxonomy") -> Taxonomy:
        """Build and check a taxonomy from the parsed YAML; raise TaxonomyError on the first broken rule."""
        if not isinstance(data, Mapping):
            raise TaxonomyError(f"{source}: expected a mapping with keys {', '.join(WORD_KINDS)}")
        families: list[Family] = []
        raw: dict[str, tuple[str, str, Mapping[str, Any]]] = {}
        for kind in WORD_KINDS:
            fams = data.get(kind)
            if not isinstance(fams, Mapping) or not fams:
                raise TaxonomyError(f"{source}: '{kind}' must map family names to families")
            for fam_name, fam in fams.items():
                if not isinstance(fam_name, str) or not FAMILY_RE.match(fam_name):
                    raise TaxonomyError(f"{source}: family name {fam_name!r} must be lowercase letters and '-'")
                if not isinstance(fam, Mapping) or not isinstance(fam.get("words"), Mapping) or not fam["words"]:
                    raise TaxonomyError(f"{source}: family '{fam_name}' needs a non-empty 'words' mapping")
                for word, attrs in fam["words"].items():
                    if not isinstance(word, str) or not WORD_RE.match(word):
                        raise TaxonomyError(f"{source}: word {word!r} in '{fam_name}' must be lowercase letters, spaces and '-'")
                    if word in raw:
                        raise TaxonomyError(f"{source}: word '{word}' appears twice ('{raw[word][1]}' and '{fam_name}')")
                    raw[word] = (kind, fam_name, attrs or {})
                families.append(Family(fam_name, kind, str(fam.get("hint", "")), tuple(fam["words"])))

        opposes: dict[str, set[str]] = {w: set() for w in raw}
        for word, (_, fam_name, attrs) in raw.items():
            for other in attrs.get("opposes", []) or []:
                if other not in raw:
                    raise TaxonomyError(f"{source}: '{word}' opposes unknown word '{other}'")
                if other == word or raw[other][1] == fam_name:
                    raise TaxonomyError(f"{source}: '{word}' cannot oppose '{other}' of its own family '{fam_name}'")
                opposes[word].add(other)
                opposes[other].add(word)

        words: dict[str, Word] = {}
        for word, (kind, fam_name, attrs) in raw.items():
            vals = {}
            for axis in ("valence", "arousal"):
                v = attrs.get(axis)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not -1.0 <= v <= 1.0:
                    raise TaxonomyError(f"{source}: '{word}' {axis} must be a number in [-1, 1], got {v!r}")
                vals[axis] = float(v)
            words[word] = Word(
                word=word,
                kind=kind,
                family=fam_name,
                opposes=frozenset(opposes[word]),
                implies=_check_implies(word, attrs.get("implies") or {}, source),
                **vals,
            )
        return cls(families, words, version=int(data.get("version", 1)))


def _check_implies(word: str, implies: Any, source: str) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(implies, Mapping):
        raise TaxonomyError(f"{source}: '{word}' implies must map pace/pitch/volume to allowed values")
    out: dict[str, tuple[str, ...]] = {}
    for attr, allowed in implies.items():
        if attr not in ATTRIBUTES:
            raise TaxonomyError(f"{source}: '{word}' implies unknown attribute '{attr}' (use {', '.join(ATTRIBUTES)})")
        values = ATTRIBUTES[attr].values
        if not isinstance(allowed, list) or not allowed or set(allowed) - set(values):
            raise TaxonomyError(f"{source}: '{word}' implies {attr} {allowed!r}: values must be some of {', '.join(values)}")
        if set(allowed) == set(values):
            raise TaxonomyError(f"{source}: '{word}' implies {attr} allows every value, which constrains nothing")
        out[attr] = tuple(v for v in values if v in allowed)
    return MappingProxyType(out)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a repeated key (plain YAML would keep the last one silently)."""


def _mapping_without_repeats(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise TaxonomyError(f"line {key_node.start_mark.line + 1}: '{key}' is written twice")
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_repeats)


def parse_taxonomy(text: str, source: str = "taxonomy") -> Taxonomy:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise TaxonomyError(f"{source}: not valid YAML: {e}") from None
    except TaxonomyError as e:
        raise TaxonomyError(f"{source}: {e}") from None
    return Taxonomy.from_mapping(data, source=source)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load the taxonomy shipped with the package, or another file in the same format."""
    if path is None:
        return _packaged()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaxonomyError(f"{path}: not UTF-8 text (byte {e.start}); save the taxonomy as UTF-8") from None
    except OSError as e:
        raise TaxonomyError(f"{path}: cannot be read ({e.strerror or e})") from None
    return parse_taxonomy(text, source=str(path))


@lru_cache(maxsize=1)
def _packaged() -> Taxonomy:
    text = resources.files("label_config").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
    return parse_taxonomy(text, source="label_config/taxonomy.yaml")
