"""`clesc demo`: the whole loop on one machine.

A local Label Studio with the Expert, Crowd and Review projects and the sample clips, the webhook
service, the worker and the ML backend (pace, pitch and volume pre-filled from the audio); three annotators per clip and pool label through the API (one label set
deliberately contradictory), the judge's verdicts come back into LS, and the rejection waits in Review.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import requests
from label_studio_sdk import LabelStudio

from label_config import LabelRecord, to_result
from label_config.meta import read_judge
from label_config.schema import ATTRIBUTES, POOLS, REVIEW
from scripts.labelstudio.projects import (
    ensure_ml_backend,
    ensure_user,
    import_folder,
    retrieve_predictions,
)
from scripts.labelstudio.wiring import setup
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.local.process import port_in_use, running_pid, stop_process_group
from webhooks.ls_client import connect
from webhooks.private import private_dir, private_file
from webhooks.settings import Settings

# What the demo annotators hear in each clip (pace/pitch/volume come from samples/manifest.csv).
DEMO_WORDS = {
    "calm-slow-low-quiet": (("calm", "tired"), ("breathy",)),
    "plain-normal-medium": (("neutral",), ("matter-of-fact",)),
    "rushed-fast-high-loud": (("anxious", "excited"), ("shrill",)),
    "gb-normal-low-loud": (("assertive",), ("resonant",)),
    "female-slow-high-quiet": (("sad", "gentle"), ("softly spoken",)),
    "variable-pace": (("surprised", "excited"), ("narrating",)),
    "variable-volume": (("annoyed",), ("hesitant",)),
    "variable-pitch": (("curious",), ("narrating",)),
}
CONTRADICTORY = {"emotion": ("calm", "agitated"), "voice": ("whispering",), "volume": "loud"}
SERVICES = ("serve", "worker", "ml-backend")


def demo_settings(settings: Settings, server: LabelStudioServer) -> Settings:
    """The demo's service settings: its LS, a webhook secret and the ML backend's basic-auth password,
    generated once and kept in CLESC_HOME."""
    path = settings.home / "service.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    if "webhook_secret" not in kept or "ml_basic_auth_pass" not in kept:
        kept = {"webhook_secret": kept.get("webhook_secret") or secrets.token_urlsafe(24),
                "ml_basic_auth_pass": secrets.token_urlsafe(24)}
        private_file(path).write_text(json.dumps(kept))
    return replace(settings, ls_url=server.url, ls_token=server.credentials.token,
                   webhook_secret=settings.webhook_secret or kept["webhook_secret"],
                   ml_basic_auth_user=settings.ml_basic_auth_user or "label-studio",
                   ml_basic_auth_pass=settings.ml_basic_auth_pass or kept["ml_basic_auth_pass"])


def local_server(settings: Settings, echo: Callable[[str], None] = print) -> LabelStudioServer:
    """The demo's Label Studio: data under CLESC_HOME, sample clips served through local-files storage."""
    private_dir(settings.home)
    data_dir = settings.home / "label-studio"
    creds = Credentials.load_or_create(data_dir, settings.ls_username, settings.ls_password)
    exe = ensure_venv(settings.ls_venv, echo=echo)
    return LabelStudioServer(exe, data_dir, settings.ls_port, creds, document_root=settings.samples_dir.parent)


def _service_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "CLESC_HOME": str(settings.home), "CLESC_LS_URL": settings.ls_url,
            "CLESC_LS_TOKEN": settings.ls_token, "CLESC_WEBHOOK_SECRET": settings.webhook_secret,
            "CLESC_SERVICE_PORT": str(settings.service_port), "CLESC_SERVICE_HOST": settings.service_host,
            "CLESC_ML_PORT": str(settings.ml_port), "CLESC_ML_HOST": settings.ml_host,
            "CLESC_ML_BASIC_AUTH_USER": settings.ml_basic_auth_user or "",
            "CLESC_ML_BASIC_AUTH_PASS": settings.ml_basic_auth_pass or "",
            # the demo's ops: its admin (set yours: docs in README "Security")
            "CLESC_OPS_USERS": ",".join(settings.ops_users) or settings.ls_username}


def start_services(settings: Settings, echo: Callable[[str], None]) -> list[str]:
    """`clesc serve` and `clesc worker` in the background, unless already running; the names started."""
    started = []
    clesc = str(Path(sys.executable).with_name("clesc"))
    for name in SERVICES:
        pid_path = settings.home / f"{name}.pid"
        if running_pid(pid_path, expect="clesc"):
            continue
        for service, port, host, variable in (("serve", settings.service_port, settings.service_host, "CLESC_SERVICE_PORT"),
                                              ("ml-backend", settings.ml_port, settings.ml_host, "CLESC_ML_PORT")):
            if name == service and port_in_use(port, host):
                raise SystemExit(f"port {port} is in use; set {variable} to another port")
        with open(settings.home / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([clesc, name], env=_service_env(settings), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        pid_path.write_text(str(proc.pid))
        started.append(name)
    for name, url in (("serve", settings.service_url), ("ml-backend", ml_url(settings))):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                auth = (settings.ml_basic_auth_user, settings.ml_basic_auth_pass) \
                    if name == "ml-backend" and settings.ml_basic_auth_pass else None
                if requests.get(url + "/health", timeout=2, auth=auth).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit(f"{name} did not come up; see {settings.home / (name + '.log')}")
    if started:
        echo(f"Started {' and '.join(started)} (logs in {settings.home})")
    return started


def ml_url(settings: Settings) -> str:
    return f"http://{settings.ml_host}:{settings.ml_port}"


def stop_services(settings: Settings, names=SERVICES, echo: Callable[[str], None] = print) -> None:
    for name in names:
        pid_path = settings.home / f"{name}.pid"
        pid = running_pid(pid_path, expect="clesc")
        if pid is not None:
            stop_process_group(pid)
            echo(f"Stopped {name} (pid {pid}).")
        pid_path.unlink(missing_ok=True)


def stop_detached(settings: Settings, echo: Callable[[str], None] = print) -> bool:
    """Stop a demo left running by CLESC_DEMO_DETACH=1 (by the PIDs it recorded)."""
    stop_services(settings, echo=echo)
    pid_path = settings.home / "label-studio" / "label-studio.pid"
    pid = running_pid(pid_path, expect="label-studio")
    if pid is None:
        echo("No demo Label Studio is running.")
        return False
    stop_process_group(pid)
    pid_path.unlink(missing_ok=True)
    echo(f"Stopped Label Studio (pid {pid}).")
    return True


def _manifest(settings: Settings) -> dict[str, dict[str, str]]:
    path = settings.samples_dir.parent / "manifest.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        return {Path(row["file"]).stem: row for row in csv.DictReader(f)}


def annotate_samples(client: LabelStudio, settings: Settings, projects: dict[str, int],
                     echo: Callable[[str], None]) -> int:
    """Three annotators per clip and pool label through the API; one crowd label set contradicts itself."""
    manifest, created = _manifest(settings), 0
    for pool in POOLS:
        users = [ensure_user(client, f"{pool}{n}@example.com") for n in range(1, settings.overlap + 1)]
        for i, task in enumerate(client.tasks.list(project=projects[pool], page_size=100)):
            clip = Path(task.data.get("audio", "")).stem
            truth = manifest.get(clip)
            if truth is None or (task.total_annotations or 0) >= settings.overlap:
                continue
            emotion, voice = DEMO_WORDS.get(clip, (("neutral",), ()))
            record = LabelRecord(truth["pace"], truth["pitch"], truth["volume"], emotion=emotion, voice=voice)
            for n, user in enumerate(users):
                r = record
                if pool == "crowd" and i == 0 and n == len(users) - 1:
                    r = replace(record, **CONTRADICTORY)
                client.annotations.create(id=task.id, result=to_result(r), completed_by=user,
                                          lead_time=round(8 + 4 * n + i, 1))
                created += 1
    echo(f"Posted {created} annotations ({settings.overlap} per clip and pool; one crowd label set contradicts itself)")
    return created


def show_verdicts(client: LabelStudio, settings: Settings, projects: dict[str, int], echo: Callable[[str], None],
                  timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for pool in POOLS:
        while True:
            tasks = list(client.tasks.list(project=projects[pool], page_size=100))
            judged = [read_judge(t.meta) for t in tasks]
            if all(j is not None and j.status != "incomplete" for j in judged) or time.monotonic() > deadline:
                break
            time.sleep(1)
        echo(f"\n{pool.capitalize()}: the judge's verdicts")
        for t in tasks:
            v = read_judge(t.meta)
            status = v.status if v is not None else "(not judged yet)"
            rejected = f"  rejected annotation {', '.join(map(str, v.rejected))}" if v is not None and v.rejected else ""
            echo(f"  {Path(t.data.get('audio', '')).stem:24s} {status:13s}{rejected}")
    review = list(client.tasks.list(project=projects[REVIEW], page_size=100))
    echo(f"\nReview: {len(review)} proposed rejection(s) for ops: {settings.ls_url}/projects/{projects[REVIEW]}/data")
    for t in review:
        echo(f"  annotation {t.data.get('annotation_id')}: {t.data.get('reasons')}")


def sync_and_report(client: LabelStudio, settings: Settings, projects: dict[str, int],
                    echo: Callable[[str], None]) -> Path:
    """`clesc sync` (with the expert reference) and `clesc report` on the demo's pools; the report's folder."""
    from scripts.pools.sources import from_label_studio
    from scripts.pools.sync import sync
    from scripts.report import make_report, rates
    from webhooks.store import Store

    pools = {pool: projects[pool] for pool in POOLS}
    echo("\nSync: " + sync(client, pools, Store(settings.database_url), reference_prediction=True).summary())
    out = settings.home / "report"
    figures, _ = make_report(from_label_studio(client, pools, source=f"Label Studio {settings.ls_url}",
                                               ls_url=settings.ls_url), out,
                             rates=rates(settings))
    for pool in POOLS:
        f = figures[pool]
        agreement = ", ".join(f"{a} {f['agreement'][a]['percent_majority']:.0f}% majority"
                              for a in ATTRIBUTES if f["agreement"][a]["percent_majority"] is not None)
        echo(f"  {pool:6s} {f['annotations']} annotations; {agreement}; "
             f"{f['vocabulary']['distinct_words']} distinct words")
    echo(f"Report: {out / 'report.html'} (figures in report.json)")
    return out


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    server = local_server(settings, echo)
    started_ls, started_services = False, []
    if running_pid(server.pid_path, expect="label-studio"):
        echo(f"Reusing the demo Label Studio already running at {server.url}")
    else:
        echo(f"Starting Label Studio {server.url} (data in {server.data_dir}) ...")
        t0 = time.monotonic()
        server.start()
        started_ls = True
        echo(f"Label Studio is up after {time.monotonic() - t0:.0f} s")
    service_settings = demo_settings(settings, server)
    try:
        client = connect(server.url, server.credentials.token)
        projects = setup(service_settings, client, echo=lambda line: echo("  " + line))
        for pool in POOLS:
            n = import_folder(client, projects[pool], settings.samples_dir)
            echo(f"  {pool.capitalize():7s} {n} clips  {server.url}/projects/{projects[pool]}/data")
        started_services = start_services(service_settings, echo)
        for pool in POOLS:
            ensure_ml_backend(client, projects[pool], ml_url(service_settings), basic_auth=service_settings.ml_basic_auth)
            retrieve_predictions(client, projects[pool])
        echo(f"ML backend {ml_url(service_settings)} connected to both pools: pace, pitch and volume pre-filled")
        annotate_samples(client, service_settings, projects, echo)
        show_verdicts(client, service_settings, projects, echo)
        sync_and_report(client, service_settings, projects, echo)
        echo(f"\nOpen {server.url} and log in as {server.credentials.username} / {server.credentials.password}")
        if settings.demo_detach:
            echo("CLESC_DEMO_DETACH=1: Label Studio, the service and the worker keep running; `make demo-stop` stops them.")
            started_ls, started_services = False, []
            return
        if not started_ls and not started_services:
            return
        echo("Press Ctrl-C to stop everything the demo started.")
        while server.process is None or server.process.poll() is None:
            time.sleep(1)
        echo(f"Label Studio exited unexpectedly; log tail:\n{server.log_tail()}")
    except KeyboardInterrupt:
        echo("\nStopping ...")
    finally:
        stop_services(service_settings, started_services, echo)
        if started_ls:
            server.stop()
            echo("Stopped Label Studio.")
