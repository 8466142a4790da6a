"""Real PostgreSQL and Redis servers from the Debian packages (`postgresql`, `redis-server`), for the tests
and benchmarks: on loopback, on a free port, with a temporary data dir, stopped by PID (never by name).

PostgreSQL refuses to run as root: as root, its data dir is owned by the `postgres` user the Debian
package creates and the server runs as that user (setpriv, no intermediate process). Both servers
keep their data across a stop and start of the same object (the fault tests restart them mid-run).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.local.process import ServerError, ServerProcess, free_port

PG_USER = "clesc"
"""The database superuser the test clusters are created with (trust authentication on loopback only)."""


class DatabaseServerError(ServerError):
    pass


def postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries Debian installed (/usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise DatabaseServerError("PostgreSQL is not installed: `make test-deps` installs Debian's postgresql")
    return found[-1].parent


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # created by Debian's postgresql package
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


class PostgresServer(ServerProcess):
    """One PostgreSQL cluster in a temporary dir: `initdb` on the first start, then `postgres` on 127.0.0.1."""

    name = "PostgreSQL"
    error = DatabaseServerError

    def __init__(self, base: Path | None = None, port: int | None = None):
        # As root the cluster lives in a dir of its own under /tmp that the postgres user can reach
        # (pytest's tmp dirs are 0700 root).
        self.base = Path(tempfile.mkdtemp(prefix="clesc-pg-")) if base is None else base
        self.data = self.base / "data"
        super().__init__(port or free_port(), self.base / "postgres.log")

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.base, self.data):
                shutil.chown(path, "postgres", "postgres")
        r = subprocess.run([*_as_postgres_user(), str(postgres_bindir() / "initdb"), "-D", str(self.data),
                            "-U", PG_USER, "--auth=trust", "--encoding=UTF8", "--no-instructions"],
                           capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise DatabaseServerError(f"initdb failed: {r.stderr or r.stdout}")

    def command(self) -> list[str]:
        return [*_as_postgres_user(), str(postgres_bindir() / "postgres"), "-D", str(self.data),
                "-p", str(self.port), "-k", str(self.data), "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=300", "-c", "fsync=on", "-c", "shared_buffers=128MB"]

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname=database,
                               connect_timeout=3, autocommit=True)

    def healthy(self) -> bool:
        with self._connect() as c:
            c.execute("SELECT 1")
        return True

    def create_database(self, name: str) -> str:
        """A new empty database (dropped first if it exists); its SQLAlchemy URL."""
        with self._connect() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self, timeout: float = 120.0) -> None:
        self._initdb()
        super().start(timeout)

    def remove(self) -> None:
        """Stop it and delete its data dir."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer(ServerProcess):
    """One redis-server on 127.0.0.1 with an append-only file fsynced on every write (a restart loses nothing)."""

    name = "Redis"
    error = DatabaseServerError

    def __init__(self, base: Path, port: int | None = None):
        self.base = base
        super().__init__(port or free_port(), base / "redis.log")

    def command(self) -> list[str]:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(exe).exists():
            raise DatabaseServerError("Redis is not installed: `make test-deps` installs Debian's redis-server")
        return [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--databases", "64"]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def healthy(self) -> bool:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())

    def start(self, timeout: float = 60.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        super().start(timeout)
