"""Start the real parts of a gateway for a test: fake upstreams, our ext_proc (as its own process) and Envoy.

``Gateway`` is what tests talk to: ``request`` sends HTTP through Envoy; ``apply`` writes a new filter config
and waits until the ext_proc reports serving it (its hash appears in the metrics).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from aigw.upstream import FakeUpstream, serve_in_thread
from tests.integration.extproc.bootstrap import gateway_bootstrap
from tests.realparts.envoy import RunningEnvoy, running_envoy
from tests.realparts.httpclient import Reply, request
from tests.realparts.ports import free_port
from tests.realparts.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class ExtProcProcess:
    """``python -m extproc.main`` as a child process."""

    proc: subprocess.Popen[bytes]
    grpc_port: int
    metrics_url: str
    log_path: Path

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(sample_labels.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_for_metric(
        self, name: str, value: float, *, within: float, what: str | None = None, **labels: str
    ) -> None:
        """Poll ``metric(name, **labels)`` every 50 ms until it equals ``value``; raise AssertionError
        (``what``, or the metric and the value it never reached) after ``within`` seconds."""
        deadline = time.monotonic() + within
        while self.metric(name, **labels) != value:
            if time.monotonic() > deadline:
                raise AssertionError(what or f"{name}{labels} did not reach {value} within {within}s")
            time.sleep(0.05)


@contextlib.contextmanager
def running_extproc(
    *, config_path: Path, workdir: Path, seed: int | None = 1234, log_level: str = "info"
) -> Iterator[ExtProcProcess]:
    """Start the ext_proc on free loopback ports and wait for its /health; stop it (SIGTERM) afterwards."""
    grpc_port, metrics_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "extproc.log"
    cmd = [
        sys.executable,
        "-m",
        "extproc.main",
        "--config",
        str(config_path),
        "--listen",
        f"127.0.0.1:{grpc_port}",
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
        "--reload-interval",
        "0.1",
        "--grace",
        "2",
        "--log-level",
        "info",
    ]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
    handle = ExtProcProcess(
        proc=proc, grpc_port=grpc_port, metrics_url=f"http://127.0.0.1:{metrics_port}", log_path=log_path
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"ext_proc exited with {proc.returncode}:\n{log_path.read_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{handle.metrics_url}/health", timeout=1) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"ext_proc not healthy after 30s:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield handle
    finally:
        stop_process(proc, grace=10)


@dataclass
class Gateway:
    """A running Envoy + ext_proc + fake upstreams, and the config file the ext_proc watches."""

    port: int
    config_path: Path
    envoy: RunningEnvoy
    extproc: ExtProcProcess
    upstreams: dict[str, FakeUpstream] = field(default_factory=dict)

    def request(
        self,
        path: str,
        *,
        body: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        """One HTTP/1.1 request through Envoy (a fresh connection each time)."""
        if json is not None:
            body = orjson.dumps(json)
        return request(self.port, path, body=body, headers=headers, method=method, timeout=timeout)

    def chat(self, model: str, *, headers: Mapping[str, str] | None = None, **fields: Any) -> Reply:
        return self.request(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], **fields},
            headers=headers,
        )

    def apply(self, config: Mapping[str, Any], *, timeout: float = 10.0) -> str:
        """Write ``config`` atomically (temp file + rename) and wait until the ext_proc serves it. Its
        hash."""
        raw = yaml.safe_dump(dict(config), sort_keys=False).encode()
        write_atomically(self.config_path, raw)
        digest = hashlib.sha256(raw).hexdigest()[:16]
        self.wait_for_hash(digest, timeout=timeout)
        return digest

    def wait_for_hash(self, digest: str, *, timeout: float = 10.0) -> None:
        self.extproc.wait_for_metric(
            "aigw_extproc_config_info",
            1,
            within=timeout,
            what=f"ext_proc did not load config {digest} within {timeout}s",
            hash=digest,
        )


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def running_gateway(
    *,
    workdir: Path,
    config: Callable[[Mapping[str, int]], Mapping[str, Any]],
    upstream_names: list[str],
    backends: Mapping[str, str],
) -> Iterator[Gateway]:
    """Upstreams named ``upstream_names``; ``backends`` maps a backend name to the upstream serving it;
    ``config`` builds the first filter config from the upstreams' ports (by name)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "filter-config.yaml"
    with contextlib.ExitStack() as stack:
        upstreams = {n: stack.enter_context(serve_in_thread(name=n)) for n in upstream_names}
        ports = {n: u.port for n, u in upstreams.items()}
        config_path.write_text(yaml.safe_dump(dict(config(ports)), sort_keys=False))
        ext = stack.enter_context(running_extproc(config_path=config_path, workdir=workdir))
        port = free_port()
        bootstrap = gateway_bootstrap(
            listen_port=port,
            ext_proc_port=ext.grpc_port,
            backends={b: upstreams[u].port for b, u in backends.items()},
        )
        envoy = stack.enter_context(running_envoy(bootstrap, workdir=workdir))
        yield Gateway(port=port, config_path=config_path, envoy=envoy, extproc=ext, upstreams=upstreams)


def until(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``cond`` every 50 ms; fail with ``what`` if it does not hold within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def scraped() -> None:
    """Give the ext_proc's scraper (every 50 ms) time to see what the test just saw on a replica: a
    propagation wait, not an assertion."""
    time.sleep(0.5)


def gateway_in_front(
    stack: contextlib.ExitStack,
    *,
    config_path: Path,
    workdir: Path,
    backends: Mapping[str, int],
    foreign_routes: Sequence[Mapping[str, Any]] = (),
) -> Gateway:
    """Our ext_proc serving ``config_path`` and Envoy in front of it (``backends``: Envoy clusters by backend
    name, ports on 127.0.0.1; ``foreign_routes``: see ``gateway_bootstrap``), both stopped when ``stack``
    closes."""
    ext = stack.enter_context(running_extproc(config_path=config_path, workdir=workdir))
    port = free_port()
    boot = gateway_bootstrap(
        listen_port=port, ext_proc_port=ext.grpc_port, backends=backends, foreign_routes=foreign_routes
    )
    envoy = stack.enter_context(running_envoy(boot, workdir=workdir))
    return Gateway(port=port, config_path=config_path, envoy=envoy, extproc=ext)
