"""Concepts: groups of words of one family that mean nearly the same (joyful ~ happy).

A concept is a group of words of one family whose (valence, arousal) points all lie within
`distance` of each other (complete-linkage clustering). The judge counts the words of a concept
together in its vote, and the report compares the pools' words concept by concept.

>>> concepts = Concepts()
>>> "joyful" in concepts.synonyms("happy")
True
>>> concepts.of("happy") == concepts.of("joyful"), concepts.of("happy") == concepts.of("sad")
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from label_config.taxonomy import Taxonomy, load_taxonomy

DEFAULT_DISTANCE = 0.35
"""Valence/arousal distance within which words of one family form a concept."""

_DISTANCE_TOLERANCE = 1e-9  # valence/arousal are decimals; 0.9 - 0.8 is not exactly 0.1 in floats


def complete_linkage(points: Sequence[tuple[float, float]], max_distance: float) -> list[list[int]]:
    """Group points so that any two points of a group are within `max_distance` (Euclidean).

    Agglomerative: merge the two closest groups (distance = their farthest pair) until none are
    close enough; ties go to the earliest pair. Groups and their members are in input order.

    >>> complete_linkage([(0, 0), (0.2, 0), (0.4, 0), (1, 1)], 0.3)
    [[0, 1], [2], [3]]
    """
    n = len(points)
    dist = [[math.dist(p, q) for q in points] for p in points]
    groups: dict[int, list[int]] = {i: [i] for i in range(n)}
    limit = max_distance + _DISTANCE_TOLERANCE
    while True:
        best: tuple[float, int, int] | None = None
        alive = sorted(groups)
        for x, i in enumerate(alive):
            for j in alive[x + 1:]:
                if dist[i][j] <= limit and (best is None or dist[i][j] < best[0]):
                    best = (dist[i][j], i, j)
        if best is None:
            break
        _, keep, gone = best
        groups[keep] += groups.pop(gone)
        for k in groups:
            dist[keep][k] = dist[k][keep] = max(dist[keep][k], dist[gone][k])
    return [sorted(g) for _, g in sorted(groups.items())]


class Concepts:
    """Every word of the taxonomy to its concept (an int), and each concept's words in taxonomy order.

    Build one per process and reuse it: the grouping runs once, here.
    """

    def __init__(self, taxonomy: Taxonomy | None = None, distance: float = DEFAULT_DISTANCE):
        if distance < 0:
            raise ValueError(f"concept distance must not be negative, got {distance}")
        self.taxonomy = taxonomy or load_taxonomy()
        self.distance = distance
        self.rank = {word: i for i, word in enumerate(self.taxonomy)}
        self._concept_of: dict[str, int] = {}
        self._words: list[tuple[str, ...]] = []
        for family in self.taxonomy.families:
            words = [self.taxonomy[w] for w in family.words]
            for group in complete_linkage([(w.valence, w.arousal) for w in words], distance):
                members = tuple(sorted((words[i].word for i in group), key=self.rank.__getitem__))
                for word in members:
                    self._concept_of[word] = len(self._words)
                self._words.append(members)

    def __len__(self) -> int:
        return len(self._words)

    def of(self, word: str) -> int:
        """The concept of a pool word (KeyError for a word outside the pool)."""
        return self._concept_of[word]

    def of_all(self, words: Iterable[str]) -> set[int]:
        return {self._concept_of[w] for w in words}

    def words(self, concept: int) -> tuple[str, ...]:
        return self._words[concept]

    def synonyms(self, word: str) -> tuple[str, ...]:
        """The words counted together with `word` (its concept, `word` included), in taxonomy order."""
        return self._words[self._concept_of[word]]

    def name(self, word: str) -> str:
        """The concept's first word: a stable name for the concept of `word`; a word outside the pool names itself."""
        concept = self._concept_of.get(word)
        return word if concept is None else self._words[concept][0]
