"""Writing files so that a reader never sees half of one."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (same suffix, so writers that add one do not); when the block
    succeeds it replaces ``path`` in one rename, when it fails it is removed and ``path`` is untouched.

    Concurrent runs (multirun jobs, DDP ranks) and crashes mid-write therefore never leave a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; the result should read like any other file
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def folder_write_problem(folder: str | os.PathLike) -> str | None:
    """Create ``folder`` if needed and write a file in it; why that failed (the OS's words), or None. An output
    folder that cannot be written otherwise fails at the first file written into it, after the model was built."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return str(error.strerror or error)
    return None
