"""Child processes of the real parts: where their binaries are cached, start one with a kept log, wait until
it serves, stop it, read its log's tail.

Contract:
- ``cache_root()`` is the directory the ``hack/setup-*.sh`` scripts build and cache binaries in.
- ``spawn_logged(name, argv, log, ...)`` appends a line ``==== HH:MM:SS starting <name>: <argv>`` to
  ``log``, then starts ``argv`` with stdin closed and stdout+stderr appended to ``log``. With
  ``death_signal`` the kernel sends that signal to the child when the thread that forked it dies (see
  ``parent_death_hook``). Raises ``OSError`` when ``argv`` cannot be run; callers turn it into their own
  error with a hint.
- ``wait_until(check, what, proc=, log=, timeout=, error=)`` polls ``check`` every 0.2 s and returns once
  it is true; ``check`` raising OSError, URLError, ValueError or KeyError counts as "not yet". It raises
  ``error`` with the tail of ``log`` when ``proc`` exits first or ``timeout`` seconds pass.
- ``stop_process(proc, grace=)`` sends SIGTERM, then SIGKILL after ``grace`` seconds, and reaps the
  process; nothing happens when ``proc`` is None or has already exited.
- ``tail(path, lines)`` is the last lines of a log file ('' when it cannot be read).
- ``RealPart`` is the lifecycle of a part with a work directory: ``start()`` runs ``_start()`` and records
  ``start_seconds``, or runs ``_shutdown()`` and re-raises when starting fails; ``stop(keep_workdir=False)``
  runs ``_shutdown()`` and removes the work directory unless kept. As a context manager it starts, and stops
  at the end, keeping the work directory (logs) when the block raised.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

TAIL_BYTES = 400_000


def cache_root() -> Path:
    """The cache directory ``hack/setup-envtest.sh`` and ``hack/setup-envoy-gateway.sh`` write to."""
    if env := os.environ.get("AIGW_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "ai-gateway-py"


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (of its last ``TAIL_BYTES`` bytes); '' when unreadable."""
    try:
        data = path.read_bytes()[-TAIL_BYTES:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def parent_death_hook(death_signal: signal.Signals) -> Callable[[], None] | None:
    """``preexec_fn`` that asks the kernel to send ``death_signal`` to the child when its parent thread dies
    (PR_SET_PDEATHSIG), so a killed pytest leaves no process behind.

    The signal fires when the *thread* that forked exits, so the hook is given only on the main thread (a
    worker thread of ``asyncio.to_thread`` may exit long before the child should stop): None elsewhere.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def die_with_parent() -> None:
        # Runs in the child between fork and exec.
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, death_signal)  # 1 = PR_SET_PDEATHSIG

    return die_with_parent


def spawn_logged(
    name: str,
    argv: list[str],
    log: Path,
    *,
    death_signal: signal.Signals,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output appended to ``log`` after a ``starting`` line; raise OSError if it can't
    be run. ``new_session`` puts it in its own session (and process group)."""
    with log.open("ab") as out:
        out.write(f"==== {time.strftime('%H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=new_session,
            preexec_fn=parent_death_hook(death_signal),
        )


def wait_until(
    check: Callable[[], bool],
    what: str,
    *,
    proc: subprocess.Popen[bytes] | None,
    log: Path,
    timeout: float,
    error: Callable[[str], Exception],
    tail_lines: int = 60,
) -> None:
    """Poll ``check`` until it is true; raise ``error`` (with ``log``'s tail) if ``proc`` exits or time runs
    out. The process is named after the log file's stem."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise error(
                f"{log.stem} exited with code {proc.returncode} while waiting for {what}; "
                f"last lines of {log}:\n{tail(log, tail_lines)}"
            )
        try:
            if check():
                return
            last_error = "not ready yet"
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last_error = repr(e)
        time.sleep(0.2)
    raise error(
        f"timed out after {timeout:.0f} s waiting for {what} ({last_error}); "
        f"last lines of {log}:\n{tail(log, tail_lines)}"
    )


def stop_process(
    proc: subprocess.Popen[bytes] | None, *, grace: float, kill_wait: float | None = None
) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` seconds, then wait for it (at most ``kill_wait`` seconds
    after the SIGKILL; None: as long as it takes). Nothing when ``proc`` is None or has exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=kill_wait)


class RealPart:
    """The lifecycle of a real part with a work directory; subclasses give ``_start`` and ``_shutdown``."""

    workdir: Path
    start_seconds: float = 0.0

    def _start(self) -> None:
        """Bring the part up; raise when it cannot."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Stop whatever runs and release what was taken; safe to call on a part that is partly started."""
        raise NotImplementedError

    def start(self) -> Self:
        """``_start()``, timed into ``start_seconds``; on failure ``_shutdown()`` and the error propagates."""
        began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self._shutdown()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, *, keep_workdir: bool = False) -> None:
        """``_shutdown()``; remove the work directory (logs included) unless ``keep_workdir``."""
        self._shutdown()
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_workdir=exc is not None)
