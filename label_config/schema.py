"""The fixed part of the labeling schema: the categorical attributes and the word kinds.

These names are contracts (docs/contracts.md): LS control names, result values and export columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attribute:
    """One single-choice categorical attribute (pace, pitch or volume)."""

    name: str
    title: str
    hint: str
    values: tuple[str, ...]
    value_hints: tuple[str, ...]
    hotkeys: tuple[str, ...]
    """Digits, or Shift with a digit: keys nobody types in a word, so a hotkey never fires while someone types
    (LS fires a Choice's hotkey whenever no text field has the focus)."""


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute(
            "pace",
            "Pace",
            "how fast the words come",
            ("slow", "normal", "fast", "variable"),
            ("unhurried, drawn out", "an ordinary speaking rate", "rushed, hurried", "speeds up and slows down"),
            ("1", "2", "3", "4"),
        ),
        Attribute(
            "pitch",
            "Pitch",
            "how high the voice is for this speaker",
            ("low", "medium", "high", "variable"),
            ("deep for this voice", "this voice's usual height", "raised, high for this voice", "swings up and down"),
            ("5", "6", "7", "8"),
        ),
        Attribute(
            "volume",
            "Volume",
            "how loud the speaker is talking, not how loud the recording is",
            ("quiet", "medium", "loud", "variable"),
            ("soft, hushed", "ordinary conversation", "raised, shouting", "gets louder and softer"),
            ("shift+1", "shift+2", "shift+3", "shift+4"),
        ),
    )
}

CATEGORICAL: tuple[str, ...] = tuple(ATTRIBUTES)
"""pace, pitch, volume: the single-choice attributes, in interface order."""

WORD_KINDS: tuple[str, ...] = ("emotion", "voice")
"""The two word pools; each is an LS Taxonomy control of the same name."""

OTHER = "other"
"""Name of the optional TextArea for words outside the pool."""

AUDIO = "audio"
"""Name of the Audio object tag and of the task data key holding the audio URL."""

POOLS: tuple[str, ...] = ("expert", "crowd")
"""The two annotator pools (each an LS project labelling the same clips), in report and export order."""

REVIEW = "review"
"""The role of the ops Review project (one proposed rejection per task)."""

ROLES: tuple[str, ...] = (*POOLS, REVIEW)
"""Every project role the service knows: the pools and the Review project."""
