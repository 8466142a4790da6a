"""Coverage of the report's confidence intervals by number of clips (figures printed, never asserted).

    .venv/bin/python -m scripts.bench intervals --reps 1000 --bootstrap 500 --clips 5,8,10,15,20,30,50,100

Simulates pools of 3 annotators per clip (nominal labels, 4 values with prevalence 0.4/0.3/0.2/0.1;
an annotator gives the clip's true value with probability --accuracy, else a value drawn from the
prevalence), and for each number of clips counts how often the 95 % interval holds the true value:

- Krippendorff's alpha and Fleiss' kappa, percentile bootstrap of the clips (what the report uses
  from scripts.stats.intervals.MIN_CLIPS_FOR_BOOTSTRAP clips on);
- percent of clips where all 3 agree: the Wilson interval (the report's) and the bootstrap (the old one).

"Collapsed" is the share of intervals that are a single point. The true alpha and kappa are those
of 400,000 simulated clips; the true share of all-agree clips is exact.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scripts.stats.agreement import alpha_nominal_sums, fleiss_kappa_sums, percent_agreement_sums, task_sums_ci
from scripts.stats.intervals import wilson

PREVALENCE = np.array([0.4, 0.3, 0.2, 0.1])
RATERS = 3


def simulate(n_clips: int, accuracy: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(clip, label) codes of n_clips x 3 annotations."""
    truth = rng.choice(len(PREVALENCE), size=n_clips, p=PREVALENCE)
    right = rng.random((n_clips, RATERS)) < accuracy
    noise = rng.choice(len(PREVALENCE), size=(n_clips, RATERS), p=PREVALENCE)
    labels = np.where(right, truth[:, None], noise)
    return np.repeat(np.arange(n_clips), RATERS), labels.ravel()


def all_agree_probability(accuracy: float) -> float:
    """P(all 3 annotators give the same value), exactly."""
    p = PREVALENCE
    same_as = accuracy + (1 - accuracy) * p  # P(annotator gives v | truth v)
    total = 0.0
    for t in range(len(p)):
        given = (1 - accuracy) * p.copy()
        given[t] = same_as[t]
        total += p[t] * float((given**RATERS).sum())
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--clips", default="5,8,10,15,20,30,50,100")
    parser.add_argument("--accuracy", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    k = len(PREVALENCE)

    started = time.perf_counter()
    clip, label = simulate(400_000, args.accuracy, rng)
    true = {"alpha": alpha_nominal_sums(clip, label, 400_000, k).estimate(),
            "kappa": fleiss_kappa_sums(clip, label, 400_000, k).estimate()}
    true_all = all_agree_probability(args.accuracy)
    print(f"accuracy {args.accuracy}: true alpha {true['alpha']:.3f}, kappa {true['kappa']:.3f}, "
          f"all agree {100 * true_all:.1f} %; {args.reps} samples per size, {args.bootstrap} resamples; 95 % intervals")
    print(f"{'clips':>5}  {'alpha boot':>10} {'(collapsed)':>11}  {'kappa boot':>10}  "
          f"{'all-agree Wilson':>16} {'(collapsed)':>11}  {'all-agree boot':>14} {'(collapsed)':>11}")
    for n in (int(x) for x in args.clips.split(",")):
        hits = {"alpha": 0, "kappa": 0, "wilson": 0, "boot": 0}
        collapsed = {"alpha": 0, "wilson": 0, "boot": 0}
        defined = {"alpha": 0, "kappa": 0}
        for rep in range(args.reps):
            clip, label = simulate(n, args.accuracy, rng)
            stats = [alpha_nominal_sums(clip, label, n, k), fleiss_kappa_sums(clip, label, n, k),
                     percent_agreement_sums(clip, label, n, k, "all")]
            (a_lo, a_hi), (k_lo, k_hi), (p_lo, p_hi) = task_sums_ci(stats, args.bootstrap, seed=rep)
            for key, lo, hi in (("alpha", a_lo, a_hi), ("kappa", k_lo, k_hi)):
                if not np.isnan(lo):
                    defined[key] += 1
                    hits[key] += lo <= true[key] <= hi
            collapsed["alpha"] += a_lo == a_hi
            hits["boot"] += p_lo <= 100 * true_all <= p_hi
            collapsed["boot"] += p_lo == p_hi
            agree = int(stats[2].per_task[:, 1].sum())
            w_lo, w_hi = wilson(agree, n)
            hits["wilson"] += w_lo <= true_all <= w_hi
            collapsed["wilson"] += w_lo == w_hi

        def pct(x: int, of: int) -> str:
            return f"{100 * x / of:.1f} %" if of else "-"

        print(f"{n:>5}  {pct(hits['alpha'], defined['alpha']):>10} {pct(collapsed['alpha'], args.reps):>11}  "
              f"{pct(hits['kappa'], defined['kappa']):>10}  {pct(hits['wilson'], args.reps):>16} "
              f"{pct(collapsed['wilson'], args.reps):>11}  {pct(hits['boot'], args.reps):>14} "
              f"{pct(collapsed['boot'], args.reps):>11}")
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
