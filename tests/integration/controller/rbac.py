"""Checks that a set of RBAC objects is enough for the controller, and no more: it runs as its ServiceAccount
(impersonated) against the real API server with only those permissions, configured by the arguments its
Deployment gives it, and does each kind of read and write it does in a cluster (see
``controller_works_with_only``); with --leader-elect it acquires, renews and releases its Lease under the
leader election Role, which reaches no other Lease. Used on config/rbac (test_rbac.py) and on the Helm chart's
RBAC (tests/integration/helm)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client

from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.setup import setup_controllers
from controller.main import LEADER_ELECTION_ID, controller_settings, parse_args
from controller.rotation.reconciler import ROTATED
from controller.runtime import EVENTS, LEASES, SECRETS, KubeClient, LeaderElectionConfig, Manager, Resource
from controller.runtime.leaderelection import LeaderElector
from controller.translate import names
from tests.fakes.token_endpoints import FakeTokenEndpoints
from tests.integration.controller.conftest import GATEWAY_CLASS, apply_yaml, eventually
from tests.integration.controller.manifests import backend, docs, route, service
from tests.integration.controller.test_rotation import CLIENT_SECRET, azure_policy, client_secret
from tests.integration.controller.test_v1_pool import LABELS, v1_pool, v1_route
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer
from tests.realparts.epp import pod_object, ready_pod_status

CONFIG = Path(__file__).resolve().parents[3] / "config"
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
GATEWAY = "ai-gateway"  # config/samples/gateway.yaml's
WITHIN = 30.0  # generous: a loaded 2-core machine


async def controller_works_with_only(
    rbac: str,
    *,
    controller_args: Sequence[str],
    control_plane: ControlPlane,
    namespace: str,
    dns_server: DnsServer,
    service_account: str,
) -> None:
    """Apply ``rbac`` (YAML) and run the controller as ``service_account`` of ``namespace`` with
    ``controller_args`` (its Deployment's; leader election is checked by ``leader_election_works_with_only``).
    It must be refused anything beyond its roles (PersistentVolumeClaims), and, with only those permissions:

    - take config/samples to Accepted=True, having applied every kind of object a Gateway gets (with the
      default ext_proc mutual TLS, its CA and client Secrets; the route-level BackendTrafficPolicy);
    - write a v1 InferencePool's ``status.parents`` (the pool over a Pod it reads);
    - rotate an Azure BackendSecurityPolicy's token (from fake token endpoints on loopback) into its
      ``ai-eg-bsp-<policy>`` Secret, with a Normal Event, and delete that Secret when the policy goes;
    - prune an AIGatewayRoute's HTTPRoute and BackendTrafficPolicy when the route goes."""
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=rbac)
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=GATEWAY_CLASS)
    tokens = FakeTokenEndpoints(clients={"gw-client": CLIENT_SECRET})
    await tokens.start()
    args = parse_args([
        *controller_args, f"--dns-server={dns_server.address}:{dns_server.port}",
        f"--aws-sts-endpoint={tokens.sts_endpoint}", f"--azure-authority-host={tokens.azure_authority}",
    ])  # fmt: skip
    assert args.enable_inference_extension and args.watch_namespace is None, controller_args
    sa = f"system:serviceaccount:{namespace}:{service_account}"
    api = client.ApiClient(
        configuration=control_plane.client_configuration(), header_name="Impersonate-User", header_value=sa
    )
    admin = KubeClient(client.ApiClient(configuration=control_plane.client_configuration()))
    mgr = Manager(api_client=api, health_port=None, graceful_shutdown_timeout=5)
    kube = KubeClient(api)
    with pytest.raises(Exception) as denied:
        await kube.list(PVCS, namespace=namespace)
    assert getattr(denied.value, "status", None) == 403  # least privilege: no access beyond the role
    reconciler = setup_controllers(
        mgr,
        settings=controller_settings(args, inference_v1=True, inference_objectives=True),
        resolver=DnsResolver(nameserver=args.dns_server, registry=mgr.metrics.registry),
    )
    task = asyncio.create_task(mgr.run())
    try:
        dns_server.set_records({f"my-backend-a.{namespace}.svc.cluster.local": ["10.7.0.1"],
                                f"my-backend-b.{namespace}.svc.cluster.local": ["10.7.0.2"],
                                f"azure-svc.{namespace}.svc.cluster.local": ["10.7.0.3"]})  # fmt: skip
        for f in ("gateway.yaml", "basic.yaml", "inference_extension.yaml"):
            await apply_yaml(control_plane, namespace, (CONFIG / "samples" / f).read_text())
        await _samples_accepted(kube, namespace)
        await _gateway_objects_written(
            admin, namespace, owned=sorted(reconciler.owned), mtls=args.extproc_mtls
        )
        await _v1_pool_status_written(control_plane, kube, namespace)
        await _credentials_rotated(control_plane, admin, namespace)
        await _route_pruned(control_plane, admin, namespace)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()
        await admin.api_client.close()
        await tokens.stop()


async def _accepted(
    kube: KubeClient, res: Resource, name: str, namespace: str, *, parent: bool = False
) -> bool:
    obj = await kube.get(res, name=name, namespace=namespace)
    status = obj.get("status") or {}
    if parent:  # an InferencePool: v1alpha2 ``parent``, v1 ``parents``
        conds = ((status.get("parent") or status.get("parents") or [{}])[0]).get("conditions")
    else:
        conds = status.get("conditions")
    return any(c["type"] == "Accepted" and c["status"] == "True" for c in conds or [])


async def _samples_accepted(kube: KubeClient, namespace: str) -> None:
    for res, name in [
        (kinds.AIGATEWAYROUTES, "basic"), (kinds.AIGATEWAYROUTES, "inference-extension"),
        (kinds.AISERVICEBACKENDS, "openai"), (kinds.AISERVICEBACKENDS, "my-backend-a"),
        (kinds.BACKENDSECURITYPOLICIES, "openai-apikey"), (kinds.INFERENCEMODELS, "mistral"),
    ]:  # fmt: skip
        await eventually(functools.partial(_accepted, kube, res, name, namespace), within=WITHIN)
    await eventually(
        functools.partial(_accepted, kube, kinds.INFERENCEPOOLS, "my-pool", namespace, parent=True),
        within=WITHIN,
    )


async def _names(kube: KubeClient, res: Resource, namespace: str) -> set[str]:
    return {o["metadata"]["name"] for o in (await kube.list(res, namespace=namespace)).get("items", [])}


async def _gateway_objects_written(
    admin: KubeClient, namespace: str, *, owned: list[str], mtls: bool
) -> None:
    """Every kind the Gateway reconciler writes has an object in ``namespace``: no apply was refused."""
    tls = {names.extproc_tls_secret(GATEWAY), names.extproc_client_secret(GATEWAY)} if mtls else set()

    async def written() -> bool:
        for kind in owned:
            assert await _names(admin, kinds.BY_KIND[kind], namespace), f"no {kind} written"
        secrets = await _names(admin, SECRETS, namespace)
        assert tls <= secrets, f"the ext_proc's mutual TLS Secrets {tls - secrets} not written"
        assert "basic" in await _names(admin, kinds.BACKENDTRAFFICPOLICIES, namespace)
        return True

    await eventually(written, within=WITHIN)
    btp = await admin.get(kinds.BACKENDTRAFFICPOLICIES, name="basic", namespace=namespace)
    assert {r["kind"] for r in btp["spec"]["targetRefs"]} == {"HTTPRoute"}, btp["spec"]["targetRefs"]


async def _v1_pool_status_written(cp: ControlPlane, kube: KubeClient, namespace: str) -> None:
    await apply_yaml(
        cp, namespace, docs(v1_route("v1", GATEWAY, "v1-pool", model="v1-model"), v1_pool("v1-pool"))
    )
    pod = yaml.safe_dump(pod_object(namespace=namespace, name="vllm-0", labels=LABELS))
    await asyncio.to_thread(cp.kubectl, "apply", "--namespace", namespace, "-f", "-", input=pod)
    ready = json.dumps(ready_pod_status("10.7.0.9"))
    await asyncio.to_thread(cp.kubectl, "patch", "pod", "vllm-0", "--namespace", namespace,
                            "--subresource=status", "--type=merge", "-p", ready)  # fmt: skip
    await eventually(
        functools.partial(_accepted, kube, kinds.V1_INFERENCEPOOLS, "v1-pool", namespace, parent=True),
        within=WITHIN,
    )


async def _credentials_rotated(cp: ControlPlane, admin: KubeClient, namespace: str) -> None:
    await apply_yaml(cp, namespace, docs(
        service("azure-svc"), backend("azure", service="azure-svc", schema="AzureOpenAI", bsp="p-az"),
        route("azure", GATEWAY, "azure", header=("x-ai-eg-model", "azure-model")),
        client_secret("azure-client", CLIENT_SECRET), azure_policy("p-az"),
    ))  # fmt: skip
    secret = names.rotated_secret("p-az")

    async def rotated() -> bool:
        assert secret in await _names(admin, SECRETS, namespace)
        events = (await admin.list(EVENTS, namespace=namespace)).get("items", [])
        reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "p-az"}
        assert ROTATED in reasons, f"no Event {ROTATED} on BackendSecurityPolicy p-az, only {reasons}"
        return True

    await eventually(rotated, within=2 * WITHIN)
    await asyncio.to_thread(cp.kubectl, "delete", "backendsecuritypolicy", "p-az", "--namespace", namespace)

    async def deleted() -> bool:
        assert secret not in await _names(admin, SECRETS, namespace), f"{secret} outlived its policy"
        return True

    await eventually(deleted, within=WITHIN)


async def _route_pruned(cp: ControlPlane, admin: KubeClient, namespace: str) -> None:
    await asyncio.to_thread(cp.kubectl, "delete", "aigatewayroute", "basic", "--namespace", namespace)

    async def pruned() -> bool:
        for res in (kinds.HTTPROUTES, kinds.BACKENDTRAFFICPOLICIES):
            assert "basic" not in await _names(admin, res, namespace), f"{res.kind} basic left"
        return True

    await eventually(pruned, within=WITHIN)


async def leader_election_works_with_only(
    rbac: str, *, control_plane: ControlPlane, namespace: str, service_account: str
) -> None:
    """Apply ``rbac`` (YAML) and check ``service_account`` of ``namespace`` acquires, renews and releases the
    controller's Lease in ``namespace``, and cannot read any other Lease."""
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=rbac)
    sa = f"system:serviceaccount:{namespace}:{service_account}"
    api = client.ApiClient(
        configuration=control_plane.client_configuration(), header_name="Impersonate-User", header_value=sa
    )
    admin = client.ApiClient(configuration=control_plane.client_configuration())
    cfg = LeaderElectionConfig(
        name=LEADER_ELECTION_ID,
        namespace=namespace,
        lease_duration=15.0,
        renew_deadline=10.0,
        retry_period=0.5,
    )
    elector = LeaderElector(client=KubeClient(api), config=cfg)
    try:
        await asyncio.wait_for(elector.acquire(), timeout=10)  # GET (404), then create
        assert elector.is_leader
        first = await KubeClient(admin).get(LEASES, name=LEADER_ELECTION_ID, namespace=namespace)
        holding = asyncio.create_task(elector.hold())  # renews with PUT every retry_period

        async def renewed() -> bool:
            assert not holding.done(), holding  # LeaderElectionLost: a renewal was refused
            lease = await KubeClient(admin).get(LEASES, name=LEADER_ELECTION_ID, namespace=namespace)
            return bool(lease["spec"]["renewTime"] != first["spec"]["renewTime"])

        # A renewal every retry_period; the deadlines leave a loaded machine's slow PUT room.
        await eventually(renewed, within=WITHIN)
        holding.cancel()  # releases the Lease (PUT)
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        released = await KubeClient(admin).get(LEASES, name=LEADER_ELECTION_ID, namespace=namespace)
        assert not released["spec"].get("holderIdentity")
        with pytest.raises(Exception) as denied:  # the Role names its one Lease
            await KubeClient(api).get(LEASES, name="some-other-lease", namespace=namespace)
        assert getattr(denied.value, "status", None) == 403
    finally:
        await api.close()
        await admin.close()
