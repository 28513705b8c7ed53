"""``--extproc-mtls``: the per-Gateway TLS material (kept while valid, renewed before it expires) and the
objects that wire it (Secrets, the ext_proc's mounts and flags, Envoy Gateway's Backend, the policy)."""

from __future__ import annotations

import base64
import datetime
from dataclasses import replace
from typing import Any

from cryptography import x509

from controller.gateway.certs import KeyPair
from controller.gateway.extproc_tls import KEYS, LEAF_VALIDITY, RENEW_BEFORE, ensure_material
from controller.translate import BuildOptions, ExtprocAddress, Snapshot, build_gateway
from tests.unit.controller.objects import (
    GW,
    attached_policies,
    one_route_snapshot,
)

NAMES = ("ai-eg-extproc-gw.default.svc.cluster.local", "ai-eg-extproc-gw.default.svc", "ai-eg-extproc-gw")
MTLS = BuildOptions(extproc_mtls=True)


def _pair(m: dict[str, str], cert: str, key: str) -> KeyPair:
    return KeyPair.from_pem(m[cert].encode(), m[key].encode())


def test_new_material_is_a_ca_a_server_and_a_client_that_chain() -> None:
    m = ensure_material({}, dns_names=NAMES)
    assert sorted(m) == sorted(KEYS)
    ca, server, client = (
        _pair(m, "ca.crt", "ca.key"),
        _pair(m, "tls.crt", "tls.key"),
        _pair(m, "client.crt", "client.key"),
    )
    server.cert.verify_directly_issued_by(ca.cert)
    client.cert.verify_directly_issued_by(ca.cert)
    sans = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == set(NAMES)
    eku = client.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_material_is_kept_while_valid_and_renewed_before_expiry() -> None:
    m = ensure_material({}, dns_names=NAMES)
    assert ensure_material(m, dns_names=NAMES) == m  # nothing new: no Secret rewrite, no pod notices
    later = datetime.datetime.now(datetime.UTC) + LEAF_VALIDITY - RENEW_BEFORE + datetime.timedelta(days=1)
    renewed = ensure_material(m, dns_names=NAMES, now=later)
    assert renewed["tls.crt"] != m["tls.crt"] and renewed["client.crt"] != m["client.crt"]
    assert renewed["ca.crt"] == m["ca.crt"]  # the CA lasts: the running pair keeps trusting the new leaves
    # another Service name, a missing key or a leaf of another CA: new leaves
    assert ensure_material(m, dns_names=("other",))["tls.crt"] != m["tls.crt"]
    assert ensure_material({k: v for k, v in m.items() if k != "client.key"}, dns_names=NAMES) != m
    foreign = ensure_material({}, dns_names=NAMES)
    mixed = {**m, "client.crt": foreign["client.crt"], "client.key": foreign["client.key"]}
    assert ensure_material(mixed, dns_names=NAMES)["client.crt"] not in (
        m["client.crt"],
        foreign["client.crt"],
    )


def _snap(**kw: Any) -> Snapshot:
    return one_route_snapshot(options=MTLS, **kw)


def _by_kind(objs: tuple[dict[str, Any], ...]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_the_objects_wire_the_material() -> None:
    m = ensure_material({}, dns_names=NAMES)
    b = build_gateway(_snap(extproc_tls=m), MTLS)
    objs = _by_kind(b.gateway_objects)
    server = objs[("Secret", "ai-eg-extproc-gw-tls")]
    client = objs[("Secret", "ai-eg-extproc-gw-client")]
    assert client["type"] == "kubernetes.io/tls"
    assert base64.b64decode(client["data"]["tls.crt"]).decode() == m["client.crt"]
    assert base64.b64decode(server["data"]["ca.key"]).decode() == m["ca.key"]
    dep = objs[("Deployment", "ai-eg-extproc-gw")]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    args = c["args"]
    assert args[args.index("--tls-client-ca") + 1] == "/etc/ai-gateway/tls/ca.crt"
    assert "grpc" not in c["readinessProbe"], "the kubelet's gRPC probe can't speak TLS"
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": 9190}
    tls = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert [i["key"] for i in tls["secret"]["items"]] == ["tls.crt", "tls.key", "ca.crt"]  # never the CA key
    be = objs[("Backend", "ai-eg-extproc-gw")]["spec"]
    assert be["endpoints"] == [{"fqdn": {"hostname": NAMES[0], "port": 1063}}]
    assert be["tls"]["clientCertificateRef"]["name"] == "ai-eg-extproc-gw-client"
    assert (
        be["tls"]["caCertificateRefs"][0]["name"] == "ai-eg-extproc-gw-client"
        and be["tls"]["sni"] == NAMES[0]
    )
    eep = objs[("EnvoyExtensionPolicy", "ai-eg-extproc-gw")]
    assert eep["spec"]["extProc"][0]["backendRefs"] == [
        {"group": "gateway.envoyproxy.io", "kind": "Backend", "name": "ai-eg-extproc-gw", "port": 1063}
    ]
    assert [p["name"] for p in b.http_routes[0]["spec"]["parentRefs"]] == ["gw"]
    # without the flag: none of it
    plain = _by_kind(
        build_gateway(_snap(extension_policies=attached_policies([GW])), BuildOptions()).gateway_objects
    )
    assert ("Backend", "ai-eg-extproc-gw") not in plain and ("Secret", "ai-eg-extproc-gw-tls") not in plain


def test_no_material_yet_builds_no_gateway_object() -> None:
    b = build_gateway(replace(_snap(), extension_policies={}), MTLS)
    assert b.gateway_objects == () and b.http_routes == ()


def test_an_outside_extproc_gets_the_same_material_and_the_service_name_as_sni() -> None:
    """``--extproc-address`` with ``--extproc-mtls`` (the e2e harness): Envoy dials the outside address but
    checks the server against the Gateway's CA for the Service's name, which the server certificate holds;
    no Deployment or Service is made, the Secrets are (the outside ext_proc reads its server pair there)."""
    m = ensure_material({}, dns_names=NAMES)
    opts = replace(MTLS, extproc_address=ExtprocAddress.parse("127.0.0.1:1064"))
    objs = _by_kind(build_gateway(one_route_snapshot(options=opts, extproc_tls=m), opts).gateway_objects)
    assert ("Deployment", "ai-eg-extproc-gw") not in objs and ("Service", "ai-eg-extproc-gw") not in objs
    assert ("Secret", "ai-eg-extproc-gw-tls") in objs and ("Secret", "ai-eg-extproc-gw-client") in objs
    be = objs[("Backend", "ai-eg-extproc-gw")]["spec"]
    assert be["endpoints"] == [{"ip": {"address": "127.0.0.1", "port": 1064}}]
    assert (
        be["tls"]["sni"] == NAMES[0]
        and be["tls"]["clientCertificateRef"]["name"] == "ai-eg-extproc-gw-client"
    )
    sans = _pair(m, "tls.crt", "tls.key").cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert be["tls"]["sni"] in sans.value.get_values_for_type(x509.DNSName)
    eep = objs[("EnvoyExtensionPolicy", "ai-eg-extproc-gw")]
    assert eep["spec"]["extProc"][0]["backendRefs"][0]["port"] == 1064
    # no material yet: nothing (the reconcile issues it first)
    assert build_gateway(one_route_snapshot(options=opts, extension_policies={}), opts).gateway_objects == ()
