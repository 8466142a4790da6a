"""What the judge knows of each annotator across a project: how often they answer at random, and how often
they are right on each of pace, pitch and volume.

A one-coin model with a spam component (in the spirit of Dawid-Skene and MACE): an annotation is either
filled in at random (each value equally likely, words from anywhere) or honest, and an honest annotation
gets each attribute right with the annotator's accuracy on it. `Evidence` is what one judged annotation
adds; `Skill` is the sum of an annotator's evidence plus a prior, so it is updated incrementally as
verdicts arrive (add the new evidence, subtract what the same annotation contributed before), never
refitted from scratch. An ops decision replaces the judge's guess: upheld counts as random, overturned
as honest.

>>> skill = Skill()
>>> round(skill.random_rate, 2), round(skill.accuracy["pace"], 2), skill.flagged
(0.1, 0.8, False)
>>> spam = Evidence(annotations=1, random=0.95, weight=(0.05,) * 3, agree=(0.01,) * 3)
>>> for _ in range(25):
...     skill = skill + spam
>>> round(skill.random_rate, 2), skill.flagged
(0.81, True)
>>> print(skill.describe())
random on about 24 of 25 annotations (estimated 81%, at least 69% at 95% confidence)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from label_config.schema import CATEGORICAL

RANDOM_PRIOR = (0.5, 4.5)
"""Beta prior on an annotator's share of random annotations: mean 10%, worth 5 annotations."""
ACCURACY_PRIOR = (4.0, 1.0)
"""Beta prior on an annotator's accuracy on an attribute: mean 80%, worth 5 annotations."""
ACCURACY_FLOOR = 0.65
"""Honest work is mostly right: an 'honest' annotator right a quarter of the time would be indistinguishable
from one answering at random, and the model would split every spammer between the two explanations."""
FLAG_MIN_ANNOTATIONS = 8
"""An annotator is flagged `unreliable_annotator` only after this many judged annotations ..."""
FLAG_RANDOM_RATE = 0.5
"""... when their share of random annotations is above this at 95% confidence (a normal bound on the Beta)."""
Z95 = 1.645  # one-sided
MOVED_ODDS = 2.0
"""An annotator's skill has moved enough to judge their other tasks again when the odds of a random
annotation changed by this factor since those tasks were last judged again (or the flag changed)."""
BORDERLINE = (0.02, 0.95)
"""Verdicts whose confidence lies here may change when the annotator's skill moves; others will not. The low end
is low because an annotator first judged with the newcomer's prior (10% random) may turn out random a third
of the time: their odds, and every P(random) of theirs, then move about fivefold (in webhook order on the
tuning mixes, (0.1, 0.9) left 6.2% of bad tasks unreviewed on the typical mix, this 5.3%; batch: 4.1%)."""


def random_rate(random, annotations):
    """Posterior mean share of random annotations (scalars or numpy arrays)."""
    a0, b0 = RANDOM_PRIOR
    return (a0 + random) / (a0 + b0 + annotations)


def accuracy(agree, weight):
    """Posterior mean accuracy on an attribute (scalars or numpy arrays), at least ACCURACY_FLOOR."""
    c0, d0 = ACCURACY_PRIOR
    return np.maximum((c0 + agree) / (c0 + d0 + weight), ACCURACY_FLOOR)


def random_rate_low(random, annotations):
    """A one-sided 95% lower bound on the share of random annotations (normal approximation of the Beta)."""
    a0, b0 = RANDOM_PRIOR
    a, n = a0 + random, a0 + b0 + annotations
    b = n - a
    return (a / n) - Z95 * (a * b / (n * n * (n + 1))) ** 0.5


def flagged(random, annotations):
    """Consistently random: at least FLAG_MIN_ANNOTATIONS judged, and random on most at 95% confidence."""
    return (annotations >= FLAG_MIN_ANNOTATIONS) & (random_rate_low(random, annotations) > FLAG_RANDOM_RATE)


def _vector(values: Any) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != len(CATEGORICAL):
        raise ValueError(f"expected {len(CATEGORICAL)} values (one per attribute), got {len(values)}")
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class Evidence:
    """What judged annotations say about their annotator (summable).

    `random`: P(the annotation is random), summed; `weight` and `agree` per attribute: the weight of
    the honest part, and how much of it agreed with the task's consensus (P(truth = own label)).
    `defects`: hard findings (contradiction, inconsistent choices, empty description). `weight` and
    `agree` are tuples of one float per attribute (pace, pitch, volume).
    """

    annotations: float = 0.0
    random: float = 0.0
    weight: tuple[float, float, float] = (0.0, 0.0, 0.0)
    agree: tuple[float, float, float] = (0.0, 0.0, 0.0)
    defects: float = 0.0

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(self.annotations + other.annotations, self.random + other.random,
                        tuple(a + b for a, b in zip(self.weight, other.weight)),
                        tuple(a + b for a, b in zip(self.agree, other.agree)), self.defects + other.defects)

    def __neg__(self) -> Evidence:
        return Evidence(-self.annotations, -self.random, tuple(-w for w in self.weight),
                        tuple(-a for a in self.agree), -self.defects)

    def __sub__(self, other: Evidence) -> Evidence:
        return self + (-other)

    def decided(self, upheld: bool) -> Evidence:
        """This evidence with the judge's guess replaced by an ops decision (upheld: random; overturned: honest).

        An honest annotation's agreement keeps its share of the weight it had (how right it was stays
        the judge's estimate); an upheld one carries no honest weight.
        """
        honest = 0.0 if upheld else self.annotations
        share = [a / w if w > 0 else 1.0 for a, w in zip(self.agree, self.weight)]
        return Evidence(self.annotations, self.annotations - honest, (honest,) * len(self.weight),
                        tuple(honest * s for s in share), self.defects)

    def to_json(self) -> dict[str, Any]:
        return {"annotations": self.annotations, "random": self.random, "weight": list(self.weight),
                "agree": list(self.agree), "defects": self.defects}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Evidence:
        if not data:
            return cls()
        return cls(float(data.get("annotations", 0)), float(data.get("random", 0)),
                   _vector(data.get("weight") or (0, 0, 0)), _vector(data.get("agree") or (0, 0, 0)),
                   float(data.get("defects", 0)))


@dataclass(frozen=True)
class Skill:
    """An annotator's evidence so far, and what it says: random rate, accuracy per attribute, the flag."""

    evidence: Evidence = field(default_factory=Evidence)

    def __add__(self, other: Evidence) -> Skill:
        return Skill(self.evidence + other)

    def __sub__(self, other: Evidence) -> Skill:
        return Skill(self.evidence - other)

    @property
    def annotations(self) -> int:
        return max(0, round(self.evidence.annotations))

    def _counts(self) -> tuple[float, float]:
        annotations = max(self.evidence.annotations, 0.0)
        return min(max(self.evidence.random, 0.0), annotations), annotations

    @property
    def random_rate(self) -> float:
        """Estimated share of this annotator's annotations filled in at random."""
        return float(random_rate(*self._counts()))

    @property
    def random_rate_low(self) -> float:
        """A 95% lower bound on that share."""
        return max(0.0, float(random_rate_low(*self._counts())))

    @property
    def reliability(self) -> float:
        """1 - random_rate: the share of annotations that are honest work."""
        return 1.0 - self.random_rate

    @property
    def accuracy(self) -> dict[str, float]:
        return {attr: float(accuracy(max(k, 0.0), max(w, 0.0)))
                for attr, w, k in zip(CATEGORICAL, self.evidence.weight, self.evidence.agree)}

    @property
    def flagged(self) -> bool:
        """Consistently random: enough annotations, and random on most of them at 95% confidence."""
        return bool(flagged(*self._counts()))

    def moved(self, before: Skill) -> str | None:
        """"flag" when the flag changed since `before`, "skill" when the random-rate odds moved by
        MOVED_ODDS or more, else None: whether this annotator's other verdicts are worth judging again."""
        if self.flagged != before.flagged:
            return "flag"
        odds = self.random_rate / (1 - self.random_rate)
        old = before.random_rate / (1 - before.random_rate)
        return "skill" if max(odds / old, old / odds) >= MOVED_ODDS else None

    @property
    def flag_confidence(self) -> float:
        """P(random rate > FLAG_RANDOM_RATE), from a normal approximation of the Beta posterior."""
        random, annotations = self._counts()
        a = RANDOM_PRIOR[0] + random
        n = sum(RANDOM_PRIOR) + annotations
        b = n - a
        mean, sd = a / n, math.sqrt(a * b / (n * n * (n + 1)))
        return 0.5 * (1 + math.erf((mean - FLAG_RANDOM_RATE) / (sd * math.sqrt(2))))

    def describe(self) -> str:
        """The evidence in words, for the reason detail and the Review task."""
        return (f"random on about {round(self.evidence.random)} of {self.annotations} annotations "
                f"(estimated {self.random_rate:.0%}, at least {self.random_rate_low:.0%} at 95% confidence)")
