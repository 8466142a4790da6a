"""Benchmarks: scripts that measure and print figures (never assertions), each next to its baseline.

    .venv/bin/python -m scripts.bench NAME [OPTIONS]     (NAME: see `python -m scripts.bench --help`)

Each benchmark is a module with a `main(argv)`; `synthetic.py` makes the synthetic datasets they (and some
tests) use, and `annotators.py` is the simulated project of the judge's benchmarks (persistent annotator types).
"""
