"""CLESC_HOME, the store and the queue are owner-only (issue 14, item 10): a real SQLite store and Huey queue."""

from __future__ import annotations

import stat
from pathlib import Path

from webhooks.private import tighten
from webhooks.queue import JobQueue
from webhooks.settings import Settings
from webhooks.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_store_and_queue_are_owner_only(tmp_path):
    home = tmp_path / "home"
    settings = Settings.from_env({"CLESC_HOME": str(home)})
    queue = JobQueue.from_settings(settings)
    store = Store(settings.database_url)
    store.add_event(delivery_key="k", source="webhook", action="ANNOTATION_CREATED", project_id=1, task_id=2,
                    annotation={"id": 3})
    queue.judge(1, 2)
    assert _mode(home) == 0o700
    files = sorted(home.glob("*.db*"))
    assert {p.name for p in files} >= {"clesc.db", "queue.db", "clesc.db-wal"}  # WAL files written too
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}


def test_an_existing_home_and_files_are_tightened(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "clesc.db").touch(mode=0o644)
    Store(f"sqlite:///{home / 'clesc.db'}")
    assert _mode(home / "clesc.db") == 0o600
    JobQueue.from_settings(Settings.from_env({"CLESC_HOME": str(home)}))
    assert _mode(home) == 0o700
    (home / ".env").write_text("SECRET_KEY=x\n")
    (home / ".env").chmod(0o644)
    assert tighten(home, (".env", "nothing-*")) == [home / ".env"] and _mode(home / ".env") == 0o600
