"""How alike two words, and two descriptions, are: graded agreement on words instead of exact concept membership.

`WordSimilarity` is one matrix over every pool word, built once per judge from three things the project
ships: the taxonomy's families and concepts, the words' valence/arousal, and their sentence embeddings
(all-MiniLM-L6-v2, kept in label_config/word_vectors.npz; `clesc taxonomy --write-vectors` rebuilds it).

- the same word: 1; the same concept (near-synonyms of one family): 0.9;
- the same family: 0.8 less half the valence/arousal distance, at least 0.45 (one family is one broad
  feeling, so never "far");
- another family of the same kind: 0.6 less the valence/arousal distance (neighbours across families,
  e.g. sad ~ weary), or the embeddings' cosine scaled from 0.5 -> 0 to 0.8 -> 0.75 when the two are
  within 0.6 of each other in valence/arousal (bare-word embeddings put antonyms close: calm ~ anxious
  is 0.60, so an embedding alone never makes two opposite feelings alike); the larger of the two;
- an emotion word and a voice word: 0.

Two descriptions are as alike as their most alike pair of words (`NEAR` and above: they share a
meaning; below `FAR`: nothing in common).

>>> sim = WordSimilarity()
>>> sim("happy", "joyful"), sim("sad", "depressed") >= NEAR, FAR < sim("anxious", "agitated") < NEAR
(0.9, True, True)
>>> sim("calm", "anxious")  # opposite feelings, though bare-word embeddings put them close
0.0
>>> round(sim.descriptions(["sad", "angry"], ["happy", "joyful"]), 2) < FAR
True
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np

from label_config.concepts import Concepts
from label_config.taxonomy import Taxonomy, load_taxonomy

NEAR = 0.6
"""Two descriptions at or above this share a meaning."""
FAR = 0.35
"""Two descriptions below this have nothing in common."""

BACKING_SAME_FAMILY = 0.45
"""Within a family, a concept this alike to another backs it in the word vote (across families: NEAR)."""

SAME_CONCEPT = 0.9
SAME_FAMILY, SAME_FAMILY_FLOOR = 0.8, 0.45
OTHER_FAMILY = 0.6
EMBEDDING_FROM, EMBEDDING_TO, EMBEDDING_MAX, EMBEDDING_VA_LIMIT = 0.5, 0.8, 0.75, 0.6
WORD_VECTORS = "word_vectors.npz"


def load_word_vectors() -> dict[str, np.ndarray]:
    """The shipped pool-word embeddings, by word ({} when the file is missing)."""
    try:
        with resources.files("label_config").joinpath(WORD_VECTORS).open("rb") as f:
            data = np.load(f)
            return dict(zip(data["words"].tolist(), data["vectors"].astype(np.float32)))
    except FileNotFoundError:
        return {}


class WordSimilarity:
    """sim(a, b) in [0, 1] for every pair of pool words, as one float32 matrix.

    Index `pad` (= the number of words) is a padding id: its row and column are 0, so padded id arrays
    can be looked up in one go (`matrix[ids_a[..., :, None], ids_b[..., None, :]]`).
    """

    def __init__(self, taxonomy: Taxonomy | None = None, concepts: Concepts | None = None,
                 vectors: dict[str, np.ndarray] | None = None):
        self.taxonomy = taxonomy or load_taxonomy()
        self.concepts = concepts or Concepts(self.taxonomy)
        words = list(self.taxonomy)
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.pad = len(words)
        tax = self.taxonomy
        va = np.array([(tax[w].valence, tax[w].arousal) for w in words], dtype=np.float32)
        distance = np.linalg.norm(va[:, None, :] - va[None, :, :], axis=2)
        family = np.array([tax[w].family for w in words])
        kind = np.array([tax[w].kind for w in words])
        concept = np.array([self.concepts.of(w) for w in words])
        same_kind = kind[:, None] == kind[None, :]
        same_family = family[:, None] == family[None, :]
        sim = np.where(same_family, np.maximum(SAME_FAMILY - distance / 2, SAME_FAMILY_FLOOR),
                       np.maximum(OTHER_FAMILY - distance, 0.0))
        vectors = load_word_vectors() if vectors is None else vectors
        known = np.array([w in vectors for w in words])
        if known.any():
            dim = len(next(iter(vectors.values())))
            matrix = np.stack([vectors.get(w, np.zeros(dim, np.float32)) for w in words])
            cosine = matrix @ matrix.T
            scaled = np.clip((cosine - EMBEDDING_FROM) / (EMBEDDING_TO - EMBEDDING_FROM), 0, 1) * EMBEDDING_MAX
            usable = known[:, None] & known[None, :] & (distance <= EMBEDDING_VA_LIMIT) & ~same_family
            sim = np.where(usable, np.maximum(sim, scaled), sim)
        sim = np.where(concept[:, None] == concept[None, :], SAME_CONCEPT, sim)
        sim = np.where(same_kind, sim, 0.0)
        np.fill_diagonal(sim, 1.0)
        self.matrix = np.zeros((self.pad + 1, self.pad + 1), dtype=np.float32)
        self.matrix[:-1, :-1] = sim
        self.concept_of = np.append(concept, len(self.concepts))
        self._concept_matrix: np.ndarray | None = None
        self._concept_backing: np.ndarray | None = None
        self._concept_family: np.ndarray | None = None

    def __call__(self, a: str, b: str) -> float:
        return round(float(self.matrix[self.index[a], self.index[b]]), 4)

    def ids(self, words: Sequence[str], width: int) -> np.ndarray:
        """Word ids of a description, padded (or cut) to `width`."""
        out = np.full(width, self.pad, dtype=np.int32)
        known = [self.index[w] for w in words if w in self.index][:width]
        out[:len(known)] = known
        return out

    def descriptions(self, a: Sequence[str], b: Sequence[str]) -> float:
        """How alike two descriptions are: their most alike pair of words (0 when either is empty)."""
        ia, ib = [self.index[w] for w in a if w in self.index], [self.index[w] for w in b if w in self.index]
        if not ia or not ib:
            return 0.0
        return float(self.matrix[np.ix_(ia, ib)].max())

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """`descriptions` for many pairs at once: a, b are (..., width) padded id arrays."""
        return self.matrix[a[..., :, None], b[..., None, :]].max(axis=(-1, -2))

    @property
    def concept_backing(self) -> np.ndarray:
        """How much a word of one concept backs another concept in a word vote: their similarity when it is
        at least BACKING_SAME_FAMILY within a family (one broad feeling) or NEAR across families, else 0."""
        if self._concept_backing is None:
            cs = self.concept_matrix
            family = self.concept_family
            same = (family[:, None] == family[None, :]) & (family[:, None] >= 0)
            self._concept_backing = np.where((same & (cs >= BACKING_SAME_FAMILY)) | (cs >= NEAR), cs, 0.0)
        return self._concept_backing

    @property
    def concept_family(self) -> np.ndarray:
        """Per concept (padded), the index of its family in the taxonomy's family order; -1 for the pad."""
        if self._concept_family is None:
            families = list(dict.fromkeys(self.taxonomy[w].family for w in self.words))
            n = len(self.concepts)
            self._concept_family = np.array(
                [families.index(self.taxonomy[self.concepts.words(c)[0]].family) for c in range(n)] + [-1])
        return self._concept_family

    @property
    def concept_matrix(self) -> np.ndarray:
        """Concept-to-concept similarity: the mean over their words' pairs (1 on the diagonal), padded."""
        if self._concept_matrix is None:
            n = len(self.concepts)
            members = [[self.index[w] for w in self.concepts.words(c)] for c in range(n)]
            out = np.zeros((n + 1, n + 1), dtype=np.float32)
            for i in range(n):
                rows = self.matrix[members[i]]
                for j in range(i, n):
                    out[i, j] = out[j, i] = 1.0 if i == j else float(rows[:, members[j]].mean())
            self._concept_matrix = out
        return self._concept_matrix
