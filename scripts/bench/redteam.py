"""Red-team re-run (issue 14): the attacks that held and the defects fixed, on loopback; figures printed, never asserted.

    .venv/bin/python -m scripts.bench redteam [--tasks 120] [--kills 4] [--outage-tasks 20]

Starts its own Label Studio (from .venv-ls, free loopback port, temporary data dir), `clesc serve` and
`clesc worker`, wires the Expert/Crowd/Review projects (`clesc setup`), then:
- 28 variants of the secret header (missing, empty, near misses, the secret elsewhere) against a valid
  body: how many were accepted, how many rows stored;
- a sign-up without an invitation; every command line of LS, the service and the worker; the file modes;
- `--tasks` tasks x 3 annotations through the LS API (webhooks as LS sends them), the worker SIGKILLed
  `--kills` times mid-job and restarted: tasks judged, our predictions per task, review tasks per rejection;
- the service stopped while `--outage-tasks` tasks x 3 are annotated, then `clesc reconcile`: tasks judged;
- forged webhooks naming the Expert project for Crowd tasks: verdict rows and review tasks they made;
- every secret (webhook secret, LS token and admin password, each project's token and task-data password
  from LS's own database) searched in the store, the queue, the logs, 6 exports and 2 reports.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from label_config import LabelRecord, to_result
from label_config.meta import read_judge
from label_config.schema import POOLS, REVIEW
from scripts.labelstudio.projects import ensure_user
from scripts.labelstudio.wiring import setup
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.local.process import ClescProcess, free_port, poll
from webhooks.app import SECRET_HEADER
from webhooks.ls_client import connect
from webhooks.settings import Settings
from webhooks.store import Store

CLESC = str(Path(sys.executable).with_name("clesc"))
AGREE = LabelRecord("fast", "high", "loud", emotion=("excited", "happy"))
AGREE_2 = LabelRecord("fast", "high", "loud", emotion=("joyful", "enthusiastic"), voice=("shrill",))
CONTRADICTORY = LabelRecord("slow", "low", "quiet", emotion=("calm", "agitated"))


def wait(predicate, timeout: float, what: str, interval: float = 0.5):
    value = poll(predicate, timeout, interval)
    if not value:
        print(f"  (gave up waiting for {what} after {timeout:.0f} s)", flush=True)
    return value


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).ok
    except requests.RequestException:
        return False


def header_variants(secret: str) -> list[tuple[str, dict[str, str], str]]:
    """(name, headers, query string): 28 ways of not sending the right secret in the right header."""
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    v = [("missing", {}, ""), ("empty", {SECRET_HEADER: ""}, ""), ("prefix and a space", {SECRET_HEADER: secret[:-1] + " "}, ""),
         ("wrong", {SECRET_HEADER: "wrong"}, ""), ("random, same length", {SECRET_HEADER: secrets.token_urlsafe(len(secret))[:len(secret)]}, ""),
         ("prefix", {SECRET_HEADER: secret[:-1]}, ""), ("first half", {SECRET_HEADER: secret[: len(secret) // 2]}, ""),
         ("last char changed", {SECRET_HEADER: flipped}, ""), ("suffix added", {SECRET_HEADER: secret + "x"}, ""),
         ("prefix added", {SECRET_HEADER: "x" + secret}, ""), ("upper case", {SECRET_HEADER: secret.upper()}, ""),
         ("lower case", {SECRET_HEADER: secret.lower()}, ""), ("reversed", {SECRET_HEADER: secret[::-1]}, ""),
         ("doubled", {SECRET_HEADER: secret * 2}, ""), ("comma list", {SECRET_HEADER: f"wrong, {secret}"}, ""),
         ("url-encoded", {SECRET_HEADER: "".join(f"%{ord(c):02X}" for c in secret)}, ""),
         ("Bearer prefix", {SECRET_HEADER: f"Bearer {secret}"}, ""), ("non-ASCII", {SECRET_HEADER: "s\u00e9cr\u00e9t"}, ""),
         ("wildcard", {SECRET_HEADER: "*"}, ""), ("null word", {SECRET_HEADER: "null"}, ""),
         ("in Authorization", {"Authorization": secret}, ""), ("in Authorization Token", {"Authorization": f"Token {secret}"}, ""),
         ("other header name", {"X-Clesc-Secrets": secret}, ""), ("underscored name", {"X_Clesc_Secret": secret}, ""),
         ("in the query string", {}, f"?secret={secret}"), ("X-Forwarded-For loopback", {"X-Forwarded-For": "127.0.0.1"}, ""),
         ("in a cookie", {"Cookie": f"{SECRET_HEADER}={secret}"}, ""), ("very long", {SECRET_HEADER: "a" * 8000}, "")]
    return v


def modes(paths) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths if p.exists()}


def group_cmdlines(leader: int) -> list[str]:
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_file.read_text().rsplit(")", 1)[1].split()[2]) == leader:
                out.append((stat_file.parent / "cmdline").read_bytes().decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    return out


def signup_status(url: str) -> int:
    s = requests.Session()
    s.get(url + "/user/signup/", timeout=30)
    r = s.post(url + "/user/signup/", data={"email": f"intruder-{secrets.token_hex(3)}@example.com",
                                            "password": "Intruder-pw-123", "csrfmiddlewaretoken": s.cookies.get("csrftoken")},
               headers={"Referer": url + "/user/signup/"}, allow_redirects=False, timeout=30)
    return r.status_code


def annotate(client, task_id: int, users: list[int], contradictory: bool) -> None:
    for n, record in enumerate((AGREE, AGREE_2, CONTRADICTORY if contradictory else AGREE)):
        client.annotations.create(id=task_id, result=to_result(record), completed_by=users[n])


def import_tasks(client, project: int, start: int, n: int) -> list[int]:
    return list(client.projects.import_tasks(project, request=[{"data": {"audio": f"https://clips.invalid/c{i}.wav"}}
                                                                for i in range(start, start + n)],
                                             return_task_ids=True).task_ids)


def loop_figures(client, projects: dict[str, int], tasks: dict[int, int]) -> dict[str, int]:
    """Over `tasks` (task id -> project id): judged, with exactly one of our predictions, duplicates."""
    by_task = {}
    for project in set(tasks.values()):
        for t in client.tasks.list(project=project, fields="all", page_size=100):
            if t.id in tasks:
                by_task[t.id] = t
    judged = sum(1 for t in by_task.values() if (j := read_judge(t.meta)) is not None and j.status != "incomplete")
    ours = [sum(1 for p in (t.predictions or []) if str((p if isinstance(p, dict) else p.dict()).get("model_version")
                                                        or "").startswith("clesc-judge"))
            for t in by_task.values()]
    reviews: dict[int, int] = {}
    for rt in client.tasks.list(project=projects[REVIEW], page_size=100):
        if rt.data.get("pool_task") in tasks:
            reviews[rt.data["annotation_id"]] = reviews.get(rt.data["annotation_id"], 0) + 1
    return {"tasks": len(tasks), "judged": judged, "one_prediction": sum(1 for n in ours if n == 1),
            "duplicate_predictions": sum(max(0, n - 1) for n in ours), "review_tasks": sum(reviews.values()),
            "duplicate_review_tasks": sum(max(0, n - 1) for n in reviews.values())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=120, help="tasks annotated 3 times while the worker is killed")
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--outage-tasks", type=int, default=20)
    ap.add_argument("--forged", type=int, default=10)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        home, media = base / "home", base / "media"
        media.mkdir()
        creds = Credentials("admin@example.com", secrets.token_urlsafe(12), secrets.token_hex(20))
        server = LabelStudioServer(ensure_venv(Settings.from_env().ls_venv), base / "ls", free_port(), creds, media)
        server.start()
        services: list[ClescProcess] = []
        try:
            port = free_port()
            env = {**os.environ, "CLESC_HOME": str(home), "CLESC_LS_URL": server.url, "CLESC_LS_TOKEN": creds.token,
                   "CLESC_WEBHOOK_SECRET": secrets.token_urlsafe(24), "CLESC_SERVICE_PORT": str(port), "CLESC_WORKERS": "2"}
            settings = Settings.from_env(env)
            client = connect(server.url, creds.token)
            projects = setup(settings, client, echo=lambda _: None)
            store = Store(settings.database_url)
            serve = ClescProcess(["serve"], env, home / "serve.log").start()
            worker = ClescProcess(["worker"], env, home / "worker.log").start()
            services += [serve, worker]
            wait(lambda: healthy(settings.service_url), 60, "the service")
            print(f"Label Studio {server.url}, service {settings.service_url} ({time.monotonic() - t0:.0f} s)", flush=True)

            # 1. the secret header
            crowd, expert = projects["crowd"], projects["expert"]
            [probe] = import_tasks(client, crowd, 10**6, 1)
            body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": probe, "project": crowd,
                                                                   "updated_at": "2026-12-01T00:00:00Z", "result": []},
                    "project": {"id": crowd}}
            before, accepted = len(store.events()), []
            variants = header_variants(settings.webhook_secret)
            for name, headers, query in variants:
                try:
                    r = requests.post(settings.service_url + "/webhook" + query, data=json.dumps(body),
                                      headers={"Content-Type": "application/json", **headers}, timeout=10)
                    if r.status_code < 400:
                        accepted.append(name)
                except (requests.RequestException, ValueError) as e:  # a header requests itself refuses to send
                    print(f"  variant {name!r} not sendable: {type(e).__name__}")
            print(f"secret header: {len(variants)} variants, {len(accepted)} accepted {accepted}, "
                  f"{len(store.events()) - before} rows stored", flush=True)

            # 2. sign-up, command lines, file modes
            print(f"sign-up without an invitation: HTTP {signup_status(server.url)}")
            cmdlines = group_cmdlines(server.pid) + [c for s in services for c in group_cmdlines(s.popen.pid)]
            leaked = [c.split("\0")[0] for c in cmdlines if any(x in c for x in (creds.password, creds.token,
                                                                                  settings.webhook_secret))]
            print(f"command lines: {len(cmdlines)} processes, {len(leaked)} with a secret {leaked}")
            print(f"modes: CLESC_HOME {modes([home])}, LS data dir {modes([server.data_dir])}, "
                  f"{modes(sorted(home.glob('*.db*')) + sorted(server.data_dir.glob('label_studio.sqlite3*')) + [server.data_dir / '.env', server.data_dir / 'credentials.json'])}",
                  flush=True)

            # 3. the worker SIGKILLed mid-job while tasks are annotated
            users = {pool: [ensure_user(client, f"{pool}{n}@example.com") for n in (1, 2, 3)] for pool in POOLS}
            half = args.tasks // 2
            tasks = {t: expert for t in import_tasks(client, expert, 0, half)}
            tasks |= {t: crowd for t in import_tasks(client, crowd, 0, args.tasks - half)}
            order = sorted(tasks)
            kill_at = {round(len(order) * (k + 1) / (args.kills + 1)) for k in range(args.kills)}
            kills, started = 0, time.monotonic()
            for i, task_id in enumerate(order):
                pool = "expert" if tasks[task_id] == expert else "crowd"
                annotate(client, task_id, users[pool], contradictory=i % 5 == 0)
                if i in kill_at:
                    offset = worker.log.stat().st_size
                    wait(lambda: "judging project" in worker.log.read_text()[offset:], 30, "a job to start", 0.05)
                    worker.stop(signal.SIGKILL)
                    kills += 1
                    worker.start()
            print(f"posted {3 * len(order)} annotations with {kills} SIGKILLs of the worker "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            wait(lambda: not store.pending_tasks() and loop_figures(client, projects, tasks)["judged"] == len(tasks),
                 1800, "every task judged", 5)
            print(f"after the kills ({time.monotonic() - started:.0f} s): {loop_figures(client, projects, tasks)}", flush=True)

            # 4. the service stopped while annotations are made, then `clesc reconcile`
            serve.stop()
            outage = {t: crowd for t in import_tasks(client, crowd, 10**5, args.outage_tasks)}
            for i, task_id in enumerate(sorted(outage)):
                annotate(client, task_id, users["crowd"], contradictory=i % 5 == 0)
            lost = loop_figures(client, projects, outage)["judged"]
            r = subprocess.run([CLESC, "reconcile"], env=env, capture_output=True, text=True, timeout=1800)
            serve.start()
            wait(lambda: healthy(settings.service_url), 60, "the service to restart")
            print(f"outage: {args.outage_tasks} tasks x 3 annotated while the service was down ({lost} judged then); "
                  f"`clesc reconcile` rc {r.returncode}: {r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''}; "
                  f"after: {loop_figures(client, projects, outage)}", flush=True)

            # 5. forged webhooks: a Crowd task claimed for the Expert project
            forged = [t for t in order if tasks[t] == crowd][: args.forged]
            verdicts, reviews = len(store.all_verdicts()), len(store.all_reviews())
            for n, task_id in enumerate(forged):
                ann = client.annotations.list(id=task_id)[0].dict()
                fake = {"action": "ANNOTATION_UPDATED", "annotation": {**json.loads(json.dumps(ann, default=str)),
                                                                       "project": expert, "updated_at": f"2031-01-01T00:00:{n:02d}Z"},
                        "project": {"id": expert}, "task": {"id": task_id}}
                requests.post(settings.service_url + "/webhook", data=json.dumps(fake), timeout=10,
                              headers={"Content-Type": "application/json", SECRET_HEADER: settings.webhook_secret})
            wait(lambda: not store.pending_tasks(), 300, "the forged events processed", 1)
            print(f"forged: {len(forged)} webhooks naming Expert for Crowd tasks -> "
                  f"{len(store.all_verdicts()) - verdicts} verdict rows, {len(store.all_reviews()) - reviews} reviews, "
                  f"{sum(1 for e in store.events() if (e['error'] or '').endswith(f'not in project {expert}'))} events "
                  f"finished as 'not in project'", flush=True)

            # 6. secrets at rest and in outputs
            out = base / "out"
            out.mkdir()
            produced = []
            for fmt, ext in (("clesc", "csv"), ("parquet", "parquet"), ("jsonl", "jsonl")):
                for extra in ([], ["--all"]):
                    path = out / f"export-{fmt}{'-all' if extra else ''}.{ext}"
                    subprocess.run([CLESC, "export", "--format", fmt, "--out", str(path), *extra], env=env,
                                   capture_output=True, timeout=600)
                    produced.append(path)
            subprocess.run([CLESC, "report", "--out", str(out / "report"), "--no-embeddings", "--bootstrap", "50"],
                           env=env, capture_output=True, timeout=900)
            produced += [out / "report" / "report.json", out / "report" / "report.html"]
            with sqlite3.connect(server.data_dir / "label_studio.sqlite3") as db:
                project_secrets = [v for row in db.execute("SELECT token, task_data_password FROM project") for v in row if v]
            wanted = {"webhook secret": settings.webhook_secret, "LS token": creds.token, "LS admin password": creds.password,
                      **{f"project secret {i}": v for i, v in enumerate(project_secrets)}}
            places = {"store": store.dump_text().encode(),
                      "queue": b"".join(p.read_bytes() for p in sorted(home.glob("queue.db*"))),
                      "logs": b"".join(p.read_bytes() for p in [*sorted(home.glob("*.log")), server.log_path])}
            places |= {p.name: p.read_bytes() for p in produced if p.exists()}
            found = {f"{what} in {where}" for where, data in places.items() for what, v in wanted.items()
                     if v.encode() in data}
            print(f"secrets: {len(wanted)} searched in the store, the queue, the logs, "
                  f"{sum(1 for p in produced[:6] if p.exists())} exports and "
                  f"{sum(1 for p in produced[6:] if p.exists())} reports: {len(found)} found {sorted(found)}")
            print(f"done in {time.monotonic() - t0:.0f} s")
        finally:
            for s in services:
                s.stop()
            server.stop()


if __name__ == "__main__":
    main()
