"""The `clesc` command and what it drives: the outer layer of clesc-studio.

- cli.py: the command (each command a thin call into one function below); wsgi.py: WSGI entries;
- labelstudio/: Label Studio adapters over the SDK (projects, tasks, users, webhooks; `clesc setup`);
- pools/: both pools' labels as one Dataset (dataset, sources), import, sync, pair links, export;
- stats/: agreement statistics, confidence intervals, Dawid-Skene, sentence embeddings;
- report/: the expert-vs-crowd report (figures, plots, the HTML page from templates/report.html);
- local/: local servers for the demo and the tests (Label Studio, PostgreSQL, Redis, vLLM), the demo, the
  sample clips, the real-speech corpus;
- bench/: benchmarks that print figures (`python -m scripts.bench NAME`).

May import: label_config, ml_backend, webhooks (arrows point inward); nothing imports scripts.
"""
