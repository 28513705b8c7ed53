"""Scenario 17: the Inference Extension's v1 InferencePools on the real Envoy Gateway, side by side with a
v1alpha2 pool on one Gateway: one served by our picker from its Pods, one whose Pod the Inference Extension's
real EPP v1.5.0 chooses, and our v1alpha2 pool of AIServiceBackends. Each model reaches its own pool's
endpoints, and only them; the EPP's choice is the replica that answers."""

from __future__ import annotations

import json
from collections import Counter

import yaml

from tests.e2e import artifacts, objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.realparts.dns import DnsServer
from tests.realparts.epp import DESTINATION_HEADER, RunningEpp, pod_object, pool_objects, ready_pod_status
from tests.realparts.ports import common_port
from tests.realparts.simulators import SimReplicas

V1 = "inference.networking.k8s.io"
SIM_IPS = ["127.0.0.81", "127.0.0.82"]
OURS = {"ours-1": "127.0.0.84", "ours-2": "127.0.0.85"}
ALPHA = {"alpha-1": "127.0.0.87"}
OUTSIDER = {"outsider": "127.0.0.89"}


def v1_rule(model: str, pool: str) -> dict[str, object]:
    return {
        "matches": [{"headers": [{"type": "Exact", "name": "x-ai-eg-model", "value": model}]}],
        "backendRefs": [{"group": V1, "kind": "InferencePool", "name": pool}],
    }


def v1_pool(name: str, ns: str, labels: dict[str, str], port: int) -> dict[str, object]:
    """A v1 pool our picker serves (the v1.5.0 CRD requires a ref: ``envoy-ai-gateway`` names ours)."""
    return {
        "apiVersion": f"{V1}/v1",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": labels},
            "targetPorts": [{"number": port}],
            "endpointPickerRef": {"name": "envoy-ai-gateway", "port": {"number": 9002}},
        },
    }


def test_v1_pools_with_and_without_an_epp_beside_a_v1alpha2_pool(
    scn: Scenario, upstreams: Upstreams, dns_server: DnsServer
) -> None:
    ns = scn.ns
    port = common_port([*OURS.values(), *ALPHA.values(), *OUTSIDER.values()])
    for name, ip in {**OURS, **ALPHA, **OUTSIDER}.items():
        upstreams.start(name, ip, port)
    dns_server.set_records({
        objects.service_fqdn("alpha-member", ns): list(ALPHA.values()),
        objects.service_fqdn("epp", ns): ["127.0.0.1"],  # the EPP listens on every local address
    })  # fmt: skip

    pods = [pod_object(namespace=ns, name=name, labels={"app": "ours"}) for name in OURS]
    # the outsider carries no pool's labels: it must never be reached
    pods.append(pod_object(namespace=ns, name="outsider", labels={"app": "nobody"}))
    scn.apply(*pods)
    for name, ip in {**OURS, **OUTSIDER}.items():
        scn.kube.kubectl("-n", ns, "patch", "pod", name, "--subresource=status", "--type=merge",
                         "-p", json.dumps(ready_pod_status(ip)))  # fmt: skip

    with SimReplicas(ips=SIM_IPS, name="e2e-epp-sim") as sims:
        epp = RunningEpp(control_plane=scn.kube.cp, namespace=ns, pool="picked", endpoints=sims.endpoints)
        epp_objects = pool_objects(namespace=ns, pool="picked", port=sims.port, labels=epp.labels)[1:]
        epp_objects += [
            pod_object(namespace=ns, name=f"picked-{i}", labels=epp.labels)
            for i in range(1, len(SIM_IPS) + 1)
        ]
        try:
            with epp:
                scn.apply(
                    *objects.pool_backend("alpha-member", ns, port, "alpha"),
                    objects.inference_pool("alpha", ns, {"app": "alpha"}, port),
                    objects.inference_model("alpha-llm", ns, "alpha-llm", "alpha"),
                    v1_pool("ours", ns, {"app": "ours"}, port),
                    objects.ai_gateway_route(
                        "three-pools",
                        ns,
                        scn.gateway,
                        [
                            objects.rule(model="alpha-llm", backends=[("InferencePool", "alpha", 1)]),
                            v1_rule("ours-llm", "ours"),
                            v1_rule("sim-llm", "picked"),
                        ],
                    ),
                )
                scn.wait_ok("alpha-llm", upstream="alpha-1")
                scn.wait_ok("ours-llm", upstream=lambda n: n in OURS)
                scn.wait_ok("sim-llm")

                seen: Counter[str] = Counter()
                for _ in range(20):
                    r = chat(
                        scn.port, "ours-llm", headers={DESTINATION_HEADER: f"{OUTSIDER['outsider']}:{port}"}
                    )
                    assert r.status == 200, r.body
                    seen[r.upstream or ""] += 1
                for _ in range(5):
                    r = chat(scn.port, "alpha-llm")
                    assert r.status == 200 and r.upstream == "alpha-1", (r.status, r.body)
                sim_addresses = {str(e) for e in sims.endpoints}
                picked: Counter[str] = Counter()
                for _ in range(10):
                    r = chat(scn.port, "sim-llm", headers={DESTINATION_HEADER: "127.0.0.99:1"})
                    assert r.status == 200, (r.status, r.body, epp.log_tail(20))
                    # the replica that answered is the one the EPP named
                    assert r.headers["x-echo-destination-endpoint"] == r.headers["x-upstream-address"]
                    assert r.headers["x-upstream-address"] in sim_addresses
                    picked[r.headers["x-upstream-address"]] += 1
                artifacts.measure("17. v1 pool (our picker) spread over 20 requests", dict(seen))
                artifacts.measure("17. v1 pool (EPP v1.5.0) choices over 10 requests", dict(picked))
                assert set(seen) == set(OURS), seen
                assert upstreams.counts()["outsider"] == 0

                pool = scn.kube.get(f"inferencepool.{V1}", "picked", ns)
                parents = (pool or {}).get("status", {}).get("parents") or []
                conds = {c["type"]: c["status"] for p in parents for c in p.get("conditions") or []}
                assert conds == {"Accepted": "True", "ResolvedRefs": "True"}, yaml.safe_dump(parents)
        finally:
            scn.kube.delete(*epp_objects)
