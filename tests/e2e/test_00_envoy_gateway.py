"""The harness itself, with no code of ours on the path: the real Envoy Gateway reads a Gateway, an
HTTPRoute and a ``Backend`` from our API server, starts Envoy on this machine, and a request through that
Envoy reaches a plain upstream on 127.0.0.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aigw.upstream import serve_in_thread
from tests.e2e import objects
from tests.e2e.client import chat, ok
from tests.e2e.conftest import running_envoy_gateway
from tests.e2e.kube import Kube, wait_for
from tests.realparts.controlplane import ControlPlane
from tests.realparts.envoygateway import EnvoyGateway

NS = "e2e-eg-smoke"


@pytest.fixture(scope="module")
def bare_envoy_gateway(
    control_plane: ControlPlane, kube: Kube, artifacts_dir: Path
) -> Iterator[EnvoyGateway]:
    """Envoy Gateway without an extension manager (nothing of ours involved)."""
    with running_envoy_gateway("envoy-gateway-bare", control_plane, kube, artifacts_dir) as eg:
        yield eg


def test_gateway_httproute_backend_through_eg_started_envoy(
    bare_envoy_gateway: EnvoyGateway, kube: Kube
) -> None:
    port = objects.listener_port()
    with serve_in_thread(name="smoke", host="127.0.0.2") as upstream:
        objs = [
            objects.namespace(NS),
            objects.eg_backend("smoke", NS, upstream.port, ip="127.0.0.2"),
            objects.gateway("gw", NS, port),
            objects.http_route("smoke", NS, "gw", "smoke", upstream.port),
        ]
        kube.apply(*objs)
        try:
            bare_envoy_gateway.wait_for_listener(port, timeout=90)
            reply = wait_for(
                lambda: ok(chat(port, "any-model")),
                "a 200 through the Envoy that Envoy Gateway started",
                timeout=60,
            )
            assert reply.upstream == "smoke"
            assert reply.json()["model"] == "any-model"
            assert upstream.received, "the upstream saw no request"
            assert bare_envoy_gateway.envoy_admin_addresses(), "no admin-address.txt from func-e"
        finally:
            kube.delete(*objs[1:])
