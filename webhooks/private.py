"""Files and folders only their owner may read: CLESC_HOME, Label Studio's data dir, the databases.

They hold what must not leak to other local users: LS's database (every API token, the webhook
headers with our secret), LS's `.env` (its SECRET_KEY), the demo's credentials and service secret,
the store and the queue. Folders are 0700, files 0600; existing ones are tightened when we meet them.

>>> import tempfile, stat
>>> home = private_dir(Path(tempfile.mkdtemp()) / "home")
>>> oct(stat.S_IMODE(home.stat().st_mode)), oct(stat.S_IMODE(private_file(home / "db").stat().st_mode))
('0o700', '0o600')
"""

from __future__ import annotations

from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077
"""The umask of the processes we start that write secrets (Label Studio): what they create is private."""


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (created with its parents, or tightened)."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read (created empty, or tightened); its folder must exist."""
    path.touch(mode=FILE_MODE, exist_ok=True)
    path.chmod(FILE_MODE)
    return path


def tighten(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Make the files in `folder` that match `patterns` owner-only (files written by older versions, or by a
    process started without our umask); the paths tightened."""
    done = []
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_file() and path.stat().st_mode & 0o077:
                path.chmod(FILE_MODE)
                done.append(path)
    return done
