"""Atomic file replacement, so that a reader (the ext_proc, Envoy's file watcher) never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` by a rename in the same directory; do nothing if it already holds it.

    Returns True when the file was (re)written. The rename is what Envoy's filesystem xDS watcher and the
    ext_proc's reloader react to, so an unchanged file is deliberately left untouched.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
