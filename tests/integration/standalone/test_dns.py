"""Pool members named by a hostname are resolved by the controller's resolver (``--dns-server``), like in a
cluster, and ``aigw run`` follows DNS changes within the record's TTL without a restart.

Measured against a real dnsmasq (5 s TTL): requests land on the IP the name resolves to; after the record
changes they land on the new IP within TTL + a reload; a DNS outage keeps the last known IP serving; a name
that never resolves is printed as the pool's ``ResolvedRefs=False DNSResolutionFailed`` condition.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.standalone.harness import aigw_run, upstream_names
from tests.realparts.dns import DnsServer
from tests.realparts.ports import free_port

pytestmark = pytest.mark.envoy

NAME = "model.aigw.test"

_CONFIG = """\
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: dns
spec:
  targetRefs:
  - {{group: gateway.networking.k8s.io, kind: Gateway, name: local}}
  schema: {{name: OpenAI}}
  rules:
  - matches:
    - headers:
      - {{name: x-ai-eg-model, value: dns-model}}
    backendRefs:
    - {{kind: InferencePool, name: dns-pool}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: dns-pool
spec:
  targetPortNumber: {port}
  selector: {{app: dns}}
  extensionRef: {{name: envoy-ai-gateway}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: dns-model
spec:
  modelName: dns-model
  poolRef: {{name: dns-pool}}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: by-name
  labels: {{app: dns}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{group: gateway.envoyproxy.io, kind: Backend, name: by-name}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: by-name
spec:
  endpoints:
  - fqdn: {{hostname: {name}, port: {port}}}
{servers}"""

_SERVER = """\
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: {server}
  annotations: {{standalone.aigateway.envoyproxy.io/demo-upstream: "true"}}
spec:
  endpoints:
  - ip: {{address: {ip}, port: {port}}}
"""


def _config(tmp_path: Path, *, name: str = NAME) -> Path:
    port = free_port("127.0.0.21")
    servers = "".join(
        _SERVER.format(server=s, ip=ip, port=port)
        for s, ip in (("server-a", "127.0.0.21"), ("server-b", "127.0.0.22"))
    )
    path = tmp_path / "dns.yaml"
    path.write_text(_CONFIG.format(port=port, name=name, servers=servers))
    return path


def test_pool_member_hostnames_follow_dns(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set_records({NAME: ["127.0.0.21"]})
    config = _config(tmp_path)
    args = ["--dns-server", f"{dns_server.address}:{dns_server.port}"]
    with aigw_run([config], workdir=tmp_path / "work", extra_args=args) as run:
        assert set(upstream_names(run, "dns-model", n=5)) == {"server-a"}
        r = run.chat("dns-model")
        assert r.headers["x-echo-host"].split(":")[0] == NAME, "Host must be the member's hostname"

        dns_server.set_records({NAME: ["127.0.0.22"]})
        deadline = time.monotonic() + 2 * dns_server.ttl + 10
        landed = "server-a"
        while time.monotonic() < deadline and landed != "server-b":
            time.sleep(0.25)
            landed = upstream_names(run, "dns-model", n=1)[0]
        assert landed == "server-b", run.output()[-3000:]

        # An outage keeps the last known address serving (the answer expires, the lookups time out).
        dns_server.stop()
        time.sleep(dns_server.ttl + 5)
        assert set(upstream_names(run, "dns-model", n=5)) == {"server-b"}
        assert "DNSResolutionFailed" not in run.output(), "known addresses were kept: no failure condition"


def test_a_name_that_never_resolves_is_reported(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set_records({})
    config = _config(tmp_path, name="missing.aigw.test")
    args = ["--dns-server", f"{dns_server.address}:{dns_server.port}"]
    with aigw_run([config], workdir=tmp_path / "work", extra_args=args) as run:
        line = run.wait_for(r"WARNING .*InferencePool default/dns-pool \[.*dns\.yaml \(document 2\)\]: ")
        assert "ResolvedRefs=False DNSResolutionFailed" in line.string
        assert "missing.aigw.test" in line.string
        r = run.chat("dns-model")
        assert r.status >= 500, (r.status, r.body)
