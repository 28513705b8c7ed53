"""Fixtures of the e2e harness: the real API server and Envoy Gateway (Host infrastructure: it starts Envoy on
this machine), and, for the scenarios, our controller with its extension server, our ext_proc and a real DNS
server (``tests/e2e/harness.py``).

Envoy Gateway binds fixed ports, so the e2e tests run serially (one harness per machine). A missing real part
fails the test; it never skips. Every process logs under ``tests.e2e.artifacts.ARTIFACTS``; a failing test's
report carries the tail of each log, and a session with a failure keeps the directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import artifacts, objects
from tests.e2e.kube import Kube
from tests.realparts.controlplane import ControlPlane, ControlPlaneError
from tests.realparts.envoygateway import EG_NAMESPACE

_failed = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and "tests/e2e/" in str(item.fspath):
        global _failed
        _failed = True
        for title, text in artifacts.log_sections():
            report.sections.append((title, text))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not artifacts.ARTIFACTS.exists():
        return
    if _failed or exitstatus not in (0, 5) or os.environ.get("AIGW_E2E_KEEP") == "1":
        print(f"\n[e2e] logs of every process are kept under {artifacts.ARTIFACTS}")
    else:
        shutil.rmtree(artifacts.ARTIFACTS, ignore_errors=True)


def failed() -> bool:
    """Whether any e2e test failed so far (teardowns keep their logs then)."""
    return _failed


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with our CRDs and the Gateway API / Envoy Gateway CRDs installed."""
    cp = ControlPlane()
    try:
        cp.start()
    except ControlPlaneError as e:
        pytest.fail(f"the real control plane did not start: {e}")
    artifacts.register("control plane", lambda: [cp.apiserver_log, cp.etcd_log])
    yield cp
    if _failed:
        shutil.copytree(cp.logs_dir, artifacts.ARTIFACTS / "control-plane", dirs_exist_ok=True)
    artifacts.unregister("control plane")
    cp.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    """kubectl on the control plane, with Envoy Gateway's namespace and our GatewayClass in place."""
    k = Kube(control_plane)
    k.apply(objects.namespace(EG_NAMESPACE), objects.gateway_class())
    return k


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    artifacts.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return artifacts.ARTIFACTS
