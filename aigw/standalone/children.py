"""Child processes of ``aigw run``: started in their own process group, logged line by line, always stopped.

Contract:
* every child runs in a new process group, so a terminal's Ctrl-C reaches only ``aigw``, which then stops
  the children in reverse start order (SIGTERM to the group, SIGKILL after a grace period): none is left;
* on Linux every child also gets ``PR_SET_PDEATHSIG=SIGTERM``: if ``aigw`` itself is killed with SIGKILL, the
  kernel still stops the children;
* Envoy stays a child of the long-lived ``aigw`` process (Envoy exits when the process that launched it goes
  away through a shell or a session leader);
* a child's stdout and stderr are merged and logged under the logger ``<name>``, at the level the line
  starts with (its own timestamp removed, credentials redacted: ``redact``), and the last lines are kept for
  error messages.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aigw.standalone.redact import Redactor

log = logging.getLogger("aigw.children")

_PR_SET_PDEATHSIG = 1
_LEADING_TIMESTAMP = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?\]?\s*")
"""A child's own timestamp at the start of a line: our log line has one already."""


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGTERM the child when this process dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_LEADING_LEVEL = re.compile(r"^\[?(?P<level>[A-Za-z]+)\]?\s+")


def split_level(line: str) -> tuple[int, str]:
    """A child's line as ``(logging level, text)``: a leading ``INFO``/``[warning]`` becomes the level.

    Lines without one (Envoy's access log) are INFO.
    """
    m = _LEADING_LEVEL.match(line)
    if m and (level := _LEVELS.get(m.group("level").lower())) is not None:
        return level, line[m.end() :]
    return logging.INFO, line


@dataclass(kw_only=True)
class Child:
    """A running child process and the tail of its output."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=80))
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def tail_text(self, *, lines: int = 30) -> str:
        """The last ``lines`` lines the child printed."""
        return "\n".join(list(self.tail)[-lines:])

    def stop(self, *, grace: float = 5.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds; return the exit code."""
        if self.alive():
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop in %.0fs: killing it", self.name, self.pid, grace)
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Anything the child left in its group (it should have none) goes too.
        _signal_group(self.proc.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return self.proc.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def spawn(
    *,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    echo: bool = True,
) -> Child:
    """Start ``argv`` as a child in its own process group and log its output under ``name``.

    Must be called from the main thread (``PR_SET_PDEATHSIG`` is tied to the thread that forked). With
    ``echo=False`` the output is only kept in the child's tail (shown when it fails), not logged.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        process_group=0,
        preexec_fn=_pdeathsig_preexec(),  # only prctl, preloaded: takes no lock
    )
    child = Child(name=name, argv=list(argv), proc=proc)
    child_log = logging.getLogger(name)
    redact = Redactor()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = redact(_LEADING_TIMESTAMP.sub("", raw.decode(errors="replace").rstrip()))
            if not line:
                continue
            child.tail.append(line)
            level, text = split_level(line)
            if echo and text:
                child_log.log(level, "%s", text)

    child._reader = threading.Thread(target=pump, name=f"log-{name}", daemon=True)
    child._reader.start()
    log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
    return child


class Children:
    """The set of children of one ``aigw run``, stopped together in reverse start order."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def add(self, child: Child) -> Child:
        self._children.append(child)
        return child

    def replace(self, old: Child, new: Child) -> None:
        """Put ``new`` where ``old`` was (same stop order)."""
        self._children[self._children.index(old)] = new

    def remove(self, child: Child) -> None:
        """Forget ``child`` (after stopping it)."""
        if child in self._children:
            self._children.remove(child)

    def __iter__(self) -> collections.abc.Iterator[Child]:
        return iter(list(self._children))

    def dead(self) -> list[Child]:
        """Children that exited."""
        return [c for c in self._children if not c.alive()]

    def stop_all(self, *, grace: float = 5.0) -> None:
        """Stop every child, newest first; never raises."""
        for child in reversed(self._children):
            try:
                code = child.stop(grace=grace)
                log.debug("stopped %s (pid %d), exit %s", child.name, child.pid, code)
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("stopping %s", child.name)
        self._children.clear()


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
