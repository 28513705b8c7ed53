"""Scenario 14: a per-tenant token budget, enforced by Envoy Gateway's global rate limit from the token costs
our ext_proc writes into dynamic metadata (as upstream Envoy AI Gateway documents it).

Real parts: Envoy Gateway (rate limiting on), the Envoy it runs, our controller and ext_proc, Envoy's rate
limit service (``github.com/envoyproxy/ratelimit``, which gets its limits from Envoy Gateway over xDS) and
Redis (which holds the counters), and dnsmasq answering the Service names ``envoy-ratelimit`` and
``envoy-gateway``.

A ``BackendTrafficPolicy`` gives each ``x-tenant-id`` a budget of ``BUDGET`` tokens a minute: the request
costs nothing when it is checked (``cost.request`` 0: "is the budget already spent?"), and when the response
ends Envoy adds the route's ``io.envoy.ai_gateway/llm_total_token`` (the usage our ext_proc read from the
response) to the tenant's counter. So a tenant's requests pass until its counter goes past the budget; the
next one gets Envoy's 429 and never reaches the upstream; another tenant is unaffected; the next minute
refills it.

Two things a cluster has that this machine does not, and how the scenario stands in for them, with one
``EnvoyPatchPolicy`` on the ``ratelimit_cluster`` that Envoy Gateway built (its host name and TLS stay as
built):
- Envoy resolves Service names with the cluster's DNS: here the cluster's DNS resolver is our dnsmasq.
- The service listens on port 8081 in its own Pod: here Envoy Gateway's own health probe holds 8081 on every
  address, so the service listens on a free port, and the patch sets that port.
"""

from __future__ import annotations

import functools
import math
import time
import urllib.request

from api import headers as aigw_headers
from api.objects import Obj
from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.conftest import RateLimit
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import WaitTimeout, wait_for
from tests.realparts.dns import DnsServer

MODEL = "budget-llm"
TENANT_HEADER = "x-tenant-id"
BUDGET = 250
"""Tokens per tenant per minute."""
USAGE = (40, 60)
"""Prompt and completion tokens the upstream reports for every request (``x-response-usage``)."""
COST = sum(USAGE)
WINDOW = 60
CARES = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
"""Seconds: the unit of the budget (``Minute``); the service counts in windows aligned to the epoch."""


def token_budget_policy(name: str, ns: str, gateway: str) -> Obj:
    """The per-tenant token budget, exactly as upstream Envoy AI Gateway's token rate limit documents it: a
    BackendTrafficPolicy on the Gateway. Our controller's own BackendTrafficPolicy (body limit, ext_proc-down
    answer) is on the routes, with ``mergeType: StrategicMerge``, so Envoy Gateway merges it into this one
    instead of refusing either as ``Conflicted``."""
    return {
        "apiVersion": objects.EG,
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}],
            "rateLimit": {
                "global": {
                    "rules": [
                        {
                            "clientSelectors": [{"headers": [{"name": TENANT_HEADER, "type": "Distinct"}]}],
                            "limit": {"requests": BUDGET, "unit": "Minute"},
                            "cost": {
                                "request": {"from": "Number", "number": 0},
                                "response": {
                                    "from": "Metadata",
                                    "metadata": {
                                        "namespace": aigw_headers.METADATA_NAMESPACE,
                                        "key": "llm_total_token",
                                    },
                                },
                            },
                        }
                    ]
                }
            },
        },
    }


def rate_limit_cluster_patch(name: str, ns: str, gateway: str, dns: DnsServer, port: int) -> Obj:
    """Makes the ``ratelimit_cluster`` Envoy Gateway built resolve its host name with ``dns`` and call
    ``port`` (see the module docstring); everything else about it (the name, TLS both ways) stays Envoy
    Gateway's."""
    resolver = {
        "name": "envoy.network.dns_resolver.cares",
        "typed_config": {
            "@type": CARES,
            "resolvers": [{"socket_address": {"address": dns.address, "port_value": dns.port}}],
            "dns_resolver_options": {"no_default_search_domain": True},
        },
    }
    endpoint = "/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"
    return {
        "apiVersion": objects.EG,
        "kind": "EnvoyPatchPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway},
            "type": "JSONPatch",
            "jsonPatches": [
                {
                    "type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                    "name": "ratelimit_cluster",
                    "operation": operation,
                }
                for operation in (
                    # Envoy Gateway builds it as the envoy.cluster.dns extension, which has its own resolver
                    {
                        "op": "add",
                        "path": "/cluster_type/typed_config/typed_dns_resolver_config",
                        "value": resolver,
                    },
                    {"op": "replace", "path": endpoint, "value": port},
                )
            ],
        },
    }


def over_limit_count(scn: Scenario) -> int:
    """Requests Envoy's rate limit filter refused (``*.ratelimit.over_limit``), over every Envoy still up."""
    total = 0
    for admin in scn.eg.envoy_admin_addresses():
        try:
            with urllib.request.urlopen(f"http://{admin}/stats?filter=ratelimit.over_limit", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue  # an Envoy of an earlier scenario, gone
        total += sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if ":" in line)
    return total


def diagnosis(scn: Scenario, rate_limit: RateLimit) -> str:
    """What a person debugging a failure here wants first: the patch's status, and how each Envoy sees the
    ``ratelimit_cluster`` (its config and its hosts)."""
    out = [
        scn.kube.kubectl(
            "get", "envoypatchpolicy,backendtrafficpolicy", "-n", scn.ns, "-o", "yaml", check=False
        )
    ]
    for admin in scn.eg.envoy_admin_addresses():
        for path in ("/clusters", "/config_dump?resource=dynamic_active_clusters&name_regex=ratelimit.*"):
            try:
                with urllib.request.urlopen(f"http://{admin}{path}", timeout=5) as r:
                    text = r.read().decode()
            except OSError as e:
                text = repr(e)
            if path == "/clusters":
                text = "\n".join(line for line in text.splitlines() if line.startswith("ratelimit_cluster"))
            out.append(f"---- {admin}{path}\n{text}")
    out.append(f"---- rate limit service /rlconfig\n{rate_limit.service.loaded_config()}")
    return "\n".join(out)


def policy_conditions(scn: Scenario, name: str) -> dict[str, list[str]]:
    """The BackendTrafficPolicy ``name``'s condition statuses by type, over the ancestors Envoy Gateway lists
    (a policy it refuses, e.g. a second one on the same Gateway, says ``Accepted: False``, ``Conflicted``; a
    route's policy merged into the Gateway's lists the Gateway twice: ``Accepted``, and ``Merged`` for the
    listener)."""
    policy = scn.kube.get("backendtrafficpolicy", name, scn.ns) or {}
    out: dict[str, list[str]] = {}
    for a in (policy.get("status") or {}).get("ancestors") or []:
        for c in a.get("conditions") or []:
            out.setdefault(str(c.get("type")), []).append(str(c.get("status")))
    return out


def accepted_and_merged(scn: Scenario, name: str) -> bool:
    conds = policy_conditions(scn, name)
    return conds.get("Accepted") == ["True"] and conds.get("Merged") == ["True"]


class Budget:
    """Requests of one scenario, and the counters the rate limit service keeps for them in Redis."""

    def __init__(self, scn: Scenario, rate_limit: RateLimit) -> None:
        self.scn = scn
        self.redis = rate_limit.redis

    def ask(self, tenant: str) -> int:
        headers = {TENANT_HEADER: tenant, "x-response-usage": f"{USAGE[0]},{USAGE[1]}"}
        return chat(self.scn.port, MODEL, headers=headers).status

    def spent(self, tenant: str, window: int) -> int:
        """Tokens counted for ``tenant`` in the window starting at ``window`` (the service's keys end with
        it)."""
        return sum(v for k, v in self.redis.counters(f"_{tenant}_").items() if k.endswith(f"_{window}"))

    def wait_spent(self, tenant: str, window: int, tokens: int) -> None:
        """Wait until the response cost of the last request is counted (Envoy adds it after the response)."""
        wait_for(
            lambda: self.spent(tenant, window) == tokens,
            f"{tokens} tokens counted for {tenant} in window {window} (have {self.spent(tenant, window)})",
            30,
            0.1,
        )


def current_window() -> int:
    now = int(time.time())
    return now - now % WINDOW


def wait_for_fresh_window(min_left: float) -> int:
    """The current window if at least ``min_left`` seconds of it are left, else the next one (waited for)."""
    now = time.time()
    start = math.floor(now / WINDOW) * WINDOW
    if start + WINDOW - now < min_left:
        time.sleep(start + WINDOW - now + 0.2)
        start += WINDOW
    return int(start)


def test_token_budget_per_tenant(
    scn: Scenario, upstreams: Upstreams, rate_limit: RateLimit, dns_server: DnsServer
) -> None:
    ns = scn.ns
    llm = upstreams.start("llm", "127.0.0.162")
    scn.apply(
        *objects.direct_backend("llm", ns, llm.host, llm.port),
        objects.route_to_backend("budget", ns, scn.gateway, MODEL, "llm"),
        token_budget_policy("token-budget", ns, scn.gateway),
        rate_limit_cluster_patch("cluster-env", ns, scn.gateway, dns_server, rate_limit.service.grpc_port),
    )
    budget = Budget(scn, rate_limit)

    # Converged when a request passes and its tokens are counted: Envoy reached the service (DNS, TLS both
    # ways, the patched port), the service holds Envoy Gateway's limits, and the cost came from our metadata.
    try:
        # ours (on the route's HTTPRoute, named like the AIGatewayRoute) merges into the user's on the Gateway
        for name in ("token-budget", "budget"):
            wait_for(functools.partial(accepted_and_merged, scn, name), f"{name} Accepted, Merged", 60)
        scn.wait_ok(MODEL, headers={TENANT_HEADER: "probe", "x-response-usage": f"{USAGE[0]},{USAGE[1]}"})
        wait_for(
            lambda: sum(budget.redis.counters("_probe_").values()) > 0, "the probe's tokens in Redis", 60
        )
    except WaitTimeout as e:
        raise AssertionError(f"{e}\n{diagnosis(scn, rate_limit)}") from e

    # Spend tenant A's budget inside one window (a window that ends mid-way would refill it: then try again
    # with fresh tenants in the next one).
    for attempt in range(2):
        tenant_a, tenant_b = f"tenant-a-{attempt}", f"tenant-b-{attempt}"
        window = wait_for_fresh_window(min_left=40)
        passed = 0
        over_before = over_limit_count(scn)
        received = len(llm.received)
        while (refused := budget.ask(tenant_a)) == 200:
            passed += 1
            budget.wait_spent(tenant_a, window, passed * COST)
            assert passed <= BUDGET // COST + 1, f"{tenant_a} spent {passed * COST} tokens of {BUDGET}"
            over_before = over_limit_count(scn)
            received = len(llm.received)
        b_status = budget.ask(tenant_b)
        if current_window() != window:
            continue
        break
    else:
        raise AssertionError("two windows ended while spending the budget: the machine is far too slow")

    # Passes while the counter is within the budget (checked with cost 0 before the request), so the request
    # that takes it past the budget still passes: ceil(BUDGET / COST) of them.
    assert passed == math.ceil(BUDGET / COST), (passed, budget.spent(tenant_a, window))
    assert refused == 429
    assert len(llm.received) == received + 1, "the refused request reached the upstream"  # only B's arrived
    assert over_limit_count(scn) > over_before, "the 429 did not come from Envoy's rate limit filter"
    assert budget.spent(tenant_a, window) == passed * COST  # a refused request costs nothing
    assert b_status == 200, "tenant B was limited by tenant A's spending"
    budget.wait_spent(tenant_b, window, COST)

    # The next window refills the budget.
    time.sleep(max(0.0, window + WINDOW - time.time() + 0.5))
    refilled = current_window()
    assert budget.ask(tenant_a) == 200
    budget.wait_spent(tenant_a, refilled, COST)
