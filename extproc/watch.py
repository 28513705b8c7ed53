"""Keep the serving snapshot current: reload the config file when it (or a credential file) changes.

A file that fails to load never replaces the serving snapshot: the error is logged and counted, and the last
good snapshot keeps serving. The swap is one attribute assignment, so a request sees either the old
snapshot or
the new one, never a mix (each request also keeps the snapshot it started with).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from extproc.metrics import Metrics
from extproc.snapshot import EMPTY_SNAPSHOT, ConfigError, Snapshot, load_snapshot

log = logging.getLogger(__name__)

_Fingerprint = tuple[tuple[int, int, int] | None, ...]


class ConfigHolder:
    """The snapshot being served. Read ``current``; only the watcher calls ``replace``."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot = EMPTY_SNAPSHOT) -> None:
        self.current = snapshot

    def replace(self, snapshot: Snapshot) -> None:
        self.current = snapshot


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a kubelet ..data swap changes the target's inode
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigWatcher:
    """Polls ``path`` and the snapshot's credential files every ``interval`` seconds and reloads on change."""

    def __init__(self, *, path: Path, holder: ConfigHolder, metrics: Metrics, interval: float = 0.25) -> None:
        self._path = path
        self._holder = holder
        self._metrics = metrics
        self._interval = interval
        self._fingerprint: _Fingerprint | None = None

    def _current_fingerprint(self) -> _Fingerprint:
        paths = (self._path, *self._holder.current.credential_files)
        return tuple(_stat(p) for p in paths)

    def load_once(self) -> bool:
        """Try to load the file now. True when a new snapshot is serving; False when unchanged or rejected."""
        fingerprint = (
            self._current_fingerprint()
        )  # taken before reading: a change during the read reloads again
        try:
            snapshot = load_snapshot(self._path)
        except ConfigError as e:
            self._fingerprint = fingerprint  # do not retry the same bad file on every tick
            self._metrics.config_reloads.labels("error").inc()
            self._metrics.config_last_error.set(1)
            log.error(
                "filter config %s rejected, still serving hash=%s: %s",
                self._path,
                self._holder.current.content_hash or "(none)",
                e,
            )
            return False
        self._metrics.config_last_error.set(0)
        self._metrics.config_reloads.labels("ok").inc()
        old = self._holder.current
        self._holder.replace(snapshot)
        self._fingerprint = (fingerprint[0], *(_stat(p) for p in snapshot.credential_files))
        self._metrics.set_config(
            version=snapshot.version, uuid=snapshot.uuid, content_hash=snapshot.content_hash
        )
        if old.content_hash != snapshot.content_hash:
            log.info(
                "filter config loaded from %s: version=%s uuid=%s hash=%s rules=%d",
                self._path,
                snapshot.version,
                snapshot.uuid,
                snapshot.content_hash,
                len(snapshot.rules),
            )
        return True

    def changed(self) -> bool:
        """True when the config file or a credential file differs from what was last loaded."""
        return self._current_fingerprint() != self._fingerprint

    async def run(self) -> None:
        """Poll until cancelled. Loading runs on the event loop: it is quick and keeps the swap race-free."""
        while True:
            await asyncio.sleep(self._interval)
            if self.changed():
                self.load_once()
