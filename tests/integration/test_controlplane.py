"""The real control plane behaves like a cluster's API server: version, CRDs, restart, compaction."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.realparts.controlplane import REPO_ROOT, ControlPlane, crd_files


async def test_server_reports_the_version_we_built(api_client: client.ApiClient) -> None:
    info = await client.VersionApi(api_client).get_code()
    assert (info.git_version, info.major, info.minor) == ("v1.36.3", "1", "36")


def test_kubectl_uses_our_binary_and_kubeconfig(control_plane: ControlPlane) -> None:
    out = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert out["clientVersion"]["gitVersion"] == "v1.36.3"
    assert out["serverVersion"]["gitVersion"] == "v1.36.3"


async def test_every_crd_is_established(api_client: client.ApiClient) -> None:
    import yaml

    expected = {
        doc["metadata"]["name"]
        for f in crd_files()
        for doc in yaml.safe_load_all(f.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition"
    }
    # Gateway API's core kinds and Envoy Gateway's extension policy must be among them.
    assert {"gateways.gateway.networking.k8s.io", "envoyextensionpolicies.gateway.envoyproxy.io"} <= expected
    listed = await client.ApiextensionsV1Api(api_client).list_custom_resource_definition()
    established = {
        crd.metadata.name
        for crd in listed.items
        if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
    }
    assert expected <= established, sorted(expected - established)


async def test_rbac_is_enforced(api_client: client.ApiClient, control_plane: ControlPlane) -> None:
    # The admin is in system:masters; an unknown user is not authorized: proves --authorization-mode=RBAC.
    done = control_plane.kubectl("auth", "can-i", "list", "pods", "--as=nobody", check=False)
    assert (done.returncode, done.stdout.strip()) == (1, "no")
    done = control_plane.kubectl("auth", "can-i", "list", "pods")
    assert done.stdout.strip() == "yes"


async def test_namespace_fixture_gives_a_fresh_namespace(
    api_client: client.ApiClient, namespace: str
) -> None:
    ns = await client.CoreV1Api(api_client).read_namespace(namespace)
    assert ns.status.phase == "Active"
    cms = await client.CoreV1Api(api_client).list_namespaced_config_map(namespace)
    assert cms.items == []


async def test_apiserver_restart_keeps_data(control_plane: ControlPlane, namespace: str) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="survivor"), data={"k": "v"})
    async with client.ApiClient(control_plane.client_configuration()) as api:
        await client.CoreV1Api(api).create_namespaced_config_map(namespace, body)
    began = time.monotonic()
    await asyncio.to_thread(control_plane.stop_apiserver)
    async with client.ApiClient(control_plane.client_configuration()) as api:
        with pytest.raises(Exception) as down:  # any connection error: aiohttp's or the OS's
            await client.CoreV1Api(api).read_namespaced_config_map("survivor", namespace)
        assert not isinstance(down.value, ApiException)
    await asyncio.to_thread(control_plane.start_apiserver)
    restart_seconds = time.monotonic() - began
    async with client.ApiClient(control_plane.client_configuration()) as api:
        cm = await client.CoreV1Api(api).read_namespaced_config_map("survivor", namespace)
    assert cm.data == {"k": "v"}
    assert restart_seconds < 60


async def test_compaction_expires_old_resource_versions(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    cm = await core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="churn"), data={"n": "0"})
    )
    old_rv = cm.metadata.resource_version
    for n in range(1, 4):
        await core.patch_namespaced_config_map("churn", namespace, {"data": {"n": str(n)}})
    revision = await asyncio.to_thread(control_plane.compact_etcd)
    assert revision >= int(old_rv) + 3
    # The watch cache still answers old versions from memory; a restart empties it, so the reads go to etcd.
    await asyncio.to_thread(control_plane.stop_apiserver)
    await asyncio.to_thread(control_plane.start_apiserver)
    async with client.ApiClient(control_plane.client_configuration()) as api:
        core = client.CoreV1Api(api)
        kept = await core.list_namespaced_config_map(
            namespace, resource_version=str(revision), resource_version_match="Exact"
        )
        assert [c.data for c in kept.items] == [{"n": "3"}]
        with pytest.raises(ApiException) as gone:
            await core.list_namespaced_config_map(
                namespace, resource_version=old_rv, resource_version_match="Exact"
            )
        assert (gone.value.status, gone.value.reason) == (410, "Gone")
        with pytest.raises(ApiException) as expired:
            async for _ in watch.Watch().stream(
                core.list_namespaced_config_map, namespace, resource_version=old_rv, timeout_seconds=5
            ):
                pass
        assert expired.value.status == 410


def test_fixtures_fail_and_never_skip_when_a_part_is_missing(tmp_path: Path) -> None:
    (tmp_path / "test_needs_parts.py").write_text(
        "def test_kube(control_plane):\n    pass\n\n\ndef test_dns(dns_server):\n    pass\n"
    )
    missing = str(tmp_path / "missing")
    env = {
        **os.environ,
        "TEST_ASSET_KUBE_APISERVER": missing,
        "DNSMASQ_BIN": missing,
        "PYTHONPATH": str(REPO_ROOT),
    }
    plugin = ["-p", "no:cacheprovider", "-p", "tests.realparts.kube_fixtures", "--rootdir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", *plugin, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "2 errors" in out and "skipped" not in out, out
    assert f"missing control-plane binaries: kube-apiserver (looked at {missing}). run `make envtest`" in out
    assert "dnsmasq not found: install the Debian package dnsmasq-base" in out
