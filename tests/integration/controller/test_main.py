"""``aigw-controller`` as a user runs it: the process against the real API server, and its start-up checks."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from controller import main as controller_main
from controller.gateway import kinds
from controller.gateway.setup import missing_crds
from controller.runtime import KubeClient, Resource
from tests.integration.controller.conftest import apply_yaml, eventually, gateway_yaml
from tests.integration.controller.manifests import backend, docs, route, service
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer
from tests.realparts.ports import free_port

BOGUS = Resource("bogus.example.io", "v1", "widgets", "Widget")


async def test_missing_crds_are_named(control_plane: ControlPlane, api_client: object) -> None:
    kube = KubeClient(api_client)
    assert await missing_crds(kube, inference=True) == []
    assert await missing_crds(kube, inference=False, resources=(*kinds.REQUIRED, BOGUS)) == [
        "widgets.bogus.example.io (v1)"
    ]


async def test_exits_naming_the_inference_crds_when_they_are_missing(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(kinds, "INFERENCE", (BOGUS, kinds.INFERENCEPOOLS))
    args = controller_main.parse_args(
        ["--kubeconfig", str(control_plane.kubeconfig), "--enable-inference-extension"]
    )
    with caplog.at_level(logging.ERROR):
        assert await controller_main.run(args) == 2
    assert "widgets.bogus.example.io" in caplog.text
    assert "inference" not in caplog.text or "--enable-inference-extension" in caplog.text


def test_help_explains_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--enable-inference-extension", "--cluster-domain", "--dns-server", "--extproc-image",
        "--extproc-log-level", "--leader-elect", "--metrics-bind-address", "--health-probe-bind-address",
        "--watch-namespace", "--log-level", "--kubeconfig", "--extension-server-address", "--extproc-address",
        "--extension-ref-name",
    ):  # fmt: skip
        assert flag in out


async def test_the_process_serves_probes_and_reconciles(
    control_plane: ControlPlane, namespace: str, dns_server: DnsServer, tmp_path: Path
) -> None:
    health, metrics, ext = free_port(), free_port(), free_port()
    log = (tmp_path / "controller.log").open("w")
    cmd = [
        sys.executable, "-m", "controller.main", "--kubeconfig", str(control_plane.kubeconfig),
        "--watch-namespace", namespace, "--dns-server", f"{dns_server.address}:{dns_server.port}",
        "--extension-server-address", f"127.0.0.1:{ext}", "--extproc-address", "127.0.0.1:1064",
        "--health-probe-bind-address", f"127.0.0.1:{health}",
        "--metrics-bind-address", f"127.0.0.1:{metrics}",
        "--leader-elect", "--leader-election-namespace", namespace,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.to_thread(subprocess.Popen, cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:

        async def ready() -> bool:
            def get() -> int:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2) as r:
                        return int(r.status)
                except OSError:
                    return 0

            assert proc.poll() is None, (tmp_path / "controller.log").read_text()
            return await asyncio.to_thread(get) == 200

        await eventually(ready, within=60, interval=0.5)
        manifests = docs(gateway_yaml("gw"), service("s"), backend("b", service="s"), route("r", "gw", "b"))
        await apply_yaml(control_plane, namespace, manifests)

        async def kubectl(*args: str) -> str:
            return str((await asyncio.to_thread(control_plane.kubectl, *args)).stdout)

        async def reconciled() -> bool:
            out = await kubectl("-n", namespace, "get", "backends.gateway.envoyproxy.io", "-o", "name")
            return "ai-eg-extproc-gw" in out

        await eventually(reconciled, within=30)
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=2).read().decode()
        )
        assert "aigw_controller_api_writes_total" in body and "controller_runtime_reconcile_total" in body
        out = await kubectl("-n", namespace, "get", "deployments", "-o", "name")
        assert "ai-eg-extproc" not in out  # the ext_proc runs outside the cluster
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "controller.log").read_text()
