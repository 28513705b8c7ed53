"""PostTranslateModify adds the ext_proc client certificate Envoy Gateway v1.9 references but never sends
(envoyproxy/gateway#9726), only when it is missing and only for our own ``ai-eg-extproc-<gw>-client``
Secrets; the controller's lookup reads them from its cache of the Secrets it manages."""

from __future__ import annotations

import base64
import logging

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import TransportSocket
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import TlsCertificate
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import SdsSecretConfig, Secret
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, UpstreamTlsContext
from google.protobuf.any_pb2 import Any as AnyPb

from controller.extensionserver._generated import envoygateway_extension_pb2 as pb
from controller.extensionserver.client_certs import (
    add_missing_client_certificates,
    no_client_certificates,
    referenced_client_certificates,
)
from controller.extensionserver.options import ExtensionServerOptions
from controller.extensionserver.service import ExtensionService
from controller.gateway.ownership import extproc_client_certificates
from controller.runtime.cache import Store
from tests.unit.extensionserver.eg_xds import generated

OURS = "team-a/ai-eg-extproc-gw-client"
PAIR = (b"-----BEGIN CERTIFICATE-----\ncert\n", b"-----BEGIN PRIVATE KEY-----\nkey\n")


def _tls_cluster(name: str, *sds: str, in_matches: bool = False) -> Cluster:
    ctx = UpstreamTlsContext(
        common_tls_context=CommonTlsContext(
            tls_certificate_sds_secret_configs=[SdsSecretConfig(name=s) for s in sds]
        ),
        sni="ai-eg-extproc-gw.team-a.svc.cluster.local",
    )
    typed = AnyPb()
    typed.Pack(ctx)
    socket = TransportSocket(name="envoy.transport_sockets.tls", typed_config=typed)
    cluster = Cluster(name=name)
    if in_matches:
        cluster.transport_socket_matches.add(name="tls", transport_socket=socket)
    else:
        cluster.transport_socket.CopyFrom(socket)
    return cluster


def _lookup(name: str) -> tuple[bytes, bytes] | None:
    return PAIR if name == OURS else None


def test_the_missing_client_certificate_is_added_inline() -> None:
    clusters = [Cluster(name="plain"), _tls_cluster("envoyextensionpolicy/team-a/ai-eg-extproc-gw/0", OURS)]
    ca = Secret(name="ai-eg-extproc-gw/team-a-ca")
    out = add_missing_client_certificates(clusters, [ca], lookup=_lookup)
    assert out.added == [OURS]
    assert out.secrets[0] is ca  # what Envoy Gateway sent stays as it was
    added = out.secrets[1]
    assert added.name == OURS
    assert added.tls_certificate == TlsCertificate(
        certificate_chain={"inline_bytes": PAIR[0]}, private_key={"inline_bytes": PAIR[1]}
    )


def test_nothing_is_added_when_present_unknown_or_not_referenced() -> None:
    ours = _tls_cluster("c", OURS, in_matches=True)  # transport_socket_matches, as the upstream issue says
    assert referenced_client_certificates([ours]) == [OURS]
    sent = Secret(name=OURS, tls_certificate=TlsCertificate())
    assert add_missing_client_certificates([ours], [sent], lookup=_lookup).added == []  # a fixed EG
    foreign = _tls_cluster("c", "team-a/someone-elses-cert")
    assert add_missing_client_certificates([foreign], [], lookup=_lookup).secrets == []
    assert add_missing_client_certificates([Cluster(name="x")], [], lookup=_lookup).secrets == []
    assert add_missing_client_certificates([ours], [], lookup=no_client_certificates).secrets == []


def _secret(ns: str, name: str, data: dict[str, bytes]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": ns, "name": name},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def test_the_controllers_lookup_hands_out_only_its_client_secrets() -> None:
    store = Store()
    store.upsert(_secret("team-a", "ai-eg-extproc-gw-client", {"tls.crt": PAIR[0], "tls.key": PAIR[1]}))
    store.upsert(_secret("team-a", "ai-eg-extproc-gw-tls", {"tls.crt": b"server", "tls.key": b"server-key"}))
    store.upsert(_secret("team-a", "ai-eg-extproc-half-client", {"tls.crt": b"no key"}))
    lookup = extproc_client_certificates(store)
    assert lookup(OURS) == PAIR
    assert lookup("team-a/ai-eg-extproc-gw-tls") is None  # the server pair is never sent to Envoy
    assert lookup("team-a/ai-eg-extproc-half-client") is None
    assert lookup("team-b/ai-eg-extproc-gw-client") is None
    assert lookup("ai-eg-extproc-gw-client") is None


def test_post_translate_modify_returns_the_added_secret() -> None:
    service = ExtensionService(
        options=ExtensionServerOptions(),
        generated=generated(),
        logger=logging.getLogger("test"),
        client_certificates=_lookup,
    )
    request = pb.PostTranslateModifyRequest(clusters=[_tls_cluster("ext", OURS)])
    reply = service.post_translate_modify(request)
    response = reply.response
    assert isinstance(response, pb.PostTranslateModifyResponse)
    assert [s.name for s in response.secrets] == [OURS]
    assert OURS in reply.summary
