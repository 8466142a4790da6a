"""A simulated labelling project: persistent annotators of known types, and the truth of which annotations are bad.

What `python -m scripts.bench judge-quality` (and the LLM judge's bench) measure the judge on. Each clip has a
true pace, pitch and volume, one or two true emotion words and some voice words; each annotator keeps one
type for the whole project:

- `honest` and `imperfect`: pick the true value of an attribute with their own accuracy (errors mostly to an
  adjacent value), name the clip's emotion with a word of its concept, of a neighbouring concept of the same
  family, or a near word of another family (and now and then mishear it), and pick voice words that fit their
  own choices. Their disagreements (2-1 splits, synonyms, near-neighbour words) are honest: never bad.
- `careless`: like `imperfect`, but a share of their annotations (their own rate) is filled in at random: bad.
- `spammer`: every annotation at random: bad.
- `self_contradicting`, `choice_contradicting`, `empty`: like `honest`, but a share of their annotations adds a
  word opposed to one of their own, adds a voice word their own choices contradict (whispering + loud), or
  leaves the description empty: those annotations are bad.

`MIXES` are annotator populations; TUNING seeds and mixes may be looked at while tuning the judge, HELD_OUT
ones are only reported on.

>>> project = simulate(mix="typical", clips=20, seed=1)
>>> len(project.tasks), {len(t.annotations) for t in project.tasks}
(20, {3})
>>> sum(a.bad for t in project.tasks for a in t.annotations) < 20
True
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from label_config import LabelRecord, load_taxonomy, to_annotation
from label_config.concepts import Concepts
from label_config.schema import ATTRIBUTES
from label_config.taxonomy import Taxonomy

TYPES = ("honest", "imperfect", "careless", "spammer", "self_contradicting", "choice_contradicting", "empty")
GOOD_TYPES = ("honest", "imperfect")

MIXES: dict[str, dict[str, int]] = {
    # a third of the annotators bad
    "heavy": {"honest": 13, "imperfect": 7, "careless": 3, "spammer": 3, "self_contradicting": 2,
              "choice_contradicting": 1, "empty": 1},
    # about one in ten bad
    "typical": {"honest": 20, "imperfect": 7, "careless": 1, "spammer": 1, "self_contradicting": 1},
    # one spammer in thirty
    "light": {"honest": 21, "imperfect": 8, "spammer": 1},
    # held out: other proportions, never looked at while tuning
    "heavy-held-out": {"honest": 11, "imperfect": 8, "careless": 4, "spammer": 4, "self_contradicting": 1,
                       "choice_contradicting": 1, "empty": 1},
    "typical-held-out": {"honest": 19, "imperfect": 8, "careless": 2, "spammer": 1},
}
TUNING = {"mixes": ("heavy", "typical", "light"), "seeds": (1, 2, 3)}
HELD_OUT = {"mixes": ("heavy-held-out", "typical-held-out", "heavy", "typical"), "seeds": (101, 102, 103)}

PRIORS = {
    "pace": {"slow": 0.2, "normal": 0.5, "fast": 0.2, "variable": 0.1},
    "pitch": {"low": 0.2, "medium": 0.5, "high": 0.2, "variable": 0.1},
    "volume": {"quiet": 0.2, "medium": 0.5, "loud": 0.2, "variable": 0.1},
}
REFINE = 0.7
"""An honest annotator's second and third words refine a word already picked (its concept or family) this often."""
DEFECT_RATE = 0.3
"""The share of annotations a contradicting or empty annotator spoils."""


@dataclass(frozen=True)
class Annotator:
    id: int
    type: str
    accuracy: Mapping[str, float]
    words: tuple[float, float, float, float]
    """P(same concept), P(same family, near concept), P(near word of another family), P(a word at random)."""
    random_rate: float = 0.0


@dataclass(frozen=True)
class SimulatedAnnotation:
    record: LabelRecord
    annotator: Annotator
    bad: bool
    defect: str | None = None
    """random | contradiction | inconsistent | empty, for a bad annotation."""


@dataclass(frozen=True)
class SimulatedTask:
    id: int
    truth: Mapping[str, str]
    emotions: tuple[str, ...]
    annotations: tuple[SimulatedAnnotation, ...]

    @property
    def records(self) -> list[LabelRecord]:
        return [a.record for a in self.annotations]

    def to_export(self, taxonomy: Taxonomy) -> dict[str, Any]:
        """The task as a Label Studio JSON export has it."""
        return {"id": self.id, "data": {"audio": f"/data/clip-{self.id}.wav"},
                "annotations": [to_annotation(a.record, taxonomy) for a in self.annotations]}


@dataclass
class Project:
    mix: str
    seed: int
    annotators: list[Annotator]
    tasks: list[SimulatedTask] = field(default_factory=list)


class _Words:
    """The taxonomy's neighbourhoods the simulated annotators draw from."""

    def __init__(self, taxonomy: Taxonomy):
        self.taxonomy = taxonomy
        self.concepts = Concepts(taxonomy)
        self.emotions = [w.word for w in taxonomy.words_of("emotion")]
        self.voices = [w.word for w in taxonomy.words_of("voice")]
        self.family_near: dict[str, list[str]] = {}
        self.other_family_near: dict[str, list[str]] = {}
        for kind in ("emotion", "voice"):
            words = taxonomy.words_of(kind)
            for w in words:
                synonyms = set(self.concepts.synonyms(w.word))
                self.family_near[w.word] = [u.word for u in words if u.family == w.family and u.word not in synonyms
                                            and _distance(w, u) <= 0.5]
                self.other_family_near[w.word] = [u.word for u in words if u.family != w.family
                                                  and _distance(w, u) <= 0.3]

    def near(self, word: str, weights: Sequence[float], rng: random.Random) -> str:
        pools = (list(self.concepts.synonyms(word)), self.family_near[word], self.other_family_near[word],
                 self.emotions if self.taxonomy[word].kind == "emotion" else self.voices)
        while True:
            pool = rng.choices(pools, weights=weights)[0]
            if pool:
                return rng.choice(pool)


def _distance(a, b) -> float:
    return ((a.valence - b.valence) ** 2 + (a.arousal - b.arousal) ** 2) ** 0.5


def _annotators(mix: str, rng: random.Random) -> list[Annotator]:
    out = []
    for kind, count in MIXES[mix].items():
        for _ in range(count):
            good = kind != "imperfect" and kind != "careless"
            low, high = (0.78, 0.95) if good else (0.6, 0.78)
            words = (0.55, 0.33, 0.1, 0.02) if good else (0.4, 0.35, 0.17, 0.08)
            out.append(Annotator(
                id=len(out) + 1, type=kind, accuracy={a: rng.uniform(low, high) for a in ATTRIBUTES}, words=words,
                random_rate=1.0 if kind == "spammer" else rng.uniform(0.25, 0.45) if kind == "careless" else 0.0))
    return out


def _value(attribute: str, truth: str, accuracy: float, difficulty: float, rng: random.Random) -> str:
    values = ATTRIBUTES[attribute].values
    if rng.random() < 1 - (1 - accuracy) * difficulty:
        return truth
    low, middle, high, variable = values
    adjacent = {low: [middle], middle: [low, high], high: [middle], variable: [middle]}[truth]
    if rng.random() < 0.7:
        return rng.choice(adjacent)
    return rng.choice([v for v in values if v != truth])


def _fits(taxonomy: Taxonomy, word: str, choices: Mapping[str, str]) -> bool:
    return all(choices[a] in allowed for a, allowed in taxonomy[word].implies.items())


def _random_annotation(words: _Words, rng: random.Random) -> tuple[dict[str, str], list[str], list[str]]:
    choices = {a: rng.choice(spec.values) for a, spec in ATTRIBUTES.items()}
    emotion = rng.sample(words.emotions, rng.choice((1, 1, 2, 3)))
    voice = rng.sample(words.voices, rng.choice((1, 2))) if rng.random() < 0.5 else []
    return choices, emotion, voice


def _honest_annotation(words: _Words, annotator: Annotator, truth: Mapping[str, str], emotions: Sequence[str],
                       voices: Sequence[str], difficulty: float, rng: random.Random):
    choices = {a: _value(a, truth[a], annotator.accuracy[a], difficulty, rng) for a in ATTRIBUTES}
    count = rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]
    emotion = [words.near(rng.choice(emotions), annotator.words, rng)]
    for _ in range(count - 1):  # more words mostly refine the first; now and then a fresh take on the clip
        if rng.random() < REFINE:
            emotion.append(words.near(rng.choice(emotion), (0.6, 0.4, 0.0, 0.0), rng))
        else:
            emotion.append(words.near(rng.choice(emotions), annotator.words, rng))
    emotion = list(dict.fromkeys(emotion))
    voice = []
    if voices and rng.random() < 0.6:
        voice = [w for w in dict.fromkeys(words.near(rng.choice(voices), annotator.words, rng)
                                          for _ in range(rng.choice((1, 2))))]
    voice = [w for w in voice if _fits(words.taxonomy, w, choices)]
    emotion = [w for w in emotion if _fits(words.taxonomy, w, choices)] or emotion[:1]
    kept: list[str] = []  # an honest description never contradicts itself
    for w in emotion + voice:
        if not any(w in words.taxonomy[k].opposes for k in kept):
            kept.append(w)
    emotion = [w for w in emotion if w in kept]
    voice = [w for w in voice if w in kept]
    if not _fits(words.taxonomy, emotion[0], choices):
        emotion = [w for w in words.concepts.synonyms(emotions[0]) if _fits(words.taxonomy, w, choices)][:1] or \
                  [rng.choice([w for w in words.emotions if not words.taxonomy[w].implies])]
    return choices, emotion, voice


def _spoil(kind: str, words: _Words, choices: dict[str, str], emotion: list[str], voice: list[str],
           rng: random.Random) -> str | None:
    tax = words.taxonomy
    if kind == "self_contradicting":
        opposed = sorted({o for w in emotion + voice for o in tax[w].opposes})
        if opposed:
            word = rng.choice(opposed)
            (emotion if tax[word].kind == "emotion" else voice).append(word)
            return "contradiction"
    elif kind == "choice_contradicting":
        clashing = [w for w in words.voices if tax[w].implies and not _fits(tax, w, choices)]
        if clashing:
            voice.append(rng.choice(clashing))
            return "inconsistent"
    elif kind == "empty":
        emotion.clear()
        return "empty"
    return None


def simulate(mix: str = "heavy", clips: int = 600, seed: int = 1, per_clip: int = 3,
             taxonomy: Taxonomy | None = None) -> Project:
    """A project of `clips` tasks, `per_clip` annotations each, drawn from the annotators of `mix`."""
    tax = taxonomy or load_taxonomy()
    words = _Words(tax)
    rng = random.Random(f"{mix}/{seed}")
    annotators = _annotators(mix, rng)
    activity = [rng.lognormvariate(0, 0.5) for _ in annotators]
    project = Project(mix, seed, annotators)
    next_id = 1
    for task_id in range(1, clips + 1):
        truth = {a: rng.choices(list(p), weights=list(p.values()))[0] for a, p in PRIORS.items()}
        primary = rng.choice(words.emotions)
        emotions = [primary]
        if rng.random() < 0.3 and words.family_near[primary]:
            emotions.append(rng.choice(words.family_near[primary]))
        fitting_voices = [w for w in words.voices if _fits(tax, w, truth)]
        voices = rng.sample(fitting_voices, rng.choice((0, 1, 1, 2)))
        difficulty = rng.uniform(0.5, 1.5)
        chosen: list[Annotator] = []
        while len(chosen) < per_clip:
            a = rng.choices(annotators, weights=activity)[0]
            if a not in chosen:
                chosen.append(a)
        annotations = []
        for annotator in chosen:
            if rng.random() < annotator.random_rate:
                choices, emotion, voice = _random_annotation(words, rng)
                bad, defect = True, "random"
            else:
                choices, emotion, voice = _honest_annotation(words, annotator, truth, emotions, voices, difficulty, rng)
                defect = _spoil(annotator.type, words, choices, emotion, voice, rng) \
                    if rng.random() < DEFECT_RATE else None
                bad = defect is not None
            record = LabelRecord(**choices, emotion=tuple(dict.fromkeys(emotion)), voice=tuple(dict.fromkeys(voice)),
                                 annotator=annotator.id, annotation_id=next_id, task_id=task_id)
            next_id += 1
            annotations.append(SimulatedAnnotation(record, annotator, bad, defect))
        project.tasks.append(SimulatedTask(task_id, truth, tuple(emotions), tuple(annotations)))
    return project
