"""The Envoy Gateway extension server: adds the original-destination cluster and points InferencePool routes
at it, over Envoy Gateway v1.9.0's ``envoygateway.extension.EnvoyGatewayExtension`` gRPC API.

Public API: ``ExtensionServer`` (run it), ``ExtensionServerOptions`` (configure the hooks), and the pure
functions in ``controller.extensionserver.xds``.
"""

from controller.extensionserver.options import ExtensionServerOptions
from controller.extensionserver.server import DEFAULT_ADDRESS, ExtensionServer, parse_address

__all__ = ["DEFAULT_ADDRESS", "ExtensionServer", "ExtensionServerOptions", "parse_address"]
