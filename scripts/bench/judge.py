"""Benchmark of the rules judge over a synthetic Label Studio export.

    .venv/bin/python -m scripts.bench judge [--tasks 10000] [--seed 7]

Each task gets one hidden "true" description and 3 annotations drawn around it: most annotators
agree on each attribute and pick synonyms of the true emotion, some stray, some add an opposed
word or a voice word their choices contradict, a few skip (cancelled) or send an unknown choice.
Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from typing import Any

from label_config import ATTRIBUTES, LabelRecord, Taxonomy, load_taxonomy, to_annotation
from webhooks.judge import RulesJudge, judge_export

ANNOTATIONS_PER_TASK = 3
AGREE = 0.75          # chance an annotator picks the true value of an attribute
STRAY_EMOTION = 0.15  # chance an annotator's emotion is unrelated to the true one
OPPOSED_WORD = 0.05   # chance of adding a word that opposes one already chosen
IGNORE_IMPLIES = 0.05 # chance of voice words picked without regard to the chosen pace/pitch/volume
VOICE_WORDS = 0.5     # chance of describing the voice at all
CANCELLED = 0.02
UNKNOWN_CHOICE = 0.01


def synthetic_export(n_tasks: int, taxonomy: Taxonomy, judge: RulesJudge, rng: random.Random) -> list[dict[str, Any]]:
    emotions = [w.word for w in taxonomy.words_of("emotion")]
    voices = [w.word for w in taxonomy.words_of("voice")]
    tasks = []
    annotation_id = 0
    for task_id in range(1, n_tasks + 1):
        truth = {a: rng.choice(spec.values) for a, spec in ATTRIBUTES.items()}
        true_emotion = rng.choice(emotions)
        annotations = []
        for annotator in rng.sample(range(1, 201), ANNOTATIONS_PER_TASK):
            annotation_id += 1
            choices = {a: truth[a] if rng.random() < AGREE else rng.choice(spec.values) for a, spec in ATTRIBUTES.items()}
            source = emotions if rng.random() < STRAY_EMOTION else judge.synonyms(true_emotion)
            emotion = rng.sample(source, min(len(source), rng.randint(1, 2)))
            if rng.random() < OPPOSED_WORD:
                opposed = sorted(taxonomy[emotion[0]].opposes)
                if opposed:
                    emotion.append(rng.choice(opposed))
            voice = []
            if rng.random() < VOICE_WORDS:
                fitting = voices if rng.random() < IGNORE_IMPLIES else [
                    w for w in voices
                    if all(choices[a] in allowed for a, allowed in taxonomy[w].implies.items())
                ]
                voice = rng.sample(fitting, rng.randint(1, 2))
            emotion_words = [w for w in dict.fromkeys(emotion) if taxonomy[w].kind == "emotion"]
            voice_words = list(dict.fromkeys(voice + [w for w in emotion if taxonomy[w].kind == "voice"]))
            record = LabelRecord(**choices, emotion=tuple(emotion_words), voice=tuple(voice_words),
                                 annotator=annotator, annotation_id=annotation_id, task_id=task_id,
                                 lead_time=round(rng.uniform(5, 60), 1))
            annotation = {**to_annotation(record, taxonomy), "was_cancelled": rng.random() < CANCELLED}
            if rng.random() < UNKNOWN_CHOICE:
                annotation["result"][0]["value"]["choices"] = ["brisk"]
            annotations.append(annotation)
        tasks.append({"id": task_id, "data": {"audio": f"/data/clip-{task_id}.wav"}, "annotations": annotations})
    return tasks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="how many synthetic tasks (default 10000)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    taxonomy = load_taxonomy()
    started = time.perf_counter()
    judge = RulesJudge(taxonomy)
    setup_s = time.perf_counter() - started
    tasks = synthetic_export(args.tasks, taxonomy, judge, random.Random(args.seed))

    started = time.perf_counter()
    verdicts = judge_export(tasks, judge)
    elapsed = time.perf_counter() - started

    statuses = Counter(v["status"] for v in verdicts)
    reasons = Counter(r["code"] for v in verdicts for a in v["annotations"] for r in a["reasons"])
    print(f"judge setup (concepts from the taxonomy): {setup_s:.3f} s")
    print(f"{len(tasks)} tasks, {ANNOTATIONS_PER_TASK} annotations each: {elapsed:.3f} s, "
          f"{len(tasks) / elapsed:,.0f} tasks/s")
    print("statuses:", ", ".join(f"{k} {n}" for k, n in statuses.most_common()))
    print("reasons:", ", ".join(f"{k} {n}" for k, n in reasons.most_common()))


if __name__ == "__main__":
    main()
