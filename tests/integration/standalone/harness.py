"""Run the real ``aigw run`` (``python -m aigw.cli run``) as a process, the way a user does, and talk to it.

``prepared_examples`` copies ``examples/standalone`` into a test directory with the demo upstream ports moved
to free ones (so a ``make run`` on the same machine does not collide). ``AigwRun`` starts the command, waits
for its ready banner, sends requests through its Envoy, reads its log, lists its process tree from
``/proc``, and stops it with a signal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.realparts.httpclient import Reply, request
from tests.realparts.ports import common_port, free_port
from tests.realparts.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples" / "standalone"
POOL_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
EXAMPLE_POOL_PORT = 18081
EXAMPLE_DIRECT_PORT = 18084
PORT_FLAGS = ("--port", "--admin-port", "--extproc-port", "--extproc-metrics-port")


@dataclass(frozen=True)
class Prepared:
    """A copy of the examples: its directory, the pool's port and the direct backend's port."""

    directory: Path
    pool_port: int
    direct_port: int


def prepared_examples(dest: Path) -> Prepared:
    """Copy the shipped examples to ``dest``, with free ports instead of 18081 and 18084 (nothing else)."""
    pool_port = common_port(POOL_HOSTS)
    direct_port = free_port()
    shutil.copytree(EXAMPLES, dest)
    for f in dest.glob("*.yaml"):
        text = f.read_text()
        text = text.replace(str(EXAMPLE_POOL_PORT), str(pool_port)).replace(
            str(EXAMPLE_DIRECT_PORT), str(direct_port)
        )
        f.write_text(text)
    return Prepared(directory=dest, pool_port=pool_port, direct_port=direct_port)


def children_of(pid: int) -> dict[int, int]:
    """``{child_pid: parent_pid}`` of every live process whose parent is ``pid`` or one of its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        parents[int(entry.name)] = int(fields[1])
    out: dict[int, int] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in out:
                out[child] = parent
                frontier.append(child)
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(gone)"


@dataclass
class AigwRun:
    """A running ``aigw run``; ``lines`` is its merged stdout and stderr so far."""

    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    workdir: Path
    lines: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, *, since: int = 0, timeout: float = 30.0) -> re.Match[str]:
        """Wait until a line (from index ``since`` on) matches ``pattern``; AssertionError with the log."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines[since:]:
                    if m := rx.search(line):
                        return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s; aigw output:\n{self.output()}")

    def mark(self) -> int:
        """The current number of output lines (pass as ``since`` to wait only for later lines)."""
        with self._lock:
            return len(self.lines)

    def request(
        self, path: str, *, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10.0
    ) -> Reply:
        data = orjson.dumps(body) if body is not None else None
        return request(self.port, path, body=data, headers=headers, timeout=timeout)

    def chat(self, model: str, **kw: Any) -> Reply:
        return self.request(
            "/v1/chat/completions",
            body={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            **kw,
        )

    def descendants(self) -> dict[int, int]:
        return children_of(self.proc.pid)

    def stop(self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def _aigw_run_argv(inputs: list[Path], *args: str) -> list[str]:
    """``python -m aigw.cli run INPUTS ARGS`` with this interpreter."""
    return [sys.executable, "-m", "aigw.cli", "run", *map(str, inputs), *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def aigw_run(inputs: list[Path], *, workdir: Path, extra_args: list[str] | None = None) -> Iterator[AigwRun]:
    """Start ``python -m aigw.cli run INPUTS`` on free ports and yield once it printed its banner.

    Whatever happens, the process is stopped at the end (SIGTERM, then SIGKILL of its whole tree).
    """
    ports = _free_ports()
    port, admin = ports["--port"], ports["--admin-port"]
    argv = _aigw_run_argv(inputs, *_port_args(ports), "--workdir", str(workdir), *(extra_args or []))
    proc = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    run = AigwRun(proc=proc, port=port, admin_port=admin, workdir=workdir)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            with run._lock:
                run.lines.append(raw.decode(errors="replace").rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        run.wait_for(r"^Edit an input file", timeout=60)
        yield run
    finally:
        tree = run.descendants()
        stop_process(proc, grace=20, kill_wait=10)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        reader.join(timeout=5)


def burst_upstream_names(run: AigwRun, model: str, *, n: int, concurrency: int = 12) -> list[str]:
    """Send ``n`` chat requests for ``model``, ``concurrency`` at a time, each long enough (64 tokens from the
    simulated replicas) to overlap the others; every one must succeed. The ``x-upstream-name`` of each.

    A load-aware picker may keep sequential identical requests on one idle replica (affinity); requests in
    flight together must spread."""
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}

    def one(_: int) -> str:
        r = run.request("/v1/chat/completions", body=body, timeout=60)
        assert r.status == 200, (r.status, r.body, run.output()[-3000:])
        return r.headers["x-upstream-name"]

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(n)))


def upstream_names(run: AigwRun, model: str, *, n: int) -> list[str]:
    """Send ``n`` chat requests for ``model``; every one must succeed. The ``x-upstream-name`` of each."""
    names = []
    for _ in range(n):
        r = run.chat(model)
        assert r.status == 200, (r.status, r.body, run.output()[-3000:])
        names.append(r.headers["x-upstream-name"])
    return names


def run_to_exit(
    inputs: list[Path], *, extra_args: list[str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``aigw run`` expecting it to exit by itself (a start-up error); its merged output is ``stdout``."""
    argv = _aigw_run_argv(inputs, *(extra_args or []))
    return subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        check=False,
    )


def _free_ports() -> dict[str, int]:
    """A free port for each of ``aigw run``'s port flags, by flag."""
    return {flag: free_port() for flag in PORT_FLAGS}


def _port_args(ports: dict[str, int]) -> list[str]:
    return [arg for flag, port in ports.items() for arg in (flag, str(port))]


def free_ports_args() -> list[str]:
    """``--port``/``--admin-port``/``--extproc-port``/``--extproc-metrics-port`` flags with free ports."""
    return _port_args(_free_ports())
