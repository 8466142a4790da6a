"""Benchmark of import, sync, report and export against a real Label Studio (figures printed, never asserted).

    .venv/bin/python -m scripts.bench pools --clips 10000 --json

Starts its own Label Studio (from .venv-ls, on a free loopback port, in a temporary data dir) on a
PostgreSQL it starts too (`--ls-database postgresql`, the default: what docker/compose.yaml deploys;
`sqlite`: LS's own file), writes a synthetic CLESC file of that many clips (3 expert + 3 crowd
annotations each; the real CLESC has 500 rows), and times `clesc import` of it, a re-import (nothing
to do), a full and an incremental `clesc sync`, a report from the live LS and a CLESC export. Stops
the servers at the end. `--json` prints one JSON line last: {"clips", "import_s", "reimport_s",
"sync_s", "incremental_sync_s", "ls_database", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

from label_config import labeling_config
from label_config.clesc import COLUMNS
from label_config.schema import POOLS
from scripts.bench.synthetic import synthetic_clesc_rows
from scripts.labelstudio.projects import ensure_project
from scripts.local.databases import PG_USER, PostgresServer
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.local.process import free_port
from scripts.pools.export import write
from scripts.pools.importer import import_dataset
from scripts.pools.sources import from_label_studio, read_source
from scripts.pools.sync import sync
from scripts.pools.verdicts import with_rules_verdicts
from scripts.report.figures import build_report
from webhooks.ls_client import connect
from webhooks.settings import Settings
from webhooks.store import Store


def timed(name: str, fn, seconds: bool = False):
    start = time.perf_counter()
    value = fn()
    took = time.perf_counter() - start
    print(f"  {took:7.2f} s  {name}", flush=True)
    return (value, round(took, 2)) if seconds else value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--ls-database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print one JSON line of the figures last")
    parser.add_argument("--no-report", action="store_true", help="skip reading back, the report and the export")
    args = parser.parse_args(argv)
    figures: dict = {"clips": args.clips, "ls_database": args.ls_database, "cpus": os.cpu_count(),
                     "load_before": os.getloadavg()[0]}
    postgres = None
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "media").mkdir()
        creds = Credentials("admin@example.com", secrets.token_urlsafe(12), secrets.token_hex(20))
        database = None
        if args.ls_database == "postgresql":
            postgres = PostgresServer()
            timed("PostgreSQL start", postgres.start)
            postgres.create_database("labelstudio")
            database = {"host": "127.0.0.1", "port": str(postgres.port), "name": "labelstudio", "user": PG_USER}
        server = LabelStudioServer(ensure_venv(Settings.from_env().ls_venv), base / "data", free_port(), creds,
                                   document_root=base / "media", postgres=database)
        try:
            timed("Label Studio start", server.start)
            client = connect(server.url, creds.token)
            config = labeling_config()
            projects = {pool: ensure_project(client, f"{pool.capitalize()} bench", label_config=config, overlap=3,
                                             description="benchmark").id for pool in POOLS}
            source = base / "clesc.parquet"
            pd.DataFrame(list(synthetic_clesc_rows(args.clips)), columns=list(COLUMNS)).to_parquet(source)
            ds = read_source(source)
            print(f"{args.clips} clips, {len(ds.annotations)} annotations; Label Studio {server.url}")
            report, figures["import_s"] = timed("clesc import (tasks, annotations, pair links)",
                                                lambda: import_dataset(client, projects, ds), seconds=True)
            print(f"           {report.summary()}")
            figures["created"], figures["annotations"] = report.created, report.annotations
            again, figures["reimport_s"] = timed("clesc import again (nothing to do)",
                                                 lambda: import_dataset(client, projects, ds), seconds=True)
            print(f"           {again.summary()}")
            figures["reimport_created"] = again.created
            figures["reimport_annotations_added"] = again.annotations
            figures["tasks_after"] = {pool: client.projects.get(pid).task_number for pool, pid in projects.items()}
            store = Store(f"sqlite:///{base / 'store.db'}")
            first, figures["sync_s"] = timed("clesc sync (first: full)", lambda: sync(client, projects, store),
                                             seconds=True)
            print(f"           {first.summary()}")
            figures["sync_updated"] = first.updated
            # LS and this process share a clock here: no margin, so the incremental run reads what changed
            # since the full one (its own writes), as a deployment's does 2 minutes later.
            later, figures["incremental_sync_s"] = timed("clesc sync (incremental)",
                                                         lambda: sync(client, projects, store, margin=timedelta(0)),
                                                         seconds=True)
            print(f"           {later.summary()}")
            if not args.no_report:
                live, figures["read_s"] = timed("read both projects from LS", lambda: from_label_studio(client, projects),
                                                seconds=True)
                judged = timed("rules judge over every clip and pool", lambda: with_rules_verdicts(live))
                timed("report figures (bootstrap 1000)", lambda: build_report(judged))
                timed("export --format clesc", lambda: write(live, "clesc", base / "out.csv", include_rejected=True))
        finally:
            server.stop()
            if postgres is not None:
                postgres.remove()
    figures["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
