"""Benchmark: latency of `POST /webhook` (LS waits for it inside the annotator's Submit, 1 s timeout).

Posts N realistic ANNOTATION_UPDATED payloads (~26 KB, the label config inside twice, as LS sends)
for one real task of a watched project to a running service, each a new version so each is stored
and enqueued, and prints latency percentiles and throughput.

    .venv/bin/python -m scripts.bench webhook --url http://127.0.0.1:8090 --secret S --project 2 --task 9
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from label_config import LabelRecord, labeling_config, to_result
from webhooks.app import SECRET_HEADER


def payload(project: int, task: int, n: int, run: int) -> dict:
    config = labeling_config()
    record = LabelRecord("fast", "high", "loud", emotion=("excited",), annotation_id=run * 100_000 + n, task_id=task)
    return {"action": "ANNOTATION_UPDATED",
            "annotation": {"id": record.annotation_id, "task": task, "project": project, "completed_by": 1,
                           "updated_at": f"2026-11-27T12:00:00.{n:06d}Z", "was_cancelled": False,
                           "result": to_result(record)},
            "project": {"id": project, "label_config": config, "parsed_label_config": config,
                        "token": "bench-token", "task_data_password": "bench-password"},
            "task": {"id": task, "data": {"audio": "/data/local-files/?d=clips/x.wav"}}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--project", type=int, required=True)
    ap.add_argument("--task", type=int, required=True)
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args(argv)
    run = int(time.time()) % 10_000  # every run posts new versions, so nothing is a duplicate
    bodies = [json.dumps(payload(args.project, args.task, i, run)).encode() for i in range(args.n)]
    session = requests.Session()

    def post(body: bytes) -> tuple[float, int]:
        t0 = time.perf_counter()
        r = session.post(args.url.rstrip("/") + "/webhook", data=body, timeout=5,
                         headers={"Content-Type": "application/json", SECRET_HEADER: args.secret})
        return time.perf_counter() - t0, r.status_code

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(post, bodies))
    wall = time.perf_counter() - t0
    ms = sorted(1000 * d for d, _ in results)
    codes = {c: sum(1 for _, x in results if x == c) for c in {c for _, c in results}}
    q = statistics.quantiles(ms, n=100)
    print(f"{args.n} webhooks of {len(bodies[0]) // 1024} KB, concurrency {args.concurrency}: status {codes}")
    print(f"latency ms: p50 {q[49]:.1f}  p95 {q[94]:.1f}  p99 {q[98]:.1f}  max {ms[-1]:.1f}")
    print(f"throughput: {args.n / wall:.0f} webhooks/s")


if __name__ == "__main__":
    main()
