"""The AI Gateway controller in-process against the real API server and the real DNS server.

``aigw`` starts a runtime ``Manager`` with ``setup_controllers`` watching only the test's namespace (the
fixture namespace stays Terminating with its objects, so namespaces never leak into each other), resolving
through the dnsmasq fixture, with the inference extension on. Helpers apply YAML with ``kubectl``, read
objects, and poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes_asyncio import client

from api.filterconfig import CONFIG_KEY, FilterConfig
from api.objects import Obj
from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.reconciler import GatewayReconciler
from controller.gateway.setup import ControllerSettings, setup_controllers
from controller.rotation.providers import Endpoints
from controller.runtime import CONFIGMAPS, EVENTS, KubeClient, Manager, Resource, is_not_found
from controller.translate import BuildOptions, extproc_name
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer

T = TypeVar("T")


async def eventually(fn: Callable[[], Awaitable[T]], *, within: float = 20.0, interval: float = 0.1) -> T:
    """Call ``fn`` until it returns a truthy value without raising AssertionError; that value."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = await fn()
            if result:
                return result
            last: BaseException | None = AssertionError(f"falsy result {result!r}")
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {last}")
        await asyncio.sleep(interval)


async def apply_yaml(cp: ControlPlane, ns: str, text: str) -> None:
    """``kubectl apply --server-side`` every document of ``text`` into ``ns`` (as a user would)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        if d.get("kind") not in ("GatewayClass",):
            d.setdefault("metadata", {})["namespace"] = ns
    args = ("apply", "--server-side", "--force-conflicts", "--field-manager=test", "-f", "-")
    await asyncio.to_thread(cp.kubectl, *args, input=yaml.safe_dump_all(docs))


@dataclass
class Aigw:
    """The running controller and helpers bound to one namespace."""

    ns: str
    cp: ControlPlane
    kube: KubeClient
    mgr: Manager
    reconciler: GatewayReconciler
    dns: DnsServer
    task: asyncio.Task[None] | None = None
    applied: list[str] = field(default_factory=list)

    async def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        def run() -> str:
            res = self.cp.kubectl(*args, input=input, check=check)
            return res.stdout if check else res.stdout + res.stderr  # unchecked: the error text too

        return await asyncio.to_thread(run)

    async def apply(self, text: str) -> None:
        await apply_yaml(self.cp, self.ns, text)

    async def delete(self, kind: str, name: str) -> None:
        await self.kubectl("-n", self.ns, "delete", kind, name, "--wait=false")

    async def get(self, resource: Resource, name: str) -> Obj | None:
        try:
            return await self.kube.get(resource, name=name, namespace=self.ns)
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    async def config(self, gateway: str) -> FilterConfig | None:
        cm = await self.get(CONFIGMAPS, extproc_name(gateway))
        if cm is None:
            return None
        return FilterConfig.model_validate(yaml.safe_load(cm["data"][CONFIG_KEY]))

    async def config_when(
        self, gateway: str, pred: Callable[[FilterConfig], bool], within: float = 20
    ) -> FilterConfig:
        async def check() -> FilterConfig:
            cfg = await self.config(gateway)
            assert cfg is not None, f"no ConfigMap for Gateway {gateway}"
            try:
                ok = pred(cfg)
            except (IndexError, KeyError, AttributeError):
                ok = False  # the part the predicate looks at is not there yet
            assert ok, f"config not as expected yet: {cfg.to_json_dict()}"
            return cfg

        return await eventually(check, within=within)

    async def condition(
        self, resource: Resource, name: str, typ: str, parent: int | None = None
    ) -> Obj | None:
        obj = await self.get(resource, name)
        if obj is None:
            return None
        status = obj.get("status") or {}
        if parent is not None:
            parents = status.get("parent") or []
            if len(parents) <= parent:
                return None
            conds = parents[parent].get("conditions") or []
        else:
            conds = status.get("conditions") or []
        return next((c for c in conds if c.get("type") == typ), None)

    async def wait_condition(
        self,
        resource: Resource,
        name: str,
        typ: str,
        status: str,
        reason: str | None = None,
        parent: int | None = None,
        within: float = 20,
    ) -> Obj:
        async def check() -> Obj:
            c = await self.condition(resource, name, typ, parent)
            assert c is not None, f"{resource.kind} {name}: no {typ} condition"
            assert c["status"] == status and (reason is None or c["reason"] == reason), (
                f"{resource.kind} {name}: {c}"
            )
            return c

        return await eventually(check, within=within)

    async def events(self, name: str) -> list[Obj]:
        lst = await self.kube.list(EVENTS, namespace=self.ns)
        return [e for e in lst.get("items", []) if e.get("involvedObject", {}).get("name") == name]


DENIED = "refused by the test's admission policy"


async def deny_admission(
    aigw: Aigw, *, group: str, kind: str, name: str, spec: dict[str, Any] | None = None
) -> str:
    """Make the real API server refuse creates and updates of one object (``kind`` ``name`` in ``aigw.ns``)
    with a ValidatingAdmissionPolicy; returns once the refusal is in force (policies load asynchronously,
    checked with a server-side dry run of the object with ``spec``, which must pass the kind's schema).
    The policy's name, which deleting ends the refusal (``kubectl delete validatingadmissionpolicy NAME``)."""
    policy = f"deny-{aigw.ns}-{kind.lower()}"[:63]
    resource = next(r for r in kinds.BY_KIND.values() if r.kind == kind and r.group == group)
    plural, version = resource.plural, resource.version
    text = "\n---\n".join(json.dumps(d) for d in (
        {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [group], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                    "resources": [plural]}]},
                "validations": [{"expression": f"object.metadata.name != '{name}'", "message": DENIED}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {"policyName": policy, "validationActions": ["Deny"],
                     "matchResources": {"namespaceSelector": {
                         "matchLabels": {"kubernetes.io/metadata.name": aigw.ns}}}},
        },
    ))  # fmt: skip
    await aigw.kubectl("apply", "-f", "-", input=text)
    probe = json.dumps({"apiVersion": f"{group}/{version}", "kind": kind,
                        "metadata": {"name": name, "namespace": aigw.ns}, "spec": spec or {}})  # fmt: skip

    async def active() -> bool:
        out = await aigw.kubectl("create", "--dry-run=server", "-f", "-", input=probe, check=False)
        return DENIED in out

    await eventually(active, within=30, interval=0.5)
    return policy


CLOSED_TOKEN_ENDPOINTS = Endpoints(sts_endpoint="http://127.0.0.1:9", azure_authority="http://127.0.0.1:9")

GATEWAY_CLASS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: envoy-ai-gateway}
spec: {controllerName: gateway.envoyproxy.io/gatewayclass-controller}
"""


def gateway_yaml(name: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  gatewayClassName: envoy-ai-gateway
  listeners: [{{name: http, protocol: HTTP, port: 80}}]
"""


@contextlib.asynccontextmanager
async def running_aigw(
    cp: ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    dns: DnsServer,
    *,
    cluster_wide: bool,
    options: BuildOptions | None = None,
    token_endpoints: Endpoints | None = None,
) -> AsyncIterator[Aigw]:
    """The controller on a ``Manager``, watching ``namespace`` only or (``cluster_wide``) every namespace;
    ``options`` default to the inference extension on and the image ``extproc:test``; ``token_endpoints``
    (the credential rotation's) to a closed loopback port: tests never reach a public token endpoint."""
    mgr = Manager(api_client=api_client, health_port=None, graceful_shutdown_timeout=5)
    resolver = DnsResolver(nameserver=f"{dns.address}:{dns.port}", timeout=0.5, registry=mgr.metrics.registry)
    options = options or BuildOptions(enable_inference_extension=True, extproc_image="extproc:test")
    settings = ControllerSettings(
        options=options,
        watch_namespace=None if cluster_wide else namespace,
        inference_v1=True,
        inference_objectives=True,
        token_endpoints=token_endpoints or CLOSED_TOKEN_ENDPOINTS,
    )
    rec = setup_controllers(mgr, settings=settings, resolver=resolver)
    h = Aigw(ns=namespace, cp=cp, kube=KubeClient(api_client), mgr=mgr, reconciler=rec, dns=dns)
    await h.kubectl("apply", "-f", "-", input=GATEWAY_CLASS)
    h.task = asyncio.create_task(mgr.run())
    await eventually(lambda: asyncio.sleep(0, result=mgr.caches_synced()), within=60)
    try:
        yield h
    finally:
        h.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await h.task


@pytest.fixture
async def aigw(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, dns_server: DnsServer
) -> AsyncIterator[Aigw]:
    async with running_aigw(control_plane, api_client, namespace, dns_server, cluster_wide=False) as h:
        yield h


@pytest.fixture
async def aigw_cluster(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str, dns_server: DnsServer
) -> AsyncIterator[Aigw]:
    """The controller watching every namespace (cross-namespace references); ``aigw.ns`` is the test's own.

    Namespaces of earlier tests stay Terminating with their objects (no namespace controller): this controller
    reconciles their Gateways too, so assert only on the objects of the namespaces the test made."""
    async with running_aigw(control_plane, api_client, namespace, dns_server, cluster_wide=True) as h:
        yield h


@pytest.fixture
async def other_namespace(api_client: client.ApiClient, namespace: str) -> AsyncIterator[str]:
    """A second fresh namespace, ``<namespace>-b`` (Terminating after the test, like ``namespace``)."""
    name = f"{namespace[:60]}-b"
    core = client.CoreV1Api(api_client)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        await core.delete_namespace(name)
