"""A synthetic CLESC-like dataset: 3 experts and 3 crowd workers per clip, for benchmarks and tests.

Each clip has a true pace, pitch and volume and a true emotion (a taxonomy word). Experts e1..e9
and crowd workers t1..t24 each have a skill: the chance they give the true value of an attribute
(else a random other value) and the chance that their emotion words come from the true emotion's
concept (else a word drawn at random). Words are drawn Zipf-like from the taxonomy (a few words
very often, most rarely); experts draw from a flatter curve (a broader vocabulary) and write
fewer free ("other") words. Crowd workers are faster: smaller lead times.

>>> ds = synthetic_dataset(5, seed=1)
>>> len(ds.clips), len(ds.annotations), sorted({a.pool for a in ds.annotations})
(5, 30, ['crowd', 'expert'])
>>> sum(a.pool == "expert" for a in ds.annotations if a.clip == next(iter(ds.clips)))
3
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import numpy as np

from label_config.clesc import POOL_COLUMNS, format_cell
from label_config.records import LabelRecord
from label_config.schema import ATTRIBUTES
from label_config.taxonomy import load_taxonomy
from scripts.pools.dataset import Annotation, Clip, Dataset

PER_CLIP = 3
EXPERTS = tuple(f"e{i}" for i in range(1, 10))
CROWD = tuple(f"t{i}" for i in range(1, 25))
FREE_WORDS = ("mumbly", "robotic", "sing-songy", "weird", "boring", "twangy", "echoey", "muffled-ish",
              "nasally", "rehearsed", "fakey", "sleepy-ish")
"""Words outside the taxonomy, the kind people type in the free box (they land in `other`)."""
SOURCES = ("Voxceleb", "CREMA-D", "RAVDESS", "MSP-Podcast")

# Per pool: skill range, Zipf exponent of word choice, chance of a free word, lead time (median s).
PROFILES = {
    "expert": {"workers": EXPERTS, "skill": (0.7, 0.95), "zipf": 0.8, "free": 0.03, "lead_time": 55.0},
    "crowd": {"workers": CROWD, "skill": (0.4, 0.85), "zipf": 1.3, "free": 0.15, "lead_time": 22.0},
}


def _zipf(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities of n items, Zipf-like, in a random order (so the pools' favourite words differ a bit)."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(weights / weights.sum())


def synthetic_dataset(clips: int, seed: int = 0) -> Dataset:
    """`clips` clips, each with 3 expert and 3 crowd annotations (see the module docstring).

    Deterministic for a seed. The random draws are made per pool for all clips at once; only the
    Annotation objects are built one by one.
    """
    # A million new objects would set off many full garbage collections (seconds), none of which
    # can free anything: these objects hold no reference cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _synthetic_dataset(clips, seed)
    finally:
        if collecting:
            gc.enable()


def _synthetic_dataset(clips: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    taxonomy = load_taxonomy()
    emotion_words = [w.word for w in taxonomy.words_of("emotion")]
    voice_words = [w.word for w in taxonomy.words_of("voice")]
    family_of = {w.word: w.family for w in taxonomy.words_of("emotion")}
    family_words: dict[str, list[int]] = {}
    for i, w in enumerate(emotion_words):
        family_words.setdefault(family_of[w], []).append(i)
    same_family = np.array([rng.choice(family_words[family_of[w]]) for w in emotion_words])

    keys = [f"synthetic://clip/{i:07d}.wav" for i in range(clips)]
    truth = {name: rng.integers(0, len(a.values), size=clips) for name, a in ATTRIBUTES.items()}
    true_emotion = rng.choice(len(emotion_words), size=clips, p=_zipf(len(emotion_words), 1.0, rng))
    source = rng.integers(0, len(SOURCES), size=clips)

    ds = Dataset(source=f"synthetic ({clips} clips, seed {seed})")
    ds.clips = {key: Clip(key, data={"audio": key, "source_dataset": SOURCES[s]})
                for key, s in zip(keys, source.tolist())}
    per_pool = {pool: _draw_pool(pool, clips, truth, true_emotion, same_family, emotion_words,
                                 voice_words, rng) for pool in PROFILES}

    annotations = []
    free_words = [(w,) for w in FREE_WORDS] + [()]  # index -1: no free word
    for pool, draws in per_pool.items():
        workers = PROFILES[pool]["workers"]
        values = {name: a.values for name, a in ATTRIBUTES.items()}
        columns = zip(draws["worker"].tolist(), draws["pace"].tolist(), draws["pitch"].tolist(),
                      draws["volume"].tolist(), draws["emotion"], draws["voice"], draws["free"].tolist(),
                      draws["lead_time"].tolist())
        for row, (worker, pace, pitch, volume, emotion, voice, free, lead_time) in enumerate(columns):
            record = LabelRecord(values["pace"][pace], values["pitch"][pitch], values["volume"][volume],
                                 emotion=emotion, voice=voice, other=free_words[free], lead_time=lead_time)
            annotations.append(Annotation(pool, keys[row // PER_CLIP], workers[worker], record, lead_time=lead_time))

    # experts first within each clip, as CLESC rows list them
    order = np.argsort(np.concatenate([np.arange(clips * PER_CLIP) // PER_CLIP * 2,
                                       np.arange(clips * PER_CLIP) // PER_CLIP * 2 + 1]), kind="stable")
    ds.annotations = [annotations[i] for i in order.tolist()]
    return ds


def _draw_pool(pool: str, clips: int, truth: dict[str, np.ndarray], true_emotion: np.ndarray,
               same_family: np.ndarray, emotion_words: list[str], voice_words: list[str], rng: np.random.Generator) -> dict[str, Any]:
    """All of one pool's random choices, rows = clips x 3 annotators (clip-major)."""
    profile = PROFILES[pool]
    workers = profile["workers"]
    skill = np.linspace(*profile["skill"], len(workers))
    rows = clips * PER_CLIP
    # 3 different workers per clip: the first 3 of a random order of the pool
    worker = np.argsort(rng.random((clips, len(workers))), axis=1)[:, :PER_CLIP].ravel()
    clip = np.repeat(np.arange(clips), PER_CLIP)
    right = rng.random((3, rows)) < skill[worker]
    out: dict[str, Any] = {"worker": worker}
    for k, (name, attribute) in enumerate(ATTRIBUTES.items()):
        n = len(attribute.values)
        wrong = (truth[name][clip] + rng.integers(1, n, size=rows)) % n  # any value but the true one
        out[name] = np.where(right[k], truth[name][clip], wrong)

    n_emotion, n_voice = len(emotion_words), len(voice_words)
    emotion_p = _zipf(n_emotion, profile["zipf"], rng)
    voice_p = _zipf(n_voice, profile["zipf"], rng)
    n_emotion_words = rng.choice([1, 2, 3], size=rows, p=[0.5, 0.35, 0.15])
    n_voice_words = rng.choice([0, 1, 2], size=rows, p=[0.35, 0.45, 0.2])
    random_emotion = rng.choice(n_emotion, size=(rows, 3), p=emotion_p)
    random_voice = rng.choice(n_voice, size=(rows, 2), p=voice_p)
    on_topic = rng.random(rows) < skill[worker]
    first = np.where(on_topic, true_emotion[clip], random_emotion[:, 0])
    second = np.where(rng.random(rows) < 0.5, same_family[true_emotion[clip]], random_emotion[:, 1])
    picked = np.column_stack([first, second, random_emotion[:, 2]])
    out["emotion"] = [tuple(dict.fromkeys(emotion_words[i] for i in row[:k]))
                      for row, k in zip(picked.tolist(), n_emotion_words.tolist())]
    out["voice"] = [tuple(voice_words[i] for i in dict.fromkeys(row[:k]))
                    for row, k in zip(random_voice.tolist(), n_voice_words.tolist())]
    out["free"] = np.where(rng.random(rows) < profile["free"], rng.integers(0, len(FREE_WORDS), size=rows), -1)
    out["lead_time"] = np.round(rng.lognormal(np.log(profile["lead_time"]), 0.5, size=rows), 1)
    return out


def synthetic_clesc_rows(clips: int, seed: int = 0) -> Iterator[dict[str, str]]:
    """The synthetic dataset as CLESC rows (audio, Crowd_Worker_1..3, Expert_1..3, source_dataset),
    cells written by `label_config.clesc.format_cell`, for tests of file import."""
    ds = synthetic_dataset(clips, seed)
    by_clip: dict[str, dict[str, list[Annotation]]] = {}
    for a in ds.annotations:
        by_clip.setdefault(a.clip, {}).setdefault(a.pool, []).append(a)
    for key, clip in ds.clips.items():
        row = {"audio": key}
        for pool, columns in POOL_COLUMNS.items():
            for column, a in zip(columns, by_clip.get(key, {}).get(pool, [])):
                row[column] = format_cell(a.record, a.worker)
        row["source_dataset"] = clip.data["source_dataset"]
        yield row
