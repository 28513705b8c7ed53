"""The client certificate Envoy Gateway v1.9 forgets to send for an ext_proc cluster.

Envoy Gateway v1.9.0 builds the ext_proc cluster of an EnvoyExtensionPolicy with an upstream TLS context that
names the client certificate of the Backend's ``tls.clientCertificateRef`` as an SDS secret
(``<namespace>/<secret name>``), but never adds that secret to the xDS it serves (upstream issue
envoyproxy/gateway#9726: ``processClientCertificates`` runs for route and ext_authz clusters, not ext_proc
ones). Envoy then waits for the secret forever, the cluster never warms, and every request through the
Gateway fails closed. ``PostTranslateModify`` sends the secrets it returns, so it adds the missing one here,
built exactly as Envoy Gateway builds it for a route cluster (the pair inline).

Only what is missing and ours: an SDS name a cluster references, that no secret of the request carries, and
that ``lookup`` resolves (the controller's own ``ai-eg-extproc-<gw>-client`` Secrets; see
``controller.gateway.ownership.extproc_client_certificates``). Once Envoy Gateway sends the secret itself,
nothing is added. Pure: no I/O, inputs never mutated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import DataSource, TransportSocket
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import TlsCertificate
from envoy.extensions.transport_sockets.tls.v3.secret_pb2 import Secret
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import UpstreamTlsContext

ClientCertificates = Callable[[str], tuple[bytes, bytes] | None]
"""SDS secret name (``<namespace>/<name>``) -> the PEM certificate chain and key, when it is ours."""


def no_client_certificates(_: str) -> None:
    """A ``ClientCertificates`` that knows none (the extension server without a controller's cache)."""
    return None


@dataclass(frozen=True, slots=True)
class ClientCertificateResult:
    secrets: list[Secret]
    added: list[str]
    """Names of the secrets added."""


def _sockets(cluster: Cluster) -> Iterator[TransportSocket]:
    if cluster.HasField("transport_socket"):
        yield cluster.transport_socket
    for match in cluster.transport_socket_matches:
        if match.HasField("transport_socket"):
            yield match.transport_socket


def referenced_client_certificates(clusters: Sequence[Cluster]) -> list[str]:
    """The SDS names of the client certificates the clusters' upstream TLS contexts reference, in order."""
    names: list[str] = []
    for cluster in clusters:
        for socket in _sockets(cluster):
            ctx = UpstreamTlsContext()
            if not socket.typed_config.Is(UpstreamTlsContext.DESCRIPTOR) or not socket.typed_config.Unpack(
                ctx
            ):
                continue
            for sds in ctx.common_tls_context.tls_certificate_sds_secret_configs:
                if sds.name and sds.name not in names:
                    names.append(sds.name)
    return names


def add_missing_client_certificates(
    clusters: Sequence[Cluster], secrets: Sequence[Secret], *, lookup: ClientCertificates
) -> ClientCertificateResult:
    """``secrets`` plus, for each client certificate a cluster references that no secret carries and that
    ``lookup`` knows, that secret (see the module docstring)."""
    present = {s.name for s in secrets}
    out = list(secrets)
    added: list[str] = []
    for name in referenced_client_certificates(clusters):
        if name in present:
            continue
        pair = lookup(name)
        if pair is None:
            continue
        cert, key = pair
        out.append(
            Secret(
                name=name,
                tls_certificate=TlsCertificate(
                    certificate_chain=DataSource(inline_bytes=cert), private_key=DataSource(inline_bytes=key)
                ),
            )
        )
        added.append(name)
    return ClientCertificateResult(secrets=out, added=added)
