"""The docs say what the code does: every `clesc` command and every CLESC_* setting is in the README,
and every package says in its docstring what it holds and what it may import (and keeps to it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import click
import pytest
import typer

from scripts.cli import app
from webhooks.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "clesc") -> Iterator[str]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}"


def test_every_command_is_in_the_readme():
    names = sorted(commands(typer.main.get_command(app)))
    assert len(names) >= 18
    missing = [n for n in names if f"`{n}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


class Recording(dict):
    """An environment that remembers every variable the settings ask for."""

    def __init__(self):
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def test_every_setting_is_in_the_readme_and_every_readme_setting_exists():
    env = Recording()
    Settings.from_env(env)
    read = {k for k in env.asked if k.startswith("CLESC_")}
    assert len(read) >= 40
    missing = sorted(k for k in read if k not in README)
    assert not missing, f"settings read by webhooks/settings.py but missing from README.md: {missing}"
    documented = set(re.findall(r"CLESC_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])", README))  # CLESC_RATE_* names a family
    unknown = sorted(documented - read)
    assert not unknown, f"README.md names settings the code never reads: {unknown}"


PACKAGES = {
    "label_config": set(),
    "ml_backend": {"label_config"},
    "webhooks": {"label_config"},
    "scripts": {"label_config", "ml_backend", "webhooks"},
}


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_arrows_point_inward(package):
    own = set(PACKAGES)
    for path in (PROJECT_ROOT / package).rglob("*.py"):
        wrong = (_imports(path) & own) - PACKAGES[package] - {package}
        assert not wrong, f"{path.relative_to(PROJECT_ROOT)} imports {sorted(wrong)}"


def test_every_package_says_what_it_holds_and_may_import():
    for init in sorted(PROJECT_ROOT.glob("*/**/__init__.py")):
        if any(part.startswith(".") or part == "tests" for part in init.relative_to(PROJECT_ROOT).parts):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert doc, f"{init.relative_to(PROJECT_ROOT)} has no docstring"
        if init.parent.parent == PROJECT_ROOT:
            assert "May import" in doc, f"{init.relative_to(PROJECT_ROOT)}: say what the package may import"


def test_no_import_cycle_between_modules():
    """Module-level imports among the project's modules form no cycle (function-level imports included)."""
    modules = {}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps - {n for n in deps if name.startswith(n + ".")}  # a module may use its own package

    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
