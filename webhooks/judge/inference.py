"""Who is right, and who answered at random: the probabilistic core of the rules judge, vectorised over tasks.

Data in (`Batch`: the valid annotations of many tasks as integer arrays, and each annotator's skill),
posteriors out (`Inference`); no I/O, no Python loop over annotations. Tasks are grouped by how many
valid annotations they have, so each group is a dense (tasks x annotations) block.

For each annotation i of a task, with the annotator's share of random annotations r and accuracy acc:
- categorical evidence, per attribute: how likely its value is if it is honest, given what the OTHER
  annotations say about the truth (each weighted by its annotator's skill), against 1/4 if it is random;
- word evidence: is its description near one of the others' (`similarity.NEAR`), or far from all of them
  (`similarity.FAR`) while the others agree with each other (the case an honest annotator rarely makes);
- coherence: do its own emotion words hang together (one feeling refined), or are they scattered (what
  words picked at random are);
- P(random) = the posterior of the three, starting from r.
The consensus of each attribute is the posterior over its values given every annotation, each counted as
honest with 1 - P(random): skill-weighted votes. Equal evidence for two values is a tie (no value): the
order of the annotations never breaks it. The word consensus is the concepts backed by a weighted majority
(graded: a near concept backs with its similarity; each annotation weighs 1 - P(random) times its annotator's
mean accuracy on pace, pitch and volume, so of two honest people who name different feelings the more careful
one carries the vote), named by their most used word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from label_config.schema import CATEGORICAL
from webhooks.judge.similarity import FAR, NEAR, WordSimilarity

K = 4
"""Values per categorical attribute (each has low, middle, high and variable)."""

ADJACENT_SHARE = 0.6
"""Of an honest annotator's wrong answers, the share that goes to a neighbouring value (slow <-> normal <-> fast,
normal <-> variable): the values are ordered, and people confuse neighbours; a random answer is uniform."""


def _confusion() -> np.ndarray:
    """E[y, l]: of an honest wrong answer when the truth is y, the share that is l (low, middle, high, variable)."""
    neighbours = {0: (1,), 1: (0, 2, 3), 2: (1,), 3: (1,)}
    out = np.zeros((K, K))
    for y in range(K):
        near = neighbours[y]
        rest = [v for v in range(K) if v != y and v not in near]
        for v in near:
            out[y, v] = (ADJACENT_SHARE if rest else 1.0) / len(near)
        for v in rest:
            out[y, v] = (1 - ADJACENT_SHARE) / len(rest)
    return out


CONFUSION = _confusion()

EMOTION_BINS = ("none", "near", "mid", "far", "far_apart")
"""How an annotation's emotion words sit among the others': no words to compare; near one of the others;
in between; far from all while the others agree with each other; far from all, the others far apart too."""
EMOTION_LIKELIHOOD_RATIO = np.log(np.array([1.0, 0.3, 1.2, 6.0, 2.5]))
"""log P(bin | random) / P(bin | honest) per EMOTION_BINS. A random pick of 1-3 of 380 words lands near one of
the others' words about a quarter of the time, an honest description most of the time; far from two
descriptions that agree is what random words do. Deliberately milder than what a simulation with independent
errors gives (about 0.2, 1.7, 14, 8): an honest annotator who hears a clip differently also tends to disagree
on pace, pitch and volume (a hard clip), which these figures must not count twice. Learning them from a
project's own data made exactly that mistake (precision 0.80 instead of 0.97 on the tuning mixes)."""
VOICE_LIKELIHOOD_RATIO = np.log(np.array([1.0, 0.5, 1.0, 2.0, 1.3]))
"""The same for voice words, weaker: voice words are optional and fewer people agree on them."""
COHERENCE_BINS = ("single", "coherent", "loose", "scattered")
"""How an annotation's own emotion words hang together: one word (nothing to tell); every word near another
of its own; every word at least not far from another; some word far from all its others."""
COHERENCE_LIKELIHOOD_RATIO = np.log(np.array([1.0, 0.3, 0.8, 4.0]))
"""log P(bin | random) / P(bin | honest) per COHERENCE_BINS. Words picked at random are scattered (in the
simulation 92% of random 2-3 word picks against 6% of honest ones); people describing a clip refine one
feeling, but mixed feelings are real (happy but nervous), so the ratios are kept far milder than that."""

MIN_WEIGHT = 0.5
"""A word vote needs at least this much honest weight in all (one annotation more likely honest than not)."""
REDUNDANT = 0.75
"""A consensus concept this alike to one already kept is left out (it says the same)."""
NAMING_WEIGHT = 0.1
"""An annotation names a family (one broad feeling) in the word vote when its weight there is at least this,
that is when its words are not dismissed as random or as a hard finding."""
TIE = 1e-9


@dataclass
class Batch:
    """The valid annotations of many tasks. Arrays over annotations (N):
    `task` (index into the batch's tasks), `annotator` (index into the skill arrays), `labels` (N x 3 value
    codes), `emotion` and `voice` (N x width word ids, padded with the similarity's pad id)."""

    tasks: int
    task: np.ndarray
    annotator: np.ndarray
    labels: np.ndarray
    emotion: np.ndarray
    voice: np.ndarray
    weight_words: np.ndarray
    """1 where the annotation's words may take part in the word consensus (0: a hard finding)."""
    groups: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """size n -> (task indices (T_n,), annotation indices (T_n, n)), built by `group`."""
    bins: dict[str, np.ndarray] = field(default_factory=dict)
    _parts: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    """kind -> EMOTION_BINS index per annotation: the word evidence depends on the words only, so it is
    computed once per batch (`word_bins`), however often the skills are re-estimated."""

    def likelihood_parts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """For the group of size n: (own value == y, CONFUSION share of y -> own value), each (K, n, 3, T):
        tasks on the last, contiguous axis, so that sums and maxima over the few values and annotations run
        along whole rows (numpy reduces a short last axis an order of magnitude slower)."""
        if n not in self._parts:
            labels = self.labels[self.groups[n][1].T].transpose(0, 2, 1)           # (n, 3, T)
            self._parts[n] = (np.arange(K)[:, None, None, None] == labels,
                              np.ascontiguousarray(np.moveaxis(CONFUSION.T[labels], -1, 0)))
        return self._parts[n]

    def word_bins(self, similarity: WordSimilarity) -> dict[str, np.ndarray]:
        if not self.bins:
            for kind, words in (("emotion", self.emotion), ("voice", self.voice)):
                out = np.zeros(len(self.task), dtype=np.int64)
                for n, (_, idx) in self.groups.items():
                    if n >= 2:
                        out[idx] = _word_bins(words[idx], similarity)
                self.bins[kind] = out
            self.bins["coherence"] = _coherence_bins(self.emotion, similarity)
        return self.bins

    def group(self) -> Batch:
        order = np.argsort(self.task, kind="stable")
        counts = np.bincount(self.task, minlength=self.tasks)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.groups = {}
        for n in np.unique(counts[counts > 0]):
            tasks = np.flatnonzero(counts == n)
            self.groups[int(n)] = (tasks, order[starts[tasks][:, None] + np.arange(n)[None, :]])
        return self


@dataclass
class Inference:
    """Posteriors for a Batch. Over annotations (N): `p_random`, `log_lr` (N x 3, categorical evidence per
    attribute), `emotion_bin` (index into EMOTION_BINS), `agree` (N x 3, P(truth = own value | all)).
    Over tasks: `consensus` (tasks x 3 value codes, -1: no value), `confidence` (tasks x 3), and the word
    consensus as word-id lists."""

    p_random: np.ndarray
    log_lr: np.ndarray
    emotion_bin: np.ndarray
    voice_bin: np.ndarray
    agree: np.ndarray
    consensus: np.ndarray
    confidence: np.ndarray
    emotion: list[list[int]]
    voice: list[list[int]]


def infer(batch: Batch, random_rate: np.ndarray, accuracy: np.ndarray, similarity: WordSimilarity,
          words: bool = True) -> Inference:
    """The posteriors of every annotation and task of `batch`, given each annotator's random rate (A,) and
    accuracy per attribute (A x 3). `words=False` while skills are estimated: P(random) and the agreement
    only (no votes, no word consensus)."""
    n_ann = len(batch.task)
    bins_of = batch.word_bins(similarity)
    p_random = random_rate[batch.annotator].astype(float).copy()
    log_lr = np.zeros((n_ann, len(CATEGORICAL)))
    agree = np.zeros((n_ann, len(CATEGORICAL)))
    consensus = np.full((batch.tasks, len(CATEGORICAL)), -1, dtype=np.int64)
    confidence = np.zeros((batch.tasks, len(CATEGORICAL)))
    emotion: list[list[int]] = [[]] * batch.tasks  # shared empty lists, replaced where a task has words
    voice: list[list[int]] = [[]] * batch.tasks
    for n, (tasks, idx) in batch.groups.items():
        if n < 2:
            continue
        # arrays are (K values, n annotations, 3 attributes, T tasks); per annotation (n, T)
        hit, wrong = batch.likelihood_parts(n)                # fixed per batch
        who = batch.annotator[idx.T]                          # (n, T)
        r0 = random_rate[who]
        r = r0[None, :, None, :]
        acc = accuracy[who].transpose(0, 2, 1)[None]          # (1, n, 3, T)
        ordinal = acc * hit + (1 - acc) * wrong               # P(own value | truth), honest, neighbours likelier
        mixed = np.log((1 - r) * ordinal + r / K)
        others = mixed.sum(axis=1, keepdims=True) - mixed     # leave each annotation out
        others = np.exp(others - others.max(axis=0, keepdims=True))
        others /= others.sum(axis=0, keepdims=True)
        lr = np.log(1 / K) - np.log((others * ordinal).sum(axis=0))   # (n, 3, T)
        at = idx.T
        logit = (np.log(r0) - np.log1p(-r0) + lr.sum(axis=1) + EMOTION_LIKELIHOOD_RATIO[bins_of["emotion"][at]]
                 + VOICE_LIKELIHOOD_RATIO[bins_of["voice"][at]] + COHERENCE_LIKELIHOOD_RATIO[bins_of["coherence"][at]])
        p = 1 / (1 + np.exp(-np.clip(logit, -700, 700)))      # (n, T)
        p_random[at], log_lr[at] = p, lr.transpose(0, 2, 1)
        pe = p[None, :, None, :]
        post = np.log((1 - pe) * ordinal + pe / K).sum(axis=1)              # (K, 3, T)
        prob = np.exp(post - post.max(axis=0, keepdims=True))
        prob /= prob.sum(axis=0, keepdims=True)
        agree[at] = (prob[:, None] * hit).sum(axis=0).transpose(0, 2, 1)   # P(truth = own value), (n, T, 3)
        if not words:
            continue
        # A tie is equal votes: each annotation counted by its annotator's skill (and not at all once it looks
        # random), errors spread evenly. The value and its probability then use all the evidence.
        vote_r = np.where(p >= 0.5, p, r0)[None, :, None, :]
        even = acc * hit + (1 - acc) * (~hit) / (K - 1)
        votes = np.log((1 - vote_r) * even + vote_r / K).sum(axis=1)       # (K, 3, T)
        top2 = np.sort(votes, axis=0)[-2:]
        tied = top2[1] - top2[0] < TIE * np.maximum(1.0, np.abs(top2[1]))
        consensus[tasks] = np.where(tied, -1, post.argmax(axis=0)).T
        confidence[tasks] = np.where(tied, 0.0, prob.max(axis=0)).T
        # a word vote counts as much as its annotator is careful: their mean accuracy on pace, pitch and volume
        weights = ((1 - p) * batch.weight_words[at] * acc[0].mean(axis=1)).T
        for kind, out in ((batch.emotion, emotion), (batch.voice, voice)):
            for t, chosen in zip(tasks.tolist(), _word_consensus(kind[idx], weights, similarity)):
                out[t] = chosen
    return Inference(p_random, log_lr, bins_of["emotion"], bins_of["voice"], agree, consensus, confidence,
                     emotion, voice)


def _word_bins(words: np.ndarray, similarity: WordSimilarity) -> np.ndarray:
    """EMOTION_BINS index per annotation of a (T, n, width) block of word ids (emotion or voice)."""
    t, n, _ = words.shape
    has = (words != similarity.pad).any(axis=-1)                        # (T, n)
    sim = np.zeros((t, n, n))
    for i, j in combinations(range(n), 2):
        sim[:, i, j] = sim[:, j, i] = similarity.pairs(words[:, i], words[:, j])
    comparable = has[:, :, None] & has[:, None, :] & ~np.eye(n, dtype=bool)[None]
    near = ((sim >= NEAR) & comparable).any(axis=-1)
    far = (((sim < FAR) | ~comparable).all(axis=-1)) & comparable.any(axis=-1)
    agree_others = np.zeros((t, n), dtype=bool)
    for i, j in combinations(range(n), 2):
        together = comparable[:, i, j] & (sim[:, i, j] >= NEAR)
        for k in range(n):
            if k != i and k != j:
                agree_others[:, k] |= together
    bins = np.where(near, 1, 2)
    bins = np.where(far, np.where(agree_others, 3, 4), bins)
    return np.where(has & comparable.any(axis=-1), bins, 0)


def _coherence_bins(words: np.ndarray, similarity: WordSimilarity) -> np.ndarray:
    """COHERENCE_BINS index per annotation of an (N, width) array of its own word ids."""
    has = words != similarity.pad                                          # (N, w)
    sim = similarity.matrix[words[:, :, None], words[:, None, :]]          # (N, w, w); pad rows are 0
    sim = np.where(np.eye(words.shape[1], dtype=bool)[None], -1.0, sim)
    best = np.where(has, sim.max(axis=-1), np.inf)                         # each word's most alike other word
    worst = best.min(axis=-1)
    bins = np.where(worst >= NEAR, 1, np.where(worst >= FAR, 2, 3))
    return np.where(has.sum(axis=-1) >= 2, bins, 0)


def _word_consensus(words: np.ndarray, weights: np.ndarray, similarity: WordSimilarity) -> list[list[int]]:
    """Per task of a (T, n, width) block, the consensus word ids: concepts with weighted support over half
    the weight, most supported first (ties: taxonomy order of their word), each named by its most used word.
    Families (broad feelings) settle what words alone cannot: a concept whose family only one annotation names
    is left out when another kept concept's family is named by two or more; and when no concept has a
    majority but a family does (named by two or more, over half the weight), its most supported concept is
    the consensus."""
    t, n, width = words.shape
    pad_concept = len(similarity.concepts)
    concepts = similarity.concept_of[words]                              # (T, n, w)
    flat_words = words.reshape(t, n * width)
    flat = concepts.reshape(t, n * width)                                 # candidate slots
    cs = similarity.concept_matrix
    backing = similarity.concept_backing[concepts[:, :, 0, None], flat[:, None, :]]   # (T, n, slots): the best
    for w in range(1, width):                                                         # of each annotation's words
        np.maximum(backing, similarity.concept_backing[concepts[:, :, w, None], flat[:, None, :]], out=backing)
    support = (weights[:, :, None] * backing).sum(axis=1)                # (T, slots)
    total = weights.sum(axis=1)
    first = np.ones_like(flat, dtype=bool)
    for s in range(1, n * width):
        first[:, s] = ~(flat[:, :s] == flat[:, s:s + 1]).any(axis=1)
    chosen = (flat != pad_concept) & first & (support > total[:, None] / 2) & (total[:, None] >= MIN_WEIGHT)
    # the family level: which annotations name each slot's family (one broad feeling), and their weight
    family = similarity.concept_family[concepts]                                      # (T, n, w)
    names = ((family[:, :, :, None] == similarity.concept_family[flat][:, None, None, :]).any(axis=2)
             & (weights[:, :, None] >= NAMING_WEIGHT))                                # (T, n, slots)
    named_by_two = (names.sum(axis=1) >= 2) & (flat != pad_concept)
    # a feeling named by one annotation alone (who outweighs another alone) leaves the consensus when
    # another feeling in it is named by two or more
    chosen &= named_by_two | ~(chosen & named_by_two).any(axis=1, keepdims=True)
    # the canonical word of each slot's concept: the most used of its words in the task, then taxonomy order
    same_word = flat_words[:, :, None] == flat_words[:, None, :]
    usage = same_word.sum(axis=2)                                         # per slot word: annotations using it
    of_concept = flat[:, None, :] == flat[:, :, None]                     # (T, slot, word slot)
    key = np.where(of_concept & (flat_words[:, None, :] != similarity.pad),
                   usage[:, None, :] * 100_000 - flat_words[:, None, :], -1)
    canonical = np.take_along_axis(flat_words, key.argmax(axis=2), axis=1)     # (T, slots)
    # no word has a majority but a feeling does (named by two or more who hold over half the weight): the
    # consensus is that feeling's most supported concept (ties: taxonomy order of its word, never annotation order)
    family_support = (weights[:, :, None] * names).sum(axis=1)
    agreed = named_by_two & first & (family_support > total[:, None] / 2) & (total[:, None] >= MIN_WEIGHT)
    empty = np.nonzero(~chosen.any(axis=1) & agreed.any(axis=1))[0]
    if len(empty):
        best = np.where(agreed[empty], -np.round(support[empty], 9) * 1e6 + canonical[empty], np.inf).argmin(axis=1)
        chosen[empty, best] = True
    # most supported first (then taxonomy order of the canonical word), leaving out what repeats a kept concept
    most = int(chosen.sum(axis=1).max(initial=0))
    out: list[list[int]] = [[] for _ in range(t)]
    if most == 0:
        return out
    key = np.where(chosen, -np.round(support, 9) * 1e6 + canonical, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :most]
    valid = np.take_along_axis(chosen, order, axis=1)
    ranked = np.take_along_axis(flat, order, axis=1)
    kept = valid.copy()
    for k in range(1, most):
        redundant = ((cs[ranked[:, k:k + 1], ranked[:, :k]] >= REDUNDANT) & kept[:, :k]).any(axis=1)
        kept[:, k] &= ~redundant
    names = np.take_along_axis(canonical, order, axis=1)
    rows, ks = np.nonzero(kept)
    for row, name in zip(rows.tolist(), names[rows, ks].tolist()):
        out[row].append(name)
    return out
