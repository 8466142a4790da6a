"""Benchmark of import, sync, report and export against a real Label Studio (figures printed, never asserted).

    .venv/bin/python -m scripts.bench pools --clips 500

Starts its own Label Studio (from .venv-ls, on a free loopback port, in a temporary data dir), writes
a synthetic CLESC file of that many clips (3 expert + 3 crowd annotations each; the real CLESC has 500
rows), and times `clesc import` of it, a re-import (nothing to do), a full and an incremental
`clesc sync`, a report from the live LS and a CLESC export. Stops the server at the end.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import pandas as pd
from label_studio_sdk import LabelStudio

from label_config import labeling_config
from label_config.clesc import COLUMNS
from label_config.schema import POOLS
from scripts.bench.synthetic import synthetic_clesc_rows
from scripts.labelstudio.projects import ensure_project
from scripts.local.labelstudio import Credentials, LabelStudioServer, ensure_venv
from scripts.local.process import free_port
from scripts.pools.export import write
from scripts.pools.importer import import_dataset
from scripts.pools.sources import from_label_studio, read_source
from scripts.pools.sync import sync
from scripts.pools.verdicts import with_rules_verdicts
from scripts.report.figures import build_report
from webhooks.settings import Settings
from webhooks.store import Store


def timed(name: str, fn):
    start = time.perf_counter()
    value = fn()
    print(f"  {time.perf_counter() - start:7.2f} s  {name}", flush=True)
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "media").mkdir()
        creds = Credentials("admin@example.com", secrets.token_urlsafe(12), secrets.token_hex(20))
        server = LabelStudioServer(ensure_venv(Settings.from_env().ls_venv), base / "data", free_port(), creds,
                                   document_root=base / "media")
        timed("Label Studio start", server.start)
        try:
            client = LabelStudio(base_url=server.url, api_key=creds.token)
            config = labeling_config()
            projects = {pool: ensure_project(client, f"{pool.capitalize()} bench", label_config=config, overlap=3,
                                             description="benchmark").id for pool in POOLS}
            source = base / "clesc.parquet"
            pd.DataFrame(list(synthetic_clesc_rows(args.clips)), columns=list(COLUMNS)).to_parquet(source)
            ds = read_source(source)
            print(f"{args.clips} clips, {len(ds.annotations)} annotations; Label Studio {server.url}")
            report = timed("clesc import (tasks, annotations, pair links)", lambda: import_dataset(client, projects, ds))
            print(f"           {report.summary()}")
            timed("clesc import again (nothing to do)", lambda: import_dataset(client, projects, ds))
            store = Store(f"sqlite:///{base / 'store.db'}")
            print(f"           {timed('clesc sync (first: full)', lambda: sync(client, projects, store)).summary()}")
            print(f"           {timed('clesc sync (incremental)', lambda: sync(client, projects, store)).summary()}")
            live = timed("read both projects from LS", lambda: from_label_studio(client, projects))
            judged = timed("rules judge over every clip and pool", lambda: with_rules_verdicts(live))
            timed("report figures (bootstrap 1000)", lambda: build_report(judged))
            timed("export --format clesc", lambda: write(live, "clesc", base / "out.csv", include_rejected=True))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
