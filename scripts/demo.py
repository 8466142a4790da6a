"""`clesc demo`: a local Label Studio with the Expert and Crowd pools holding the sample clips."""

from __future__ import annotations

import time
from collections.abc import Callable

from label_studio_sdk import LabelStudio

from scripts.labelstudio import (
    Credentials,
    LabelStudioServer,
    ensure_venv,
    running_pid,
    stop_process_group,
)
from scripts.pools import ensure_pools, import_folder
from scripts.settings import Settings


def local_server(settings: Settings, echo: Callable[[str], None] = print) -> LabelStudioServer:
    """The demo's Label Studio: data under CLESC_HOME, sample clips served through local-files storage."""
    data_dir = settings.home / "label-studio"
    creds = Credentials.load_or_create(data_dir, settings.ls_username, settings.ls_password)
    exe = ensure_venv(settings.ls_venv, echo=echo)
    return LabelStudioServer(exe, data_dir, settings.ls_port, creds, document_root=settings.samples_dir.parent)


def stop_detached(settings: Settings, echo: Callable[[str], None] = print) -> bool:
    """Stop a demo Label Studio left running by CLESC_DEMO_DETACH=1 (by the PID it recorded)."""
    pid_path = settings.home / "label-studio" / "label-studio.pid"
    pid = running_pid(pid_path)
    if pid is None:
        echo("No demo Label Studio is running.")
        return False
    stop_process_group(pid)
    pid_path.unlink(missing_ok=True)
    echo(f"Stopped Label Studio (pid {pid}).")
    return True


def run_demo(settings: Settings, echo: Callable[[str], None] = print) -> None:
    server = local_server(settings, echo)
    started = False
    if running_pid(server.pid_path):
        echo(f"Reusing the demo Label Studio already running at {server.url}")
    else:
        echo(f"Starting Label Studio {server.url} (data in {server.data_dir}) ...")
        t0 = time.monotonic()
        server.start()
        started = True
        echo(f"Label Studio is up after {time.monotonic() - t0:.0f} s")
    try:
        client = LabelStudio(base_url=server.url, api_key=server.credentials.token)
        for pool in ensure_pools(client, settings.overlap).values():
            n = import_folder(client, pool.id, settings.samples_dir)
            state = "created" if pool.created else "exists"
            echo(f"  {pool.title:7s} project {pool.id} ({state}): {n} clips  {server.url}/projects/{pool.id}/data")
        echo(f"\nOpen {server.url} and log in as {server.credentials.username} / {server.credentials.password}")
        if not started:
            return
        if settings.demo_detach:
            echo("CLESC_DEMO_DETACH=1: Label Studio keeps running in the background; `make demo-stop` stops it.")
            started = False
            return
        echo("Press Ctrl-C to stop everything the demo started.")
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
        echo(f"Label Studio exited unexpectedly; log tail:\n{server.log_tail()}")
    except KeyboardInterrupt:
        echo("\nStopping ...")
    finally:
        if started:
            server.stop()
            echo("Stopped Label Studio.")
