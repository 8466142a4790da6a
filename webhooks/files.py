"""Output files that appear whole or not at all, and never overwrite what they were made from.

`write_whole(out, write, inputs=...)` lets `write` fill a temporary file next to `out`, then renames it
over `out`: a run that fails (a full disk, a file-size limit, an error half-way) leaves the previous `out`
as it was and no temporary file behind. It refuses an `out` that is one of the inputs (a judge run over
its own export would replace it) or that is not a regular file (a directory, a device such as /dev/full
or a pipe would be replaced by the rename).

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> out = folder / "verdicts.json"
>>> write_whole(out, lambda tmp: tmp.write_text("[]"))
>>> write_whole(out, lambda tmp: 1 / 0)
Traceback (most recent call last):
...
ZeroDivisionError: division by zero
>>> out.read_text(), sorted(p.name for p in folder.iterdir())
('[]', ['verdicts.json'])
>>> write_whole(out, lambda tmp: tmp.write_text("{}"), inputs=[out])
Traceback (most recent call last):
...
ValueError: ... is also an input: write the output somewhere else
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(out: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """`out` as a Path, if a run may write it; ValueError says why not."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise ValueError(f"{out} is not a regular file (a directory, a device or a pipe): give a file name")
        for source in inputs:
            if Path(source).exists() and os.path.samefile(out, source):
                raise ValueError(f"{out} is also an input: write the output somewhere else")
    return out


def write_whole(out: str | Path, write: Callable[[Path], object], *, inputs: Iterable[str | Path] = ()) -> None:
    """Run `write(tmp)` on a temporary file next to `out`, then rename it to `out` (see the module).

    ValueError for an `out` it may not write or an OSError while writing (the message names `out`);
    any other error of `write` is raised as it is. Either way the previous `out` is untouched."""
    out = check_output(out, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    except OSError as e:
        raise ValueError(f"{out}: cannot be written ({e.strerror or e})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # as a plainly created file would be (mkstemp makes it 0600)
        write(tmp)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{out}: could not be written ({e.strerror or e}); the previous file is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
