"""Scenario 18: mutual TLS between the Gateway's Envoy and our ext_proc, through the real Envoy Gateway.

The controller (``--extproc-mtls``, the default) issues the Gateway's CA, the ext_proc's server pair and
Envoy's client pair into Secrets, and points the EnvoyExtensionPolicy at an Envoy Gateway ``Backend`` with
``tls`` (the CA, the Service's name as SNI, ``clientCertificateRef``); the harness's ext_proc serves only TLS
with the projected server pair and client CA (``tls_projector``, as the kubelet mounts the Secret). Checked:
requests with a credential pass (so Envoy Gateway presented the client certificate and accepted the
server's); any other gRPC client (plaintext, no certificate, another CA's certificate) gets no stream and
so no credential, while one with the Gateway's client certificate gets it; and a certificate renewal by the
controller, under steady traffic, fails no request, and a fresh connection afterwards uses the renewed pairs.
Envoy Gateway v1.9.0 never sends the client certificate's SDS secret for an ext_proc cluster
(envoyproxy/gateway#9726; the cluster never warms and every request fails): our extension server adds it
(``controller/extensionserver/client_certs.py``), so every check here also proves that workaround.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import socket
import ssl
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from controller.gateway.certs import CertificateAuthority, KeyPair
from controller.gateway.extproc_tls import RENEW_BEFORE
from controller.translate.names import extproc_client_secret, extproc_name, extproc_tls_secret
from tests.e2e import artifacts, objects
from tests.e2e.client import chat
from tests.e2e.conftest import Addresses
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for
from tests.e2e.processes import LoggedProcess
from tests.realparts.extprocclient import authorization_set, chat_for
from tests.realparts.ports import tcp_open
from tests.realparts.tinyca import TinyCA

KEY = "sk-e2e-only-for-the-gateway"
MODEL = "guarded-by-mtls"


def _keyed_backend(scn: Scenario, name: str, ip: str, port: int) -> None:
    """An AIServiceBackend with an API key (BackendSecurityPolicy + Secret), routed for ``MODEL``."""
    scn.apply(
        objects.eg_backend(name, scn.ns, port, ip=ip),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-key", "namespace": scn.ns},
            "data": {"apiKey": base64.b64encode(KEY.encode()).decode()},
        },
        {
            "apiVersion": objects.AIGW,
            "kind": "BackendSecurityPolicy",
            "metadata": {"name": name, "namespace": scn.ns},
            "spec": {"type": "APIKey", "apiKey": {"secretRef": {"name": f"{name}-key"}}},
        },
        objects.ai_service_backend(name, scn.ns, name, policy=name),
        objects.route_to_backend(name, scn.ns, scn.gateway, MODEL, name),
    )


def _secret_data(scn: Scenario, name: str) -> dict[str, bytes]:
    secret = scn.kube.get("secret", name, scn.ns)
    assert secret is not None, f"Secret {scn.ns}/{name} missing"
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _sni(scn: Scenario) -> str:
    return objects.service_fqdn(extproc_name(scn.gateway), scn.ns)


def _ask(target: str, channel_credentials: grpc.ChannelCredentials | None, sni: str) -> Any:
    """One hand-made chat request to the ext_proc: its answers, or the gRPC error."""

    async def go() -> Any:
        options = [("grpc.ssl_target_name_override", sni)]
        channel = (
            grpc.aio.secure_channel(target, channel_credentials, options=options)
            if channel_credentials is not None
            else grpc.aio.insecure_channel(target)
        )
        async with channel:
            try:
                return await chat_for(channel, MODEL)
            except grpc.aio.AioRpcError as e:
                return e

    return asyncio.run(go())


def _credentials(ca_pem: bytes, client: KeyPair | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )


def test_only_the_gateways_envoy_gets_the_credential(
    scn: Scenario, upstreams: Upstreams, addresses: Addresses
) -> None:
    up = upstreams.start("keyed", "127.0.0.141")
    _keyed_backend(scn, "keyed", up.host, up.port)
    reply = scn.wait_ok(MODEL, upstream="keyed")
    assert reply.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer ' + KEY)} chars>"

    # what Envoy Gateway made of the Backend: a TLS transport socket with the Service's name as SNI
    sni = _sni(scn)
    backend = scn.kube.get("backend", extproc_name(scn.gateway), scn.ns)
    assert backend is not None and backend["spec"]["tls"]["sni"] == sni
    dumps = [str(scn.eg.config_dump(a)) for a in scn.eg.envoy_admin_addresses()[-1:]]
    assert dumps and f"'sni': '{sni}'" in dumps[0], "no ext_proc cluster with TLS in Envoy's config"

    host, port = addresses.extproc
    target = f"{host}:{port}"
    client = _secret_data(scn, extproc_client_secret(scn.gateway))
    ca = client["ca.crt"]
    gateway_pair = KeyPair.from_pem(client["tls.crt"], client["tls.key"])
    strangers = {
        "plaintext": None,
        "TLS without a client certificate": _credentials(ca, None),
        "a client certificate of another CA": _credentials(
            ca, TinyCA("someone-else").issue("pod", client=True)
        ),
    }
    for what, creds in strangers.items():
        answer = _ask(target, creds, sni)
        assert isinstance(answer, grpc.aio.AioRpcError), f"{what}: got answers {answer}"
        assert answer.code() == grpc.StatusCode.UNAVAILABLE, (what, answer)
    # the control: the same request with the Gateway's client certificate does get the key
    answer = _ask(target, _credentials(ca, gateway_pair), sni)
    assert not isinstance(answer, grpc.aio.AioRpcError), answer
    assert authorization_set(answer) == [f"Bearer {KEY}".encode()]


class _Traffic:
    """Sequential chat requests through the Gateway in a thread, every status kept (``running``)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.statuses: list[int] = []
        self.failures: list[tuple[int, bytes]] = []
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            reply = chat(self.port, MODEL)
            self.statuses.append(reply.status)
            if reply.status != 200:
                self.failures.append((reply.status, reply.body[:200]))

    def wait_for_more(self, n: int, what: str) -> None:
        count = len(self.statuses)
        wait_for(lambda: len(self.statuses) >= count + n or None, what, 120)

    @classmethod
    @contextlib.contextmanager
    def running(cls, port: int) -> Iterator[_Traffic]:
        t = cls(port)
        thread = threading.Thread(target=t._run, daemon=True)
        thread.start()
        try:
            yield t
        finally:
            t._stop.set()
            thread.join(60)


def _served_certificate(target: tuple[str, int], client: dict[str, bytes], sni: str) -> bytes:
    """The DER certificate the ext_proc presents now to a client holding the Gateway's client pair."""
    ctx = ssl.create_default_context(cadata=client["ca.crt"].decode())
    ctx.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as d:
        cert, key = Path(d) / "tls.crt", Path(d) / "tls.key"
        cert.write_bytes(client["tls.crt"])
        key.write_bytes(client["tls.key"])
        ctx.load_cert_chain(cert, key)
    with (
        socket.create_connection(target, timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _nearly_expired_server(tls: dict[str, bytes]) -> dict[str, str]:
    """A server pair from the Gateway's own CA with the same names, valid for a day: still good, but inside
    ``RENEW_BEFORE``, so the controller must renew (as it does a month before a real expiry)."""
    day = datetime.timedelta(days=1)
    assert day < RENEW_BEFORE
    ca = CertificateAuthority(KeyPair.from_pem(tls["ca.crt"], tls["ca.key"]), validity=day)
    old = KeyPair.from_pem(tls["tls.crt"], tls["tls.key"]).cert
    names = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    pair = ca.issue(
        "ai-gateway ext_proc", dns_names=tuple(names.get_values_for_type(x509.DNSName)), server=True
    )
    return {
        k: base64.b64encode(v).decode() for k, v in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem))
    }


def test_a_certificate_renewal_fails_no_request(
    scn: Scenario,
    upstreams: Upstreams,
    addresses: Addresses,
    extproc: LoggedProcess,
) -> None:
    up = upstreams.start("renewed", "127.0.0.142")
    _keyed_backend(scn, "renewed", up.host, up.port)
    scn.wait_ok(MODEL, upstream="renewed")
    tls_name, client_name = extproc_tls_secret(scn.gateway), extproc_client_secret(scn.gateway)
    before, client_before = _secret_data(scn, tls_name), _secret_data(scn, client_name)

    started = time.monotonic()
    with _Traffic.running(scn.port) as traffic:
        traffic.wait_for_more(5, "steady traffic through the Gateway")
        # an almost expired server certificate (still valid, same CA): the controller renews both leaves
        patch = json.dumps({"data": _nearly_expired_server(before)})
        scn.kube.kubectl("patch", "secret", tls_name, "-n", scn.ns, "--type=merge", "-p", patch)

        def renewed() -> dict[str, bytes] | None:
            now = _secret_data(scn, client_name)
            return now if now["tls.crt"] != client_before["tls.crt"] else None

        client_after = wait_for(renewed, "the controller to renew the client certificate", 60)
        after = _secret_data(scn, tls_name)
        assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]  # the CA is kept
        assert after["tls.crt"] != before["tls.crt"]
        lasts = KeyPair.from_pem(after["tls.crt"], after["tls.key"]).cert.not_valid_after_utc
        assert lasts - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE
        # the ext_proc serves the renewed certificate to a new handshake with the renewed client pair
        renewed_der = x509.load_pem_x509_certificate(after["tls.crt"]).public_bytes(Encoding.DER)
        wait_for(
            lambda: _served_certificate(addresses.extproc, client_after, _sni(scn)) == renewed_der or None,
            "the ext_proc to serve the renewed certificate",
            60,
        )
        # and Envoy Gateway gave the Gateway's Envoy the renewed client certificate
        wait_for(
            lambda: base64.b64encode(client_after["tls.crt"]).decode() in _envoy_secrets(scn) or None,
            "Envoy to hold the renewed client certificate",
            60,
        )
        traffic.wait_for_more(20, "traffic after the renewal")
    elapsed = time.monotonic() - started
    artifacts.MEASUREMENTS["mTLS renewal under traffic"] = (
        f"{len(traffic.statuses)} requests in {elapsed:.1f} s, {len(traffic.failures)} failed"
    )
    assert traffic.failures == [], traffic.failures[:5]
    assert len(traffic.statuses) >= 25

    # a new connection from Envoy (the ext_proc restarted) handshakes with the renewed pairs on both sides
    extproc.stop()
    extproc.start()
    host, port = addresses.extproc
    wait_for(lambda: tcp_open(host, port) or None, "the ext_proc to listen again", 60)
    scn.wait_ok(MODEL, upstream="renewed", timeout=60)


def _envoy_secrets(scn: Scenario) -> str:
    """The newest Envoy's active SDS secrets, as text (certificate chains inline, private keys redacted)."""
    admin = scn.eg.envoy_admin_addresses()[-1]
    url = f"http://{admin}/config_dump?resource=dynamic_active_secrets"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())
