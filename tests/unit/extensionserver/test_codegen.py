"""The generated code is current, and the compiled API is Envoy Gateway v1.9.0's wire contract."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from controller.extensionserver import codegen
from controller.extensionserver._generated import envoygateway_extension_pb2 as pb
from controller.extensionserver.service import HOOKS, SERVICE_NAME, method_path

REPEATED = "repeated"
SINGLE = "single"

# message -> field -> (number, label, type), as Envoy Gateway v1.9.0's proto/extension/{service,context}.proto
# define them. Written out by hand so that an edit of the .proto cannot silently change the wire format.
EXPECTED_MESSAGES: dict[str, dict[str, tuple[int, str, str]]] = {
    "ExtensionResource": {"unstructured_bytes": (1, SINGLE, "bytes")},
    "PostRouteExtensionContext": {
        "extension_resources": (1, REPEATED, "envoygateway.extension.ExtensionResource"),
        "hostnames": (2, REPEATED, "string"),
        "extension_policies": (3, REPEATED, "envoygateway.extension.ExtensionResource"),
    },
    "PostVirtualHostExtensionContext": {},
    "PostClusterExtensionContext": {
        "backend_extension_resources": (1, REPEATED, "envoygateway.extension.ExtensionResource"),
    },
    "PostEndpointsExtensionContext": {},
    "PostHTTPListenerExtensionContext": {
        "extension_resources": (1, REPEATED, "envoygateway.extension.ExtensionResource"),
    },
    "PostTranslateExtensionContext": {
        "extension_resources": (1, REPEATED, "envoygateway.extension.ExtensionResource"),
    },
    "PostRouteModifyRequest": {
        "route": (1, SINGLE, "envoy.config.route.v3.Route"),
        "post_route_context": (2, SINGLE, "envoygateway.extension.PostRouteExtensionContext"),
    },
    "PostRouteModifyResponse": {"route": (1, SINGLE, "envoy.config.route.v3.Route")},
    "PostVirtualHostModifyRequest": {
        "virtual_host": (1, SINGLE, "envoy.config.route.v3.VirtualHost"),
        "post_virtual_host_context": (2, SINGLE, "envoygateway.extension.PostVirtualHostExtensionContext"),
    },
    "PostVirtualHostModifyResponse": {"virtual_host": (1, SINGLE, "envoy.config.route.v3.VirtualHost")},
    "PostHTTPListenerModifyRequest": {
        "listener": (1, SINGLE, "envoy.config.listener.v3.Listener"),
        "post_listener_context": (2, SINGLE, "envoygateway.extension.PostHTTPListenerExtensionContext"),
    },
    "PostHTTPListenerModifyResponse": {"listener": (1, SINGLE, "envoy.config.listener.v3.Listener")},
    "PostClusterModifyRequest": {
        "cluster": (1, SINGLE, "envoy.config.cluster.v3.Cluster"),
        "post_cluster_context": (2, SINGLE, "envoygateway.extension.PostClusterExtensionContext"),
    },
    "PostClusterModifyResponse": {"cluster": (1, SINGLE, "envoy.config.cluster.v3.Cluster")},
    "PostEndpointsModifyRequest": {
        "load_assignment": (1, SINGLE, "envoy.config.endpoint.v3.ClusterLoadAssignment"),
        "post_endpoints_context": (2, SINGLE, "envoygateway.extension.PostEndpointsExtensionContext"),
    },
    "PostEndpointsModifyResponse": {
        "load_assignment": (1, SINGLE, "envoy.config.endpoint.v3.ClusterLoadAssignment"),
    },
    "PostTranslateModifyRequest": {
        "post_translate_context": (1, SINGLE, "envoygateway.extension.PostTranslateExtensionContext"),
        "clusters": (2, REPEATED, "envoy.config.cluster.v3.Cluster"),
        "secrets": (3, REPEATED, "envoy.extensions.transport_sockets.tls.v3.Secret"),
        "listeners": (4, REPEATED, "envoy.config.listener.v3.Listener"),
        "routes": (5, REPEATED, "envoy.config.route.v3.RouteConfiguration"),
    },
    "PostTranslateModifyResponse": {
        "clusters": (1, REPEATED, "envoy.config.cluster.v3.Cluster"),
        "secrets": (2, REPEATED, "envoy.extensions.transport_sockets.tls.v3.Secret"),
        "listeners": (3, REPEATED, "envoy.config.listener.v3.Listener"),
        "routes": (4, REPEATED, "envoy.config.route.v3.RouteConfiguration"),
    },
}

EXPECTED_RPCS = (
    "PostRouteModify",
    "PostVirtualHostModify",
    "PostHTTPListenerModify",
    "PostClusterModify",
    "PostEndpointsModify",
    "PostTranslateModify",
)


def _field_shape(field: FieldDescriptor) -> tuple[int, str, str]:
    label = REPEATED if field.is_repeated else SINGLE
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        kind = field.message_type.full_name
    else:
        kind = {FieldDescriptor.TYPE_BYTES: "bytes", FieldDescriptor.TYPE_STRING: "string"}[field.type]
    return field.number, label, kind


def test_generated_code_is_current() -> None:
    rendered = codegen.render()
    on_disk = {p.name: p.read_bytes() for p in codegen.GENERATED_DIR.iterdir() if p.is_file()}
    stale = sorted(
        name for name in rendered.keys() | on_disk.keys() if rendered.get(name) != on_disk.get(name)
    )
    assert not stale, f"controller/extensionserver/_generated is stale ({stale}): run `make generate`"


def test_messages_match_envoy_gateway_wire_format() -> None:
    assert pb.DESCRIPTOR.package == "envoygateway.extension"
    actual = {
        name: {f.name: _field_shape(f) for f in message.fields}
        for name, message in pb.DESCRIPTOR.message_types_by_name.items()
    }
    assert actual == EXPECTED_MESSAGES


def test_service_has_every_rpc_with_its_messages() -> None:
    service = pb.DESCRIPTOR.services_by_name["EnvoyGatewayExtension"]
    assert service.full_name == SERVICE_NAME == "envoygateway.extension.EnvoyGatewayExtension"
    assert sorted(HOOKS) == sorted(EXPECTED_RPCS)
    for rpc in EXPECTED_RPCS:
        method = service.methods_by_name[rpc]
        assert method.input_type.full_name == f"envoygateway.extension.{rpc}Request"
        assert method.output_type.full_name == f"envoygateway.extension.{rpc}Response"
        assert not method.client_streaming and not method.server_streaming
        assert method_path(rpc) == f"/envoygateway.extension.EnvoyGatewayExtension/{rpc}"
