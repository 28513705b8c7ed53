"""Where the e2e harness keeps every process's log, and how a failed test shows them.

Contract: ``ARTIFACTS`` is this run's directory (``$AIGW_E2E_ARTIFACTS`` or ``/tmp/aigw-e2e/<timestamp>``);
processes log under it. ``register(name, paths)`` names a callable that lists log files; a failed test gets
the tail of each in its report and the directory's path. A session in which a test failed keeps the directory;
a passing one removes it unless ``AIGW_E2E_KEEP=1`` or the user named the directory. ``measure(name, value)``
records what a scenario measured; the session prints them all at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.realparts.processes import tail

ARTIFACTS = Path(os.environ.get("AIGW_E2E_ARTIFACTS") or f"/tmp/aigw-e2e/{time.strftime('%Y%m%d-%H%M%S')}")
KEEP_ALWAYS = bool(os.environ.get("AIGW_E2E_ARTIFACTS")) or os.environ.get("AIGW_E2E_KEEP") == "1"
"""A directory the user named is never removed; neither is any with ``AIGW_E2E_KEEP=1``."""
_SOURCES: dict[str, Callable[[], list[Path]]] = {}
MEASUREMENTS: dict[str, str] = {}
"""What the scenarios measured (``measure``), printed at the end of the session."""


def measure(name: str, value: object) -> None:
    """Record one measurement of a scenario, e.g. how long traffic took to follow a DNS change."""
    MEASUREMENTS[name] = str(value)


def register(name: str, paths: Callable[[], list[Path]]) -> None:
    """Name a source of log files (called lazily, when a test fails)."""
    _SOURCES[name] = paths


def unregister(name: str) -> None:
    _SOURCES.pop(name, None)


def log_sections(lines: int = 40) -> list[tuple[str, str]]:
    """``(title, tail)`` for every registered log file that has content."""
    out: list[tuple[str, str]] = [("e2e artifacts", f"all logs are kept under {ARTIFACTS}")]
    for name, paths in list(_SOURCES.items()):
        try:
            files = paths()
        except OSError:
            continue
        for path in files:
            text = tail(path, lines)
            if text:
                out.append((f"{name}: {path}", text))
    return out
