"""`python -m scripts.bench NAME [OPTIONS]`: run one benchmark (a module of this package with a main(argv))."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import scripts.bench as package


def benchmarks() -> dict[str, str]:
    """Benchmark name (module name with '-' for '_') -> module name: the modules with a `main(argv)`
    (read from their source: importing them all would load torch and PyAV for a --help)."""
    names = {}
    for info in pkgutil.iter_modules(package.__path__):
        source = Path(package.__path__[0], info.name + ".py")
        if not info.name.startswith("_") and "\ndef main(" in source.read_text():
            names[info.name.replace("_", "-")] = info.name
    return names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    found = benchmarks()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in found:
        print("usage: python -m scripts.bench NAME [OPTIONS]\nbenchmarks: " + ", ".join(sorted(found)))
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"scripts.bench.{found[argv[0]]}")
    module.main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
