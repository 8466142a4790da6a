"""Benchmark: `POST /webhook` under load while the workers judge (LS waits 1 s for it, then drops it).

    .venv/bin/python -m scripts.bench webhook [--rate 100] [--seconds 20] [--modes sqlite,postgres-redis]

Starts what it measures, on loopback, in temporary dirs, stopped by PID at the end: a PostgreSQL and a
Redis (Debian's packages), a Label Studio on that PostgreSQL with one pool project of `--tasks` tasks
(3 annotations each), and per mode the real service (`clesc serve`) and `--workers` worker processes
(`clesc worker`): `sqlite` is the embedded default (SQLite store, Huey on SQLite), `postgres-redis` the
scaled-out one. The same run measures a bare endpoint that answers 204 on the same server stack
(waitress, same threads), the baseline.

Per target: an open-loop load of `--rate` requests/s for `--seconds` (each request sent at its
scheduled time, whatever the earlier ones do) with realistic ~60 KB ANNOTATION_UPDATED payloads (the
label config twice, as LS sends it, and the task data), a quarter of them bursts on a few hot tasks;
then `--saturate` seconds closed-loop at 16 connections for the most requests/s. It prints
p50/p95/p99/max, how many took over 1 s, the throughput and the ratios to the bare endpoint; then,
after the workers drained the queue, the count: every accepted webhook's event `done`, exactly one
verdict per task, on the versions LS holds now, and how many judgements the coalescing made of them.
Figures are printed, never asserted. `--json` prints one JSON line of them last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from label_config import LabelRecord, labeling_config, to_result
from scripts.local.process import ServerProcess, free_port, stop_process_group
from webhooks.app import SECRET_HEADER

SECRET = "bench-secret-3c1d"
VENV_BIN = Path(sys.executable).parent


def payload(project: int, task: int, annotation: int, user: int, n: int, run: int) -> bytes:
    config = labeling_config()
    record = LabelRecord("fast", "high", "loud", emotion=("excited", "happy"))
    body = {"action": "ANNOTATION_UPDATED",
            "annotation": {"id": annotation, "task": task, "project": project, "completed_by": user,
                           "updated_at": f"2026-11-27T12:{run % 60:02d}:00.{n:06d}Z", "was_cancelled": False,
                           "lead_time": 12.5, "result": to_result(record)},
            "project": {"id": project, "title": "Crowd", "label_config": config, "parsed_label_config": config,
                        "token": "bench-token", "task_data_password": "bench-password"},
            "task": {"id": task, "data": {"audio": f"/data/local-files/?d=clips/{task}.wav",
                                          "transcript": "x" * 16000, "source_dataset": "bench"}}}
    return json.dumps(body).encode()


class Service(ServerProcess):
    """`clesc serve`, or (`bare`) a Flask app answering 204 on the same server (waitress, same threads)."""

    name = "webhook service"

    def __init__(self, env: dict[str, str], log: Path, port: int, bare: bool = False):
        super().__init__(port, log)
        self.env, self.bare = env, bare

    def command(self) -> list[str]:
        if self.bare:
            return [sys.executable, "-m", "scripts.bench.webhook", "--serve-bare", str(self.port)]
        return [str(VENV_BIN / "clesc"), "serve"]

    def environment(self) -> dict[str, str]:
        return self.env

    def healthy(self) -> bool:
        return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200


def serve_bare(port: int) -> None:
    from flask import Flask

    from webhooks.runners import serve_buffered
    from webhooks.settings import Settings

    app = Flask("bare")
    app.add_url_rule("/webhook", "webhook", lambda: ("", 204), methods=["POST"])
    app.add_url_rule("/health", "health", lambda: "ok")
    settings = Settings.from_env()
    serve_buffered(app, "127.0.0.1", port, 4 * settings.workers, "bare", read_timeout_s=settings.read_timeout_s,
                   max_body_bytes=settings.max_body_bytes)


def percentiles(ms: list[float]) -> dict[str, float]:
    if len(ms) < 2:
        return {"p50": ms[0] if ms else 0.0, "p95": 0.0, "p99": 0.0, "max": ms[0] if ms else 0.0}
    q = statistics.quantiles(ms, n=100)
    return {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1), "max": round(max(ms), 1)}


def load(url: str, bodies: list[bytes], rate: float, seconds: float) -> dict:
    """Open loop: request i is sent at t0 + i/rate (threads enough that none waits for another)."""
    n = int(rate * seconds)
    local = threading.local()
    results: list[tuple[float, int, float]] = []
    lock = threading.Lock()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def one(i: int, due: float) -> None:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        try:
            code = session().post(url, data=bodies[i % len(bodies)], timeout=10,
                                  headers={"Content-Type": "application/json", SECRET_HEADER: SECRET}).status_code
        except requests.RequestException:
            code = 0
        with lock:
            results.append((1000 * (time.perf_counter() - t0), code, 1000 * max(0.0, t0 - due)))

    start = time.perf_counter() + 0.5
    with ThreadPoolExecutor(64) as pool:
        for i in range(n):
            pool.submit(one, i, start + i / rate)
    wall = max(1e-9, time.perf_counter() - start)
    ms = sorted(r[0] for r in results)
    codes: dict[int, int] = {}
    for _, c, _ in results:
        codes[c] = codes.get(c, 0) + 1
    return {"requests": n, "rate": rate, "seconds": seconds, "codes": codes, **percentiles(ms),
            "over_1s": sum(1 for x in ms if x > 1000), "achieved_per_s": round(n / wall, 1),
            "client_lag_max_ms": round(max(r[2] for r in results), 1)}


def saturate(url: str, bodies: list[bytes], seconds: float, connections: int = 16) -> tuple[float, int]:
    """Closed loop: `connections` clients posting back to back; (requests/s, how many answered 202)."""
    stop = time.perf_counter() + seconds
    counts = [0] * connections
    accepted = [0] * connections

    def client(k: int) -> None:
        s = requests.Session()
        i = k
        while time.perf_counter() < stop:
            try:
                r = s.post(url, data=bodies[i % len(bodies)], timeout=10,
                           headers={"Content-Type": "application/json", SECRET_HEADER: SECRET})
                counts[k] += 1
                accepted[k] += r.status_code == 202
            except requests.RequestException:
                pass
            i += connections
    threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return round(sum(counts) / seconds, 1), sum(accepted)


def show(name: str, r: dict) -> None:
    print(f"  {name:16s} p50 {r['p50']:7.1f}  p95 {r['p95']:7.1f}  p99 {r['p99']:7.1f}  max {r['max']:7.1f} ms; "
          f"over 1 s: {r['over_1s']}; {r['achieved_per_s']:.0f}/s sent (client lag max {r['client_lag_max_ms']:.0f} ms); "
          f"saturated {r.get('saturated_per_s', 0):.0f}/s; status {r['codes']}", flush=True)


def make_project(client, tasks: int) -> tuple[int, list[tuple[int, int, int]]]:
    """A pool project of `tasks` tasks with 3 agreeing annotations each; [(task, annotation, user)]."""
    from scripts.labelstudio.projects import ensure_project, ensure_user

    project = ensure_project(client, "Webhook bench", label_config=labeling_config(), overlap=3,
                             description="bench").id
    users = [ensure_user(client, f"bench{n}@example.com") for n in range(3)]
    record = LabelRecord("fast", "high", "loud", emotion=("excited", "happy"))
    for start in range(0, tasks, 500):
        client.projects.import_tasks(project, request=[
            {"data": {"audio": f"https://media.example.org/bench/{i}.wav"},
             "annotations": [{"result": to_result(record), "completed_by": u} for u in users]}
            for i in range(start, min(tasks, start + 500))])
    refs = []
    for task in client.tasks.list(project=project, fields="all", page_size=500):
        for a in task.annotations or []:
            refs.append((task.id, a["id"], a["completed_by"]))
    return project, refs


def count(store, client, project: int) -> dict:
    """After the drain: events by status, verdicts per task, and whether each is on LS's current versions."""
    from label_config.records import is_cancelled
    from webhooks.worker import version_of

    events = store.events()
    webhook_events = [e for e in events if e["source"] == "webhook"]
    verdicts = {v["task_id"]: v for v in store.all_verdicts() if v["project_id"] == project}
    current = {}
    for task in client.tasks.list(project=project, fields="all", page_size=500):
        current[task.id] = {str(a["id"]): version_of(a) for a in task.annotations or [] if not is_cancelled(a)}
    touched = {e["task_id"] for e in webhook_events}
    return {"accepted_events": len(webhook_events),
            "events_by_status": {s: sum(1 for e in webhook_events if e["status"] == s) for s in
                                 {e["status"] for e in webhook_events}},
            "tasks_touched": len(touched),
            "tasks_with_one_verdict": sum(1 for t in touched if t in verdicts),
            "verdicts_on_current_versions": sum(1 for t in touched if t in verdicts and verdicts[t]["versions"] == current.get(t)),
            "judgements": sum(verdicts[t]["judge_count"] for t in touched if t in verdicts)}


def drain(store, seconds: float = 300) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not store.event_counts().get("pending"):
            break
        time.sleep(0.5)
    return round(time.monotonic() - start, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--saturate", type=float, default=5.0, help="seconds of closed-loop load for the throughput")
    ap.add_argument("--modes", default="sqlite,postgres-redis")
    ap.add_argument("--workers", type=int, default=2, help="worker processes judging meanwhile")
    ap.add_argument("--tasks", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    from scripts.local.databases import PG_USER, PostgresServer, RedisServer
    from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
    from webhooks.ls_client import connect
    from webhooks.settings import Settings
    from webhooks.store import Store

    figures: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "rate": args.rate,
                     "seconds": args.seconds, "workers": args.workers}
    print(f"load average before: {os.getloadavg()} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        postgres, redis = PostgresServer(), RedisServer(base / "redis")
        ls = None
        try:
            postgres.start()
            redis.start()
            postgres.create_database("labelstudio")
            (base / "media").mkdir()
            creds = Credentials("admin@example.com", "bench-password-1", os.urandom(20).hex())
            ls = LabelStudioServer(ensure_venv(Settings.from_env().ls_venv), base / "ls", free_port(), creds,
                                   base / "media", postgres={"host": "127.0.0.1", "port": str(postgres.port),
                                                             "name": "labelstudio", "user": PG_USER})
            ls.start()
            client = connect(ls.url, creds.token)
            project, refs = make_project(client, args.tasks)
            rng = random.Random(13)
            hot = refs[:9]  # 3 tasks' annotations: bursts
            run = int(time.time())
            n = int(args.rate * args.seconds)
            bodies = [payload(project, *(rng.choice(hot) if rng.random() < 0.25 else rng.choice(refs)), i, run)
                      for i in range(n)]
            figures["payload_kb"] = round(sum(map(len, bodies)) / len(bodies) / 1024, 1)
            print(f"{n} payloads of ~{figures['payload_kb']} KB over {len({b for b in bodies})} bodies; "
                  f"{args.tasks} tasks; Label Studio on PostgreSQL at {ls.url}", flush=True)

            bare_env = {**os.environ, "CLESC_WORKERS": "2"}
            bare = Service(bare_env, base / "bare.log", free_port(), bare=True)
            bare.start()
            try:
                url = f"http://127.0.0.1:{bare.port}/webhook"
                result = load(url, bodies, args.rate, args.seconds)
                result["saturated_per_s"], _ = saturate(url, bodies, args.saturate)
            finally:
                bare.stop()
            figures["bare"] = result
            show("bare 204", result)

            for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
                home = base / mode
                env = {**os.environ, "CLESC_HOME": str(home), "CLESC_WEBHOOK_SECRET": SECRET, "CLESC_LS_URL": ls.url,
                       "CLESC_LS_TOKEN": creds.token, "CLESC_WORKERS": "2", "CLESC_RECONCILE_MINUTES": "59"}
                if mode == "postgres-redis":
                    env.update(CLESC_DATABASE_URL=postgres.create_database("clesc_bench"), CLESC_REDIS_URL=redis.url(2))
                settings = Settings.from_env(env)
                store = Store(settings.database_url)
                store.set_projects([(project, "crowd", "Webhook bench")])
                service = Service(env, home / "serve.log", free_port())
                env["CLESC_SERVICE_PORT"] = str(service.port)
                service.start()
                workers = []
                try:
                    for k in range(args.workers):
                        with open(home / f"worker-{k}.log", "ab") as log:
                            workers.append(subprocess.Popen([str(VENV_BIN / "clesc"), "worker"], env=env, stdout=log,
                                                            stderr=subprocess.STDOUT, start_new_session=True))
                    time.sleep(3)
                    url = f"http://127.0.0.1:{service.port}/webhook"
                    result = load(url, bodies, args.rate, args.seconds)
                    sat_bodies = [payload(project, *rng.choice(refs), 10_000_000 + i, run) for i in range(4000)]
                    result["saturated_per_s"], saturated_202 = saturate(url, sat_bodies, args.saturate)
                    result["drain_s"] = drain(store)
                    result["count"] = {"answered_202": result["codes"].get(202, 0) + saturated_202,
                                       **count(store, client, project)}
                finally:
                    for w in workers:
                        stop_process_group(w.pid)
                        w.wait(timeout=10)
                    service.stop()
                bare_r = figures["bare"]
                result["p99_over_bare"] = round(result["p99"] / max(bare_r["p99"], 1e-9), 2)
                result["throughput_over_bare"] = round(result["saturated_per_s"] / max(bare_r["saturated_per_s"], 1e-9), 2)
                figures[mode] = result
                show(mode, result)
                print(f"  {'':16s} p99 {result['p99_over_bare']}x the bare endpoint's, throughput "
                      f"{result['throughput_over_bare']}x; drained in {result['drain_s']} s; {result['count']}", flush=True)
        finally:
            if ls is not None:
                ls.stop()
            redis.stop()
            postgres.remove()
    figures["load_after"] = os.getloadavg()[0]
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
