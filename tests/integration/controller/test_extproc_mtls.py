"""``--extproc-mtls`` on the real API server: the Gateway's TLS material is generated once, kept across
reconciles, and wired into the ext_proc's Deployment, Envoy Gateway's Backend and the policy; a deleted
Secret is re-created."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from controller.gateway import kinds
from controller.gateway.certs import KeyPair
from controller.runtime import DEPLOYMENTS, SECRETS
from controller.translate import BuildOptions, extproc_name
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml, running_aigw
from tests.integration.controller.manifests import backend, docs, route, service
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer


@pytest.fixture
async def aigw_mtls(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, dns_server: DnsServer
) -> AsyncIterator[Aigw]:
    options = BuildOptions(extproc_image="extproc:test", extproc_mtls=True)
    async with running_aigw(
        control_plane, api_client, namespace, dns_server, cluster_wide=False, options=options
    ) as h:
        yield h


async def secret_data(aigw: Aigw, name: str) -> dict[str, str]:
    obj = await aigw.get(SECRETS, name)
    assert obj is not None, f"Secret {name} not there yet"
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


async def test_mtls_material_is_created_kept_and_wired(aigw_mtls: Aigw) -> None:
    aigw = aigw_mtls
    await aigw.apply(docs(gateway_yaml("gw"), service("s"), backend("b", service="s"), route("r", "gw", "b")))
    name = extproc_name("gw")
    # generous: one reconcile issues three ECDSA certificates, on a machine shared with other test runs
    server = await eventually(lambda: secret_data(aigw, f"{name}-tls"), within=60)
    client_pair = await eventually(lambda: secret_data(aigw, f"{name}-client"), within=60)
    ca = KeyPair.from_pem(server["ca.crt"].encode(), server["ca.key"].encode())
    for data in (server, client_pair):
        KeyPair.from_pem(data["tls.crt"].encode(), data["tls.key"].encode()).cert.verify_directly_issued_by(
            ca.cert
        )
    assert client_pair["ca.crt"] == server["ca.crt"]

    async def wired() -> dict[str, Any]:
        be = await aigw.get(kinds.EG_BACKENDS, name)
        eep = await aigw.get(kinds.ENVOYEXTENSIONPOLICIES, name)
        dep = await aigw.get(DEPLOYMENTS, name)
        assert be is not None and eep is not None and dep is not None
        return {"backend": be, "policy": eep, "deployment": dep}

    got = await eventually(wired, within=60)
    assert got["backend"]["spec"]["tls"]["clientCertificateRef"]["name"] == f"{name}-client"
    assert got["policy"]["spec"]["extProc"][0]["backendRefs"][0]["kind"] == "Backend"
    assert "--tls-cert" in got["deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    hr = await eventually(lambda: aigw.get(kinds.HTTPROUTES, "r"))
    assert hr is not None

    # kept: another change reconciles the Gateway, the material stays (no Secret rewrite, no pod notices)
    rv = (await aigw.get(SECRETS, f"{name}-tls") or {})["metadata"]["resourceVersion"]
    await aigw.apply(route("r", "gw", "b", header=("x-ai-eg-model", "m")))
    await aigw.config_when("gw", lambda c: c.rules[0].matches[0].headers[0].value == "m")
    assert (await aigw.get(SECRETS, f"{name}-tls") or {})["metadata"]["resourceVersion"] == rv

    # a deleted Secret comes back, with the same material (the controller issued it: nothing to re-trust)
    await aigw.delete("secret", f"{name}-tls")

    async def recreated() -> bool:
        obj = await aigw.get(SECRETS, f"{name}-tls")
        return obj is not None and obj["metadata"]["resourceVersion"] != rv

    await eventually(recreated, within=60)
    assert await secret_data(aigw, f"{name}-tls") == server
