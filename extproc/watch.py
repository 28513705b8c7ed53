"""Keep the serving snapshot current: reload the config file when it (or a credential file) changes.

A file that fails to load never replaces the serving snapshot: the error is logged and counted, and the last
good snapshot keeps serving. The swap is one attribute assignment, so a request sees either the old
snapshot or the new one, never a mix (each request also keeps the snapshot it started with).
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
    except (OSError, ValueError):  # ValueError: a path with a NUL byte
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class ConfigWatcher:
    """Polls ``path`` and the credential files of the last attempt every ``interval`` s and reloads on change.

    Whatever goes wrong while loading (a ``ConfigError``, or anything unexpected such as a decode error) is a
    config error: logged, counted in ``aigw_extproc_config_reloads_total{result="error"}``, kept in
    ``last_error``; the serving snapshot stays, and the watcher keeps polling, so a later fix loads."""

    def __init__(self, *, path: Path, holder: ConfigHolder, metrics: Metrics, interval: float = 0.25) -> None:
        self._path = path
        self._holder = holder
        self._metrics = metrics
        self._interval = interval
        self._watched: tuple[Path, ...] = (path,)
        self._fingerprint: _Fingerprint | None = None
        self.last_error: str | None = None
        """Why the last attempt failed; None after a successful load."""

    def _watch(self, *, credential_files: tuple[Path, ...], config_stat: tuple[int, int, int] | None) -> None:
        self._watched = (self._path, *credential_files)
        self._fingerprint = (config_stat, *(_stat(p) for p in credential_files))

    def load_once(self) -> bool:
        """Try to load the file now. True when a new snapshot is serving; False when unchanged or rejected."""
        config_stat = _stat(self._path)  # taken before reading: a change during the read reloads again
        try:
            snapshot = load_snapshot(self._path)
        except ConfigError as e:
            # watch the files that failed too (a credential file fixed later is a change), not the same bad
            # file on every tick
            self._watch(credential_files=e.files, config_stat=config_stat)
            self._failed(str(e))
            return False
        except Exception as e:  # the watcher must outlive any surprise in a file's contents
            self._watch(credential_files=(), config_stat=config_stat)
            log.exception("unexpected error loading filter config %s", self._path)
            self._failed(f"unexpected {type(e).__name__}: {e}")
            return False
        self.last_error = None
        self._metrics.config_last_error.set(0)
        self._metrics.config_reloads.labels("ok").inc()
        old = self._holder.current
        self._holder.replace(snapshot)
        self._watch(credential_files=snapshot.credential_files, config_stat=config_stat)
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

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        self._metrics.config_reloads.labels("error").inc()
        self._metrics.config_last_error.set(1)
        log.error(
            "filter config %s rejected, still serving hash=%s: %s",
            self._path,
            self._holder.current.content_hash or "(none)",
            reason,
        )

    def changed(self) -> bool:
        """True when the config file or a watched credential file differs from what the last attempt saw."""
        return tuple(_stat(p) for p in self._watched) != self._fingerprint

    async def run(self) -> None:
        """Poll until cancelled. Loading runs on the event loop: it is quick and keeps the swap race-free."""
        while True:
            await asyncio.sleep(self._interval)
            if self.changed():
                self.load_once()
