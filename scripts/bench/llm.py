"""Benchmark: LLM judge verdicts per second at several concurrency levels against a vLLM server.

Against any vLLM OpenAI-compatible server (a GPU one serving Mixtral, or the local CPU one with the
tiny random model the tests build). Prints verdicts/s, latency and tokens per verdict per level.

    .venv/bin/python -m scripts.bench llm --url http://127.0.0.1:8000/v1 --model NAME [--tasks 64] [--levels 1,4,16,64]
    .venv/bin/python -m scripts.bench llm --local-tiny   # starts the tests' CPU vLLM with the tiny model itself
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from label_config import LabelRecord, load_taxonomy, to_result
from label_config.schema import ATTRIBUTES
from webhooks.judge import RulesJudge
from webhooks.judge.llm import LLMConfig, LLMJudge


def synthetic_tasks(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    words = [w.word for w in load_taxonomy().words_of("emotion")]
    tasks = []
    for t in range(n):
        base = {a: rng.choice(ATTRIBUTES[a].values) for a in ATTRIBUTES}
        anns = []
        for i in range(3):
            vals = {a: (v if rng.random() < 0.8 else rng.choice(ATTRIBUTES[a].values)) for a, v in base.items()}
            rec = LabelRecord(**vals, emotion=tuple(rng.sample(words, 2)))
            anns.append({"id": t * 10 + i, "completed_by": i + 1, "result": to_result(rec)})
        tasks.append({"id": t, "annotations": anns})
    return tasks


def run(url: str, model: str, n_tasks: int, levels: list[int], max_tokens: int | None) -> None:
    tasks = synthetic_tasks(n_tasks)
    rules = RulesJudge()
    print(f"{n_tasks} tasks of 3 annotations, model {model} at {url}")
    for level in levels:
        judge = LLMJudge(LLMConfig(base_url=url, model=model, concurrency=level, fallback="rules",
                                   max_tokens=max_tokens, timeout_s=300, first_token_s=120), rules)
        t0 = time.perf_counter()
        verdicts = judge.judge_many(tasks)
        wall = time.perf_counter() - t0
        by_llm = sum(v.judge["backend"] == "llm" for v in verdicts)
        u = judge.usage
        per = max(1, judge.stats["requests"])
        print(f"concurrency {level:3d}: {n_tasks / wall:7.2f} verdicts/s  wall {wall:6.1f} s  "
              f"llm {by_llm}/{n_tasks}  tokens/request {u['prompt_tokens'] / per:.0f} prompt + "
              f"{u['completion_tokens'] / per:.0f} completion  valid first time "
              f"{judge.stats['first_time']}/{judge.stats['asked']}  invalid {dict(judge.stats['invalid'])}  "
              f"lowest concurrency {judge.limit.lowest}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--model")
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=None, help="default: derived from each task's schema")
    ap.add_argument("--local-tiny", action="store_true", help="start the CPU vLLM with the tiny random Mixtral")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    if not args.local_tiny:
        run(args.url, args.model, args.tasks, levels, args.max_tokens)
        return
    from scripts.local.process import free_port
    from scripts.local.vllm import VLLMServer, build_tiny_mixtral, ensure_vllm_venv
    from webhooks.settings import Settings

    python = ensure_vllm_venv(Settings.from_env().vllm_venv)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_mixtral(Path(tmp) / "model", python)
        server = VLLMServer(python, model, free_port(), log_path=Path(tmp) / "vllm.log", max_model_len=16384)
        t0 = time.perf_counter()
        server.start(timeout=600)
        print(f"vLLM (CPU, tiny random Mixtral) up in {time.perf_counter() - t0:.0f} s")
        try:
            run(server.url, server.served_model_name, args.tasks, levels, args.max_tokens)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
