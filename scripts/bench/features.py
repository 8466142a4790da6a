"""Benchmark: the ML backend's labels on REAL recorded speech (held-out part), its scores, its fit, and its speed.

    .venv/bin/python -m scripts.bench features [--tune] [--seeds 5]

In one run, on the real-speech corpus (scripts/local/corpus.py: Debian's recorded prompts changed
one property at a time with sox; built and cached on first use):

1. the issue's checks on the HELD-OUT part (never tuned on), clean and degraded (noise, telephone
   band, MP3, Ogg), for the backend and for a plain parselmouth script with fixed thresholds (the
   baseline): pace/pitch/volume labels in order across the three versions of each base clip,
   "variable" found on the spliced clips, "variable" said of the unchanged clips; the same on the
   espeak-ng sweep and the accuracy on the shipped samples;
2. the reliability table of the scores on the held-out part (does a score of 0.8 mean 80% right?);
3. the per-project fit: 50 clips of the held-out part labelled (simulated consensus: the labels
   the clips were made to carry), refitted, and the accuracy on the remaining clips;
4. the voice-word suggestions against their ground truth (espeak-ng +whisper/+croak, flattened intonation);
5. milliseconds per second of audio of `clesc features` (decode + measures + labels, per file) and
   of the baseline (parselmouth: read, pitch, intensity) on the same clips, alternating, with the ratio.

`--tune` prints the thresholds and score curves fitted on the DEV part (what labels.py's defaults
were set from) and the croaky thresholds; it never looks at the held-out part.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import parselmouth
from scipy.ndimage import distance_transform_cdt

from label_config.schema import ATTRIBUTES
from ml_backend.audio import decode
from ml_backend.labels import (DEFAULT_CALIBRATION, RULES, Calibration, decide, fit, fit_score_curve,
                               margin_of, speaker_references, voice_words)
from ml_backend.measures import Measures, measure
from ml_backend.model import describe_file
from scripts.local import corpus

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
MIN_SCORE = 0.5
BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)
FALSE_VARIABLE_COST = 5
"""--tune: a "variable" said of an unchanged clip costs this many found on splices (a wrong pre-fill
is worse than none; the dev part has seven unchanged clips per splice)."""


# --- measuring ---------------------------------------------------------------------------------

def measure_rows(rows: list[dict[str, str]]) -> dict[str, Measures]:
    """file -> Measures for every row whose audio can be measured."""
    out = {}
    for row in rows:
        try:
            out[row["file"]] = measure(decode(row["path"]))
        except ValueError as e:
            print(f"  {row['file']}: {e}")
    return out


def references(rows, measures) -> dict[str, dict[str, float]]:
    """The speaker references the backend would hold for a project of these clips (task data `speaker`)."""
    return speaker_references((r["speaker"], measures[r["file"]]) for r in rows
                              if r["file"] in measures and r["variant"] != "voice")


def predictions(rows, measures, calibration=DEFAULT_CALIBRATION, with_speaker=False):
    """file -> {attribute: Decision}; `with_speaker`: as in a project whose tasks carry the speaker."""
    if with_speaker:
        calibration = replace(calibration, speakers=references(rows, measures))
    return {r["file"]: decide(measures[r["file"]], calibration, r["speaker"] if with_speaker else None)
            for r in rows if r["file"] in measures}


def labels_only(decided) -> dict[str, dict[str, str]]:
    return {f: {a: d.value for a, d in ds.items()} for f, ds in decided.items()}


# --- the baseline: a plain parselmouth script with fixed thresholds ----------------------------

def baseline_labels(path: str) -> dict[str, str]:
    """What a ~40-line parselmouth script says: pitch and intensity only, fixed hand-set thresholds."""
    sound = _praat_sound(path)
    pitch = sound.to_pitch()
    intensity = sound.to_intensity()
    f0 = pitch.selected_array["frequency"]
    t = pitch.xs()
    voiced = f0 > 0
    db = intensity.values[0]
    it = intensity.xs()
    loud = db > db.max() - 25
    out = {}
    if voiced.sum() > 10:
        median = float(np.median(f0[voiced]))
        half = np.median(t[voiced])
        a, b = f0[voiced & (t < half)], f0[voiced & (t >= half)]
        step = abs(12 * math.log2(np.median(b) / np.median(a))) if len(a) and len(b) else 0.0
        out["pitch"] = "variable" if step > 7 else "low" if median < 140 else "high" if median > 240 else "medium"
    level = float(np.mean(db[loud]))
    half = np.median(it[loud])
    step = abs(np.mean(db[loud & (it >= half)]) - np.mean(db[loud & (it < half)]))
    out["volume"] = "variable" if step > 10 else "quiet" if level < 50 else "loud" if level > 64 else "medium"
    peaks = [i for i in range(1, len(db) - 1) if db[i] > db[i - 1] and db[i] >= db[i + 1] and loud[i]
             and db[i] > np.median(db)]
    speaking = max(0.3, float(loud.sum()) * (it[1] - it[0]))
    rate = len(peaks) / speaking
    times = it[peaks]
    half = np.median(times) if len(times) else 0
    na, nb = (times < half).sum(), (times >= half).sum()
    ratio = max(na, nb) / max(1, min(na, nb))
    out["pace"] = "variable" if ratio > 1.8 else "slow" if rate < 3.5 else "fast" if rate > 5.5 else "normal"
    return out


def _praat_sound(path: str) -> parselmouth.Sound:
    """Praat reads WAV and MP3 itself; Ogg goes through soundfile (Praat cannot read it)."""
    if not path.endswith(".ogg"):
        return parselmouth.Sound(path)
    import soundfile as sf

    x, rate = sf.read(path, dtype="float64")
    return parselmouth.Sound(x, sampling_frequency=rate)


# --- the checks --------------------------------------------------------------------------------

def print_checks(title: str, rows, ours, base=None) -> None:
    mine = corpus.checks(rows, ours)
    theirs = corpus.checks(rows, base) if base is not None else None
    n = mine["pace"]["bases"]
    print(f"\n{title} ({n} base clips)")
    header = f"  {'check':<40}{'clesc features':>16}" + (f"{'baseline script':>17}" if theirs else "")
    print(header)
    for attr in ATTRIBUTES:
        for key, total, text in (("ordered", "triples", f"{attr} labels in order"),
                                 ("variable", "splices", f"{attr}: 'variable' on its splice")):
            if not mine[attr][total]:
                continue
            cell = f"{mine[attr][key]}/{mine[attr][total]}"
            print(f"  {text:<40}{cell:>16}" + (f"{str(theirs[attr][key]) + '/' + str(theirs[attr][total]):>17}"
                                              if theirs else ""))
    fp = sum(mine[a]["unchanged_variable"] for a in ATTRIBUTES)
    line = f"  {'variable said of an unchanged clip':<40}{f'{fp}/{3 * n}':>16}"
    if theirs:
        line += f"{str(sum(theirs[a]['unchanged_variable'] for a in ATTRIBUTES)) + '/' + str(3 * n):>17}"
    print(line)
    accuracy = {a: np.mean([ours[r["file"]].get(a) == r[a] for r in rows if r["file"] in ours and r[a]])
                for a in ATTRIBUTES}
    print("  accuracy against the labels the clips were made to carry: "
          + ", ".join(f"{a} {v:.2f}" for a, v in accuracy.items()))


def reliability(rows, decided) -> list[tuple[str, int, float]]:
    """(score bin, pre-fills, share right) over every attribute of every row."""
    pairs = [(d.score, d.value == r[a]) for r in rows if r["file"] in decided
             for a, d in decided[r["file"]].items() if r[a]]
    out = []
    for lo, hi in zip(BINS, BINS[1:]):
        inside = [ok for s, ok in pairs if lo <= s < hi]
        out.append((f"[{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}", len(inside),
                    float(np.mean(inside)) if inside else math.nan))
    high = [ok for s, ok in pairs if s >= 0.8]
    out.append(("score >= 0.8", len(high), float(np.mean(high)) if high else math.nan))
    kept = [ok for s, ok in pairs if s >= MIN_SCORE]
    out.append((f"kept (>= {MIN_SCORE})", len(kept), float(np.mean(kept)) if kept else math.nan))
    out.append(("all", len(pairs), float(np.mean([ok for _, ok in pairs]))))
    return out


def all_decisions(held, measures):
    """(rows, decisions) of every held-out pre-fill: clean and degraded, speaker unknown and known (a
    project of the clean clips, one of the degraded ones); the speaker-known rows' files end in #speaker."""
    steady_rows = [r for r in held if r["variant"] != "voice"]
    decided = predictions(steady_rows, measures)
    for clean in (True, False):
        part = [r for r in steady_rows if (r["degradation"] == "clean") == clean]
        decided |= {f"{f}#speaker": d for f, d in predictions(part, measures, with_speaker=True).items()}
    return steady_rows + [{**r, "file": f"{r['file']}#speaker"} for r in steady_rows], decided


def print_reliability(title, rows, decided) -> None:
    print(f"\n{title}: reliability of the scores (every pace/pitch/volume pre-fill)")
    print(f"  {'score':<16}{'pre-fills':>10}{'right':>8}")
    for name, n, share in reliability(rows, decided):
        print(f"  {name:<16}{n:>10}{share:>8.2f}")


def simulate_fit(rows, measures, seeds: int, labelled: int = 50) -> dict[str, tuple[float, float]]:
    """Label `labelled` clips (their made-to-carry labels as the consensus), fit, predict the rest.

    {attribute: (accuracy with the defaults, accuracy after the fit)} on the other clips, over `seeds`
    random splits; the tasks carry the speaker (the project's speaker references from all its clips)."""
    usable = [r for r in rows if r["file"] in measures and r["variant"] != "voice"]
    refs = references(usable, measures)
    before, after = defaultdict(list), defaultdict(list)
    for seed in range(seeds):
        order = usable[:]
        random.Random(seed).shuffle(order)
        train, test = order[:labelled], order[labelled:]
        pairs = [(measures[r["file"]], {**{a: r[a] for a in ATTRIBUTES}, "speaker": r["speaker"]}) for r in train]
        fitted = fit(pairs, DEFAULT_CALIBRATION, speakers=refs)
        for r in test:
            d0 = decide(measures[r["file"]], DEFAULT_CALIBRATION)
            d1 = decide(measures[r["file"]], fitted, r["speaker"])
            for a in ATTRIBUTES:
                before[a].append(d0.get(a) is not None and d0[a].value == r[a])
                after[a].append(d1.get(a) is not None and d1[a].value == r[a])
    return {a: (float(np.mean(before[a])), float(np.mean(after[a]))) for a in ATTRIBUTES}


def print_fit(rows, measures, seeds: int, labelled: int = 50) -> None:
    usable = [r for r in rows if r["file"] in measures and r["variant"] != "voice"]
    print(f"\nper-project fit: {labelled} labelled clips (simulated consensus), accuracy on the other "
          f"{len(usable) - labelled}, {seeds} random splits (tasks carry the speaker)")
    for a, (before, after) in simulate_fit(rows, measures, seeds, labelled).items():
        print(f"  {a:<7} defaults {before:.2f}  after the fit {after:.2f}")


def voice_word_counts(rows, measures, min_score: float) -> dict[str, dict[str, int]]:
    """{word: {hits, positives, false, negatives}}: the word suggested (score >= min_score) on the clips
    that carry it and on those that do not."""
    truth = [r for r in rows if r["file"] in measures]
    out = {}
    for word in sorted({r["voice"] for r in rows if r["voice"]}):
        positives = [r for r in truth if r["voice"] == word]
        out[word] = {"hits": said_of(positives, measures, word, min_score), "positives": len(positives),
                     "false": said_of([r for r in truth if r["voice"] != word], measures, word, min_score),
                     "negatives": len(truth) - len(positives)}
    return out


def said_of(rows, measures, word: str, min_score: float) -> int:
    """How many of `rows` (measured) get `word` suggested with score >= min_score."""
    return sum(any(w == word and s >= min_score for w, s in voice_words(measures[r["file"]]))
               for r in rows if r["file"] in measures)


def print_voice_words(rows, measures, others=()) -> None:
    """`others`: clips that carry no voice word (every held-out variant, the espeak-ng sweep), for the
    words said where they should not be."""
    print("\nvoice words (suggested with score >= %.1f) against their ground truth" % MIN_SCORE)
    others = [r for r in others if r["file"] in measures]
    for word, n in voice_word_counts(rows, measures, MIN_SCORE).items():
        wrong = said_of(others, measures, word, MIN_SCORE)
        print(f"  {word:<12} found on {n['hits']}/{n['positives']} clips that carry it; said of {n['false']}/"
              f"{n['negatives']} that do not, and of {wrong}/{len(others)} other clips (held-out, espeak-ng sweep)")


def voice_rows(rows):
    """The clips with voice-word ground truth: espeak-ng's variants and the held-out clips made monotonous."""
    return [r for r in rows if r["split"] == "voice" or (r["split"] == "heldout" and r["variant"] == "voice")]


def print_samples() -> None:
    with (SAMPLES / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    predicted = {row["file"]: decide(measure(decode(SAMPLES / row["file"]))) for row in rows}
    print("\nthe shipped espeak-ng samples (samples/manifest.csv)")
    for attr in ATTRIBUTES:
        confusion = Counter((row[attr], predicted[row["file"]][attr].value) for row in rows)
        correct = sum(n for (truth, guess), n in confusion.items() if truth == guess)
        misses = ", ".join(f"{truth}->{guess}" for (truth, guess), n in sorted(confusion.items()) if truth != guess)
        print(f"  {attr:<7} {correct}/{len(rows)}" + (f"  (missed: {misses})" if misses else ""))


# --- timing ------------------------------------------------------------------------------------

def time_both(files: list[str]) -> tuple[float, dict[str, float], dict[str, float]]:
    """(seconds of audio, {wall, cpu} ms for clesc features, the same for the baseline), alternating file by
    file. Both: Praat's pitch runs on two threads, so on an idle 2-core machine the baseline's wall time gains
    from the second core more than ours (the rest of our measures run on one); the CPU time is what a busy
    backend, one clip per core, pays."""
    ours, theirs, audio = {"wall": 0.0, "cpu": 0.0}, {"wall": 0.0, "cpu": 0.0}, 0.0
    describe_file(files[0])
    baseline_labels(files[0])
    for path in files:
        wall, cpu = time.perf_counter(), time.process_time()
        row = describe_file(path)
        ours["wall"] += time.perf_counter() - wall
        ours["cpu"] += time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        sound = _praat_sound(path)
        sound.to_pitch()
        sound.to_intensity()
        theirs["wall"] += time.perf_counter() - wall
        theirs["cpu"] += time.process_time() - cpu
        audio += row["measures"]["duration_s"]
    return audio, {k: v * 1000 for k, v in ours.items()}, {k: v * 1000 for k, v in theirs.items()}


def print_timing(rows) -> None:
    files = [r["path"] for r in rows if r["degradation"] == "clean" and r["variant"] != "voice"]
    audio, ours, theirs = time_both(files)
    print(f"\ntiming on {len(files)} clips, {audio:.0f} s of audio (same run, alternating file by file; wall | CPU)")
    print(f"  clesc features (decode, measures, labels, voice words)  {ours['wall'] / audio:6.2f} | "
          f"{ours['cpu'] / audio:.2f} ms per s of audio")
    print(f"  baseline: parselmouth read + pitch + intensity         {theirs['wall'] / audio:6.2f} | "
          f"{theirs['cpu'] / audio:.2f} ms per s of audio")
    print(f"  ratio clesc / baseline                                 {ours['wall'] / theirs['wall']:6.2f} | "
          f"{ours['cpu'] / theirs['cpu']:.2f}")


# --- tuning on the dev part --------------------------------------------------------------------

def tune(rows, measures) -> Calibration:
    """Thresholds and score curves from the DEV part: what labels.py's defaults were set from.

    The level thresholds twice: with the speaker unknown (a grid search, the order of the three
    versions first), and against each speaker's own reference (the median of its clips, as the backend
    holds it for a project whose tasks carry the speaker: the midpoints between the classes' medians).
    """
    c = DEFAULT_CALIBRATION
    refs = references(rows, measures)
    steady = [r for r in rows if not r["variant"].startswith("splice") and r["file"] in measures
              and r["variant"] != "voice"]
    changes = {}
    for attr, rule in RULES.items():
        splice = [rule.change(measures[r["file"]]) for r in rows if r["variant"] == corpus.SPLICES[attr]
                  and r["file"] in measures]
        calm = [rule.change(measures[r["file"]]) for r in steady]
        best = _change_threshold(calm, splice)
        changes[rule.variable_field] = float(2 ** best if attr == "pace" else best)
        level = {r["file"]: rule.level(measures[r["file"]], c, None) for r in steady}
        changes.update(zip(rule.level_fields(False), _tune_levels(attr, steady, level)))
    # against the speaker's reference: the midpoints between the classes' median levels (the defaults
    # sit between the classes; a project's `fit` then moves them to where its own clips are labelled right)
    with_refs = replace(c, speakers=refs)
    for rule in RULES.values():
        if rule.speaker_low_field:
            levels = {v: [rule.level(measures[r["file"]], with_refs, r["speaker"]) for r in steady
                          if r[rule.attribute] == v and rule.uses_speaker(with_refs, r["speaker"])]
                      for v in rule.values[:3]}
            medians = [float(np.nanmedian(levels[v])) for v in rule.values[:3]]
            for name, (a, b) in zip(rule.level_fields(True), zip(medians, medians[1:])):
                changes[name] = round((a + b) / 2, 3)
    tuned = Calibration.from_dict({**c.to_dict(), **changes})
    curves = {}
    for attr, rule in RULES.items():
        margins, right = [], []
        for with_speaker in (False, True):
            cc = replace(tuned, speakers=refs if with_speaker else {})
            for r in rows:
                if r["file"] in measures and r[attr]:
                    decided = margin_of(rule, measures[r["file"]], cc, r["speaker"] if with_speaker else None)
                    if decided is not None:
                        margins.append(decided[1])
                        right.append(decided[0] == r[attr])
        curves[attr] = tuple(round(v, 2) for v in fit_score_curve(margins, right))
    return Calibration.from_dict({**tuned.to_dict(), "score_curves": curves})


def tune_croaky(rows, measures) -> tuple[float, float]:
    """(jitter above, HNR below): labels.py's CROAKY_JITTER_ST and CROAKY_HNR_DB, from the DEV part.

    On a grid (0.01 st by 0.1 dB), the cells where croaky is found on the most dev clips that carry it,
    FALSE_VARIABLE_COST for each it is said of wrongly; the jitter at the centre of the largest square
    of such cells, then the middle of their HNR range at that jitter (a threshold far from both sides).
    """
    points = np.array([(measures[r["file"]].jitter_st, measures[r["file"]].hnr_db, r["voice"] == "croaky")
                       for r in rows if r["file"] in measures], dtype=float)
    points = points[~np.isnan(points[:, :2]).any(axis=1)]
    jitter, hnr = np.arange(0.0, 1.5, 0.01), np.arange(0.0, 20.0, 0.1)
    said = (points[None, None, :, 0] > jitter[:, None, None]) & (points[None, None, :, 1] < hnr[None, :, None])
    score = (said & (points[:, 2] == 1)).sum(-1) - FALSE_VARIABLE_COST * (said & (points[:, 2] == 0)).sum(-1)
    best = score == score.max()
    distance = distance_transform_cdt(np.pad(best, 1), metric="chessboard")[1:-1, 1:-1]
    i = int(np.unravel_index(np.argmax(distance), distance.shape)[0])
    cols = np.nonzero(best[i])[0]
    return round(float(jitter[i]), 2), round(float(hnr[cols[0]] + hnr[cols[-1]]) / 2, 1)


def _change_threshold(calm: list[float], splice: list[float]) -> float:
    """The "variable" threshold: a midpoint between two neighbouring changes measured on dev clips, where the
    splices found less FALSE_VARIABLE_COST times the steady clips called variable is the highest; of those,
    the one in the widest gap (the threshold as far from both sides as the clips allow). A threshold at a
    measured value (the first rule) sat on the edge of the splices: the volume one at the lowest splice.
    """
    values = np.unique(np.round([v for v in calm + splice if not math.isnan(v)], 3))
    mids, gaps = (values[:-1] + values[1:]) / 2, np.diff(values)
    cal, spl = np.array(calm, dtype=float), np.array(splice, dtype=float)
    score = np.array([(spl > t).sum() - FALSE_VARIABLE_COST * (cal > t).sum() for t in mids])
    best = np.nonzero(score == score.max())[0]
    return round(float(mids[best[np.argmax(gaps[best])]]), 3)


def _tune_levels(attr, steady, level) -> tuple[float, float]:
    """(low, high) thresholds: the three versions of each base clip in order first, then the share right."""
    triple = corpus.ORDINAL_TRIPLES[attr]
    levels = [(level[r["file"]], r[attr]) for r in steady if r["variant"] in triple]
    levels = [(v, t) for v, t in levels if not math.isnan(v)]
    low, mid, high = ATTRIBUTES[attr].values[:3]
    grid = np.quantile([v for v, _ in levels], np.linspace(0.02, 0.98, 49))
    triples = defaultdict(dict)
    for r in steady:
        if r["variant"] in triple:
            triples[(r["base"], r["degradation"])][triple.index(r["variant"])] = level[r["file"]]
    best_pair, best_ok = None, -1.0
    for i, lo in enumerate(grid):
        for hi in grid[i + 1:]:
            right = sum((low if v < lo else high if v > hi else mid) == t for v, t in levels) / len(levels)
            ordered = sum(_in_order([_level_index(t.get(k, math.nan), lo, hi) for k in range(3)])
                          for t in triples.values())
            score = 2 * ordered / max(1, len(triples)) + right  # the order first, then the share right
            if score > best_ok:
                best_pair, best_ok = (round(float(lo), 3), round(float(hi), 3)), score
    return best_pair


def _level_index(level: float, low: float, high: float) -> int:
    return -1 if math.isnan(level) else 0 if level < low else 2 if level > high else 1


def _in_order(ranks: list[int]) -> bool:
    return -1 not in ranks and ranks[0] <= ranks[1] <= ranks[2] and ranks[0] < ranks[2]


def main(argv: list[str] | None = None) -> None:
    global MIN_SCORE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tune", action="store_true", help="print the calibration fitted on the dev part and stop")
    ap.add_argument("--seeds", type=int, default=5, help="random splits for the fit simulation")
    ap.add_argument("--min-score", type=float, default=MIN_SCORE, help="the abstention threshold to report")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true", help="only the timing against the baseline")
    args = ap.parse_args(argv)
    MIN_SCORE = args.min_score
    rows = corpus.load()
    if args.tune:
        dev = [r for r in rows if r["split"] == "dev"]
        dev_measures = measure_rows(dev)
        tuned = tune(dev, dev_measures)
        print({k: v for k, v in tuned.to_dict().items() if k not in ("speakers", "version")})
        print(dict(zip(("CROAKY_JITTER_ST", "CROAKY_HNR_DB"), tune_croaky(dev, dev_measures))))
        return
    held = [r for r in rows if r["split"] == "heldout"]
    if args.timing_only:
        print_timing(held)
        return
    measures = measure_rows(held + [r for r in rows if r["split"] in ("espeak", "voice")])
    for degradation in ("clean", "degraded"):
        part = [r for r in held if (r["degradation"] == "clean") == (degradation == "clean")]
        base = {r["file"]: baseline_labels(r["path"]) for r in part if r["variant"] != "voice"}
        print_checks(f"held-out real speech, {degradation}, speaker unknown", part,
                     labels_only(predictions(part, measures)), base)
        print_checks(f"held-out real speech, {degradation}, speaker known (its clips in the project)", part,
                     labels_only(predictions(part, measures, with_speaker=True)))
    sweep = [r for r in rows if r["split"] == "espeak"]
    print_checks("espeak-ng sweep (3 sentences x 2 voices x 3 settings)", sweep,
                 labels_only(predictions(sweep, measures)))
    print_samples()
    clean = [r for r in held if r["degradation"] == "clean" and r["variant"] != "voice"]
    print_reliability("held-out, clean and degraded, speaker unknown and known", *all_decisions(held, measures))
    print_fit(clean, measures, args.seeds)
    print_voice_words(voice_rows(rows), measures, [r for r in held + sweep if r["variant"] != "voice"])
    if not args.no_timing:
        print_timing(held)


if __name__ == "__main__":
    main()
