"""Fixtures for the controller runtime's integration tests: the test CRDs, a ``KubeClient``, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from controller.runtime import KubeClient, Resource
from tests.realparts.controlplane import ControlPlane

CRD_FILE = Path(__file__).with_name("widgets-crd.yaml")
WIDGETS = Resource(group="runtime.test.aigw.io", version="v1", plural="widgets", kind="Widget")
CLUSTER_WIDGETS = Resource(
    group="runtime.test.aigw.io",
    version="v1",
    plural="clusterwidgets",
    kind="ClusterWidget",
    namespaced=False,
)


@pytest.fixture(scope="session")
def widget_crds(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with the Widget and ClusterWidget CRDs Established."""
    control_plane.apply_crds([CRD_FILE])
    return control_plane


@pytest.fixture
async def kube(api_client: Any, widget_crds: ControlPlane) -> AsyncIterator[KubeClient]:
    """A ``KubeClient`` on the test's ApiClient."""
    yield KubeClient(api_client)


def widget(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A Widget manifest."""
    return {
        "apiVersion": WIDGETS.api_version,
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = ""
) -> None:
    """Poll ``check`` every 50 ms until it is true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {within}s: {what or check}")
        await asyncio.sleep(0.05)
