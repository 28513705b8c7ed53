"""Long-running local processes of the e2e harness (our controller, our ext_proc, fake upstreams).

Contract: ``LoggedProcess(name, argv, log_dir).start()`` runs ``argv`` with stdout+stderr appended to
``<log_dir>/<name>.log``, in its own session, killed by the kernel if pytest dies (PR_SET_PDEATHSIG).
``wait_tcp(host, port)`` returns once the port accepts connections and raises (with the log's tail) if the
process exits first or the deadline passes. ``stop()`` sends SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.realparts.ports import tcp_open
from tests.realparts.processes import spawn_logged, stop_process, tail, wait_until


class ProcessError(RuntimeError):
    """A harness process failed to start or died; the message carries its log's tail."""


class LoggedProcess:
    """One child process with a kept log. See the module docstring."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LoggedProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.proc = spawn_logged(
                self.name, self.argv, self.log, death_signal=signal.SIGTERM, env=self.env, new_session=True
            )
        except OSError as e:
            raise ProcessError(f"cannot run {self.name} ({self.argv[0]}): {e}") from e
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise ``ProcessError`` with the log's tail when the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessError(
                f"{self.name} exited with code {self.proc.returncode}; last lines of {self.log}:\n"
                f"{tail(self.log, 60)}"
            )

    def wait_tcp(self, host: str, port: int, timeout: float = 60) -> None:
        wait_until(
            lambda: tcp_open(host, port),
            f"{self.name} to listen on {host}:{port}",
            proc=self.proc,
            log=self.log,
            timeout=timeout,
            error=ProcessError,
        )

    def stop(self, grace: float = 15) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, grace=grace)
