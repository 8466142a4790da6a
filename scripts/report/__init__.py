"""The expert-vs-crowd report: figures from a Dataset (figures.py, pure), drawn (plots.py) and rendered
as one HTML page from templates/report.html (page.py).

`make_report` is what `clesc report` and the demo run: judge where the data carries no verdicts,
compute the figures, write report.json, the PNGs and report.html.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def rates(settings: Any) -> dict[str, Any]:
    """Each pool's Rate (cost per hour and/or per annotation) from the settings (CLESC_RATE_*)."""
    from scripts.report.figures import Rate

    return {pool: Rate(currency=settings.currency, **rate) for pool, rate in settings.rates.items()}


def make_report(ds: Any, out: Path, *, rates: Mapping[str, Any] | None = None, bootstrap: int = 1000, seed: int = 0,
                embeddings: bool = True, similarity_sample: int = 2000, judge: bool = True,
                progress: Callable[[str], None] | None = None, min_labels: int | None = None,
                generated_at: str | None = None) -> tuple[dict[str, Any], list[Path]]:
    """(figures, files written) for the Dataset `ds`, into the folder `out`.

    `judge`: run the rules judge where the data carries no verdicts (a CLESC file, exports of unjudged
    projects); `embeddings`: the semantic similarity of the pools' words (all-MiniLM-L6-v2) on a
    sample of `similarity_sample` clips; `min_labels`: annotations a worker needs to be ranked
    (default figures.MIN_LABELS_TO_RANK); `generated_at`: the report's time (default now, UTC).
    """
    import gc
    from datetime import datetime, timezone
    from functools import partial

    from scripts.pools.verdicts import with_rules_verdicts
    from scripts.report.figures import MIN_LABELS_TO_RANK, build_report
    from scripts.report.page import write_report

    similarity = None
    if embeddings:
        from scripts.stats.embeddings import pool_similarity

        similarity = partial(pool_similarity, sample=similarity_sample, seed=seed)
    ds = with_rules_verdicts(ds) if judge else ds
    gc.freeze()  # the data is kept to the end: the collector need not walk its million objects again
    figures = build_report(ds, rates=rates, bootstrap=bootstrap, seed=seed, similarity=similarity, progress=progress,
                           min_labels=MIN_LABELS_TO_RANK if min_labels is None else min_labels,
                           generated_at=generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return figures, write_report(figures, out)
