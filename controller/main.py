"""``aigw-controller``: the AI Gateway controller, with the Envoy Gateway extension server in-process.

Start order: the extension server first (Envoy Gateway blocks while it is down, so readiness waits for it),
then the manager: probes and metrics, informers, leader election (optional), controllers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from kubernetes_asyncio import client, config

from api.gatewayapi import buffer_limit
from api.headers import DEFAULT_EXTENSION_REF_NAME
from controller.dns import DnsResolver
from controller.extensionserver import ExtensionServer
from controller.gateway.kinds import AIGATEWAYROUTES, INFERENCE, INFERENCE_OBJECTIVE, INFERENCE_V1, SECRETS
from controller.gateway.ownership import (
    extproc_client_certificates,
    gateways_with_ai_routes,
    generated_pool_routes,
)
from controller.gateway.setup import ControllerSettings, missing_crds, setup_controllers
from controller.rotation.providers import DEFAULT_AZURE_AUTHORITY, Endpoints
from controller.runtime import KubeClient, LeaderElectionConfig, Manager
from controller.translate import DEFAULT_MAX_BODY_BYTES, BuildOptions, ExtprocAddress

log = logging.getLogger("aigw-controller")

DEFAULT_EXTENSION_SERVER_ADDRESS = "0.0.0.0:1063"
DEFAULT_EXTPROC_IMAGE = "ghcr.io/ai-gateway-py/extproc:latest"
LEADER_ELECTION_ID = "envoy-ai-gateway-controller"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` only where the help text does not already say what the default is, and never
    for a default of None or False (an unset option, a flag that is off), which would only add noise."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="aigw-controller",
        description="The AI Gateway controller: turns AIGatewayRoutes, AIServiceBackends, "
        "BackendSecurityPolicies, InferencePools and InferenceModels into one ext_proc config, HTTPRoutes "
        "and an EnvoyExtensionPolicy per Gateway, and serves the Envoy Gateway extension server.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file; without it, the in-cluster service account is used",
    )
    p.add_argument(
        "--enable-inference-extension",
        action="store_true",
        help="reconcile InferencePools and InferenceModels (inference.networking.x-k8s.io/v1alpha2); "
        "the controller exits at start if their CRDs are not installed. Also the Inference Extension's v1 "
        "InferencePools (inference.networking.k8s.io) and the Pods they select, when that CRD is installed, "
        "and their InferenceObjectives when that CRD is installed too",
    )
    p.add_argument(
        "--extension-ref-name",
        default=DEFAULT_EXTENSION_REF_NAME,
        help="InferencePool spec.extensionRef.name served by the built-in endpoint picker; pools naming "
        "anything else get ResolvedRefs=False, reason InvalidExtensionRef",
    )
    p.add_argument(
        "--cluster-domain",
        default="cluster.local",
        help="cluster DNS domain: a Service resolves as <svc>.<ns>.svc.<cluster-domain>",
    )
    p.add_argument(
        "--dns-server",
        default=None,
        help="nameserver (ip or ip:port) for pool member hostnames; default: the system resolver "
        "(/etc/resolv.conf)",
    )
    p.add_argument("--extproc-image", default=DEFAULT_EXTPROC_IMAGE, help="image of the per-Gateway ext_proc")
    p.add_argument(
        "--extproc-log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level passed to the ext_proc",
    )
    p.add_argument(
        "--extproc-address",
        default=None,
        metavar="HOST:PORT",
        help="use an ext_proc running outside the cluster at HOST:PORT: the EnvoyExtensionPolicy "
        "points at an Envoy Gateway Backend ai-eg-extproc-<gw> with this endpoint, and no ext_proc "
        "Deployment or Service is created (local development and the e2e harness)",
    )
    p.add_argument(
        "--extproc-auth-dir",
        default=BuildOptions().auth_dir,
        metavar="DIR",
        help="where the ext_proc finds the Gateway's credential files (the filter config names files "
        f"there); default {BuildOptions().auth_dir}, where the Deployment mounts the auth Secret. With "
        "--extproc-address, the directory that outside ext_proc reads",
    )
    p.add_argument(
        "--extproc-mtls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mutual TLS between Envoy and each Gateway's ext_proc (on by default): per Gateway a CA, a "
        "server certificate for the ext_proc (which then accepts only that CA's clients) and a client "
        "certificate Envoy Gateway presents through a Backend; kept in Secrets ai-eg-extproc-<gw>-tls and "
        "ai-eg-extproc-<gw>-client, renewed 30 days before expiry. With --extproc-address, the outside "
        "ext_proc must serve the server pair and CA of the -tls Secret. --no-extproc-mtls: a plaintext "
        "ext_proc port, for when something else protects it (a service mesh's mTLS)",
    )
    p.add_argument(
        "--extension-server-address",
        default=DEFAULT_EXTENSION_SERVER_ADDRESS,
        help="where the Envoy Gateway extension server listens (host:port or unix:///path)",
    )
    p.add_argument(
        "--leader-elect",
        action="store_true",
        help="elect a leader with a Lease, so that only one replica reconciles",
    )
    p.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "envoy-ai-gateway-system"),
        help="namespace of the leader election Lease",
    )
    p.add_argument(
        "--metrics-bind-address",
        "--metrics-address",
        default=":8080",
        help="host:port serving Prometheus /metrics; 0 disables it",
    )
    p.add_argument(
        "--health-probe-bind-address",
        "--health-address",
        default=":8081",
        help="host:port serving /healthz and /readyz (and /metrics)",
    )
    p.add_argument(
        "--watch-namespace", default=None, help="watch only this namespace (default: all namespaces)"
    )
    p.add_argument(
        "--max-body-bytes",
        type=_buffer_limit,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request (and non-streamed response) body a Gateway buffers; bigger requests get 413 "
        "(bytes, or with a Ki/Mi/Gi suffix; at least 32Ki; default 50Mi)",
    )
    p.add_argument("--concurrent-reconciles", type=int, default=4, help="Gateways reconciled at once")
    p.add_argument(
        "--aws-sts-endpoint",
        default=None,
        metavar="URL",
        help="STS endpoint for AWS oidcExchangeToken policies (AssumeRoleWithWebIdentity); default: the "
        "policy region's public STS endpoint",
    )
    p.add_argument(
        "--azure-authority-host",
        default=DEFAULT_AZURE_AUTHORITY,
        metavar="URL",
        help="the Microsoft identity platform's authority host for AzureCredentials policies: access tokens "
        "come from <URL>/<tenantID>/oauth2/v2.0/token",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the controller's log level",
    )
    return p.parse_args(argv)


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "0.0.0.0", int(port))


async def _api_client(kubeconfig: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration=cfg)


def build_options(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        cluster_domain=args.cluster_domain,
        enable_inference_extension=args.enable_inference_extension,
        extension_ref_name=args.extension_ref_name,
        extproc_image=args.extproc_image,
        extproc_log_level=args.extproc_log_level,
        extproc_address=ExtprocAddress.parse(args.extproc_address) if args.extproc_address else None,
        auth_dir=args.extproc_auth_dir,
        max_body_bytes=args.max_body_bytes,
        extproc_mtls=args.extproc_mtls,
    )


def controller_settings(
    args: argparse.Namespace, *, inference_v1: bool, inference_objectives: bool
) -> ControllerSettings:
    """What ``args`` configure of the controllers (``setup_controllers``); whether the optional v1
    InferencePool and InferenceObjective CRDs are served is found on the cluster, not in the flags."""
    return ControllerSettings(
        options=build_options(args),
        watch_namespace=args.watch_namespace,
        concurrent_reconciles=args.concurrent_reconciles,
        inference_v1=inference_v1,
        inference_objectives=inference_objectives,
        token_endpoints=Endpoints(
            sts_endpoint=args.aws_sts_endpoint, azure_authority=args.azure_authority_host
        ),
    )


def _buffer_limit(value: str) -> int:
    try:
        return buffer_limit(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


async def run(args: argparse.Namespace) -> int:
    options = build_options(args)
    api = await _api_client(args.kubeconfig)
    try:
        missing = await missing_crds(KubeClient(api), inference=options.enable_inference_extension)
        if missing:
            hint = (
                " (the Gateway API Inference Extension v0.2 CRDs: install them, "
                "or start without --enable-inference-extension)"
                if any(str(r) in m for r in INFERENCE for m in missing)
                else ""
            )
            log.error("required CRDs are not installed: %s%s", ", ".join(missing), hint)
            return 2
        # The Inference Extension's own v1 InferencePool is optional: served when its CRD is installed.
        inference_v1 = options.enable_inference_extension and not await missing_crds(
            KubeClient(api), inference=False, resources=INFERENCE_V1
        )
        # InferenceObjectives (request priorities of v1 pools) likewise, when their CRD is installed too.
        objectives = inference_v1 and not await missing_crds(
            KubeClient(api), inference=False, resources=INFERENCE_OBJECTIVE
        )
        health_host, health_port = _host_port(args.health_probe_bind_address)
        mgr = Manager(
            api_client=api,
            health_host=health_host,
            health_port=health_port,
            leader_election=LeaderElectionConfig(
                name=LEADER_ELECTION_ID, namespace=args.leader_election_namespace
            )
            if args.leader_elect
            else None,
        )
        resolver = DnsResolver(nameserver=args.dns_server, registry=mgr.metrics.registry)
        reconciler = setup_controllers(
            mgr,
            settings=controller_settings(args, inference_v1=inference_v1, inference_objectives=objectives),
            resolver=resolver,
        )
        # the same shared informer setup_controllers registered: the routes' cache
        routes = mgr.informer(AIGATEWAYROUTES, namespace=args.watch_namespace).store
        ext = ExtensionServer(
            address=args.extension_server_address,
            generated=generated_pool_routes(routes),
            guarded=gateways_with_ai_routes(routes),
            registry=mgr.metrics.registry,
            # the cache of the Secrets we own: the ext_proc client pairs Envoy Gateway v1.9 does not send
            client_certificates=extproc_client_certificates(reconciler.owned[SECRETS.kind]),
        )
        await ext.start()
        mgr.add_readyz_check("extension-server", lambda: ext.started)
        if args.metrics_bind_address not in ("0", ""):
            from prometheus_client import start_http_server

            mhost, mport = _host_port(args.metrics_bind_address)
            if (mhost, mport) != (health_host, health_port):
                start_http_server(mport, addr=mhost, registry=mgr.metrics.registry)
        log.info(
            "starting: inference extension %s, extension server %s, ext_proc %s",
            (
                "on (v1 InferencePools and InferenceObjectives too)"
                if objectives
                else "on (v1 InferencePools too)"
                if inference_v1
                else "on"
            )
            if options.enable_inference_extension
            else "off",
            ext.address,
            f"outside the cluster at {args.extproc_address}" if args.extproc_address else args.extproc_image,
        )
        try:
            return await mgr.serve()
        finally:
            await ext.stop()
    finally:
        await api.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
