"""Simulated vLLM replicas (``aigw-sim``) as child processes, one per replica, on their own loopback address.

Replicas of one pool listen on the same port at different addresses (``127.0.0.<n>``), as pods of a
Deployment do, so an InferencePool's single target port reaches all of them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.realparts.ports import common_port, tcp_open
from tests.realparts.processes import RealPart, spawn_logged, stop_process, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


class SimulatorError(RuntimeError):
    """A simulator replica did not start."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(eq=False)
class SimReplicas(RealPart):
    """``len(ips)`` replicas of ``config`` (a YAML file; None: the defaults), named ``<name>-<n>``.

    ``restart()`` gives fresh replicas (empty queues and caches) on the same addresses.
    """

    ips: list[str]
    config: Path | None = None
    name: str = "sim"
    port: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aigw-sim-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def endpoints(self) -> list[Endpoint]:
        return [Endpoint(ip, self.port) for ip in self.ips]

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = common_port(self.ips)
        for i, ip in enumerate(self.ips):
            argv = [
                sys.executable,
                "-m",
                "aigw.sim",
                "--listen",
                f"{ip}:{self.port}",
                "--name",
                f"{self.name}-{i + 1}",
            ]
            if self.config is not None:
                argv += ["--config", str(self.config)]
            log = self.workdir / f"{self.name}-{i + 1}.log"
            try:
                proc = spawn_logged(
                    f"{self.name}-{i + 1}", argv, log, death_signal=signal.SIGKILL, cwd=REPO_ROOT
                )
            except OSError as e:
                raise SimulatorError(f"cannot start {argv[0]}: {e}") from e
            self.procs.append(proc)
        for proc, ep in zip(self.procs, self.endpoints, strict=True):
            wait_until(
                lambda ep=ep: tcp_open(ep.ip, ep.port),  # type: ignore[misc]
                f"simulator on {ep}",
                proc=proc,
                log=self.workdir / f"{self.name}-{self.procs.index(proc) + 1}.log",
                timeout=30,
                error=SimulatorError,
            )

    def _shutdown(self) -> None:
        for proc in self.procs:
            stop_process(proc, grace=5)
        self.procs = []

    def restart(self) -> None:
        """Stop every replica and start fresh ones on the same addresses and port."""
        self._shutdown()
        self._start()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]
