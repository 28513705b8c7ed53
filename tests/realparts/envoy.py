"""Run the real Envoy binary on a static bootstrap: validate it, or start it and wait until it is live."""

from __future__ import annotations

import contextlib
import copy
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.realparts.envoy_binary import envoy_binary
from tests.realparts.processes import stop_process, tail


@dataclass(frozen=True, kw_only=True)
class RunningEnvoy:
    """A started Envoy: its admin base URL (``http://127.0.0.1:PORT``), its log file and its process id."""

    admin_url: str
    log_path: Path
    pid: int

    def stats(self) -> dict[str, int]:
        """Counters and gauges from the admin ``/stats`` endpoint, as ``name -> value``."""
        with urllib.request.urlopen(f"{self.admin_url}/stats", timeout=5) as resp:
            text = resp.read().decode()
        out: dict[str, int] = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            with contextlib.suppress(ValueError):
                out[name] = int(value)
        return out


def _with_loopback_admin(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` whose admin listens on 127.0.0.1 with a kernel-chosen port."""
    cfg = copy.deepcopy(config)
    admin = cfg.setdefault("admin", {})
    admin["address"] = {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
    return cfg


def _write_bootstrap(config: dict[str, Any], *, workdir: Path, name: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def validate_envoy_config(config: dict[str, Any], *, workdir: Path) -> None:
    """Run ``envoy --mode validate`` on ``config``; raise AssertionError with Envoy's output on failure."""
    path = _write_bootstrap(_with_loopback_admin(config), workdir=workdir, name="envoy-validate.yaml")
    proc = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"envoy rejected the config (exit {proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
        )


def _admin_ready(admin_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{admin_url}/ready", timeout=1) as resp:
            return bool(resp.status == 200 and resp.read().strip() == b"LIVE")
    except OSError:
        return False


@contextlib.contextmanager
def running_envoy(
    config: dict[str, Any], *, workdir: Path, ready_timeout: float = 30.0, log_level: str = "info"
) -> Iterator[RunningEnvoy]:
    """Start Envoy (``--concurrency 1``) on ``config`` and yield once admin ``/ready`` says LIVE.

    The admin listener is forced to 127.0.0.1 on an ephemeral port (read back via ``--admin-address-path``).
    Envoy is stopped (SIGTERM, then SIGKILL) when the block exits; its log stays at ``workdir/envoy.log``.
    Raises AssertionError with the log's tail if Envoy exits or is not live within ``ready_timeout`` seconds.
    """
    path = _write_bootstrap(_with_loopback_admin(config), workdir=workdir, name="envoy.yaml")
    admin_path = workdir / "envoy-admin-address"
    admin_path.unlink(missing_ok=True)
    log_path = workdir / "envoy.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                str(envoy_binary()),
                "-c",
                str(path),
                "--concurrency",
                "1",
                "--admin-address-path",
                str(admin_path),
                "-l",
                log_level,
                "--log-path",
                str(log_path),
                "--disable-hot-restart",
                # access logs reach the log file within 100 ms, so tests can read them (default 10 s)
                "--file-flush-interval-msec",
                "100",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        admin_url = ""
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"envoy exited with {proc.returncode}:\n{_log_tail(log_path)}")
            if not admin_url and admin_path.exists() and (addr := admin_path.read_text().strip()):
                admin_url = f"http://{addr}"
            if admin_url and _admin_ready(admin_url):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"envoy not live after {ready_timeout}s:\n{_log_tail(log_path)}")
            time.sleep(0.05)
        yield RunningEnvoy(admin_url=admin_url, log_path=log_path, pid=proc.pid)
    finally:
        stop_process(proc, grace=10, kill_wait=10)


def _log_tail(path: Path) -> str:
    return tail(path, 60) or "(no log)"
