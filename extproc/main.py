"""``aigw-extproc``: run the ext_proc against a filter config file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path

from extproc.app import ExtProcApp
from extproc.tls import MutualTLSFiles, TLSFilesError

_DESCRIPTION = """\
The AI gateway's Envoy external processor (ext_proc). Envoy sends it every request to /v1/chat/completions,
/v1/completions, /v1/embeddings and /v1/models; it parses the body's "model", picks the rule, the backend and,
for an InferencePool, the endpoint, sets the routing headers Envoy routes on, answers bad requests with
OpenAI-style JSON errors, and counts tokens from the responses.

The filter config (YAML, the controller's "filter-config.yaml") is reloaded within a second of changing; a
file
that fails to validate is logged, counted, and never replaces the config being served.

Envoy's ext_proc filter must use: request_header_mode SEND, request_body_mode BUFFERED, response_header_mode
SEND, response_body_mode BUFFERED, allow_mode_override true (SSE responses switch to STREAMED), and
mutation_rules.allow_all_routing true (to set Host for pool endpoints with a hostname).
"""

_EPILOG = """\
example:
  aigw-extproc --config filter-config.yaml --listen 127.0.0.1:1063 --metrics-listen 127.0.0.1:9190

metrics (Prometheus) at http://<metrics-listen>/metrics, liveness at /health;
gRPC health on the ext_proc port.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="aigw-extproc",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        required=True,
        metavar="PATH",
        help="the filter config file to serve and watch (required)",
    )
    p.add_argument(
        "--listen",
        default="0.0.0.0:1063",
        metavar="ADDR",
        help="gRPC address: host:port or unix:/path/to.sock (default 0.0.0.0:1063)",
    )
    tls = p.add_argument_group(
        "mutual TLS",
        "all three, or none: with them the gRPC port speaks TLS only and refuses any client without a "
        "certificate signed by --tls-client-ca (so only the gateway's Envoy sees the credentials the "
        "ext_proc injects); the files are re-read when they change",
    )
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="server certificate chain (PEM)")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    tls.add_argument("--tls-client-ca", type=Path, metavar="FILE", help="CA bundle of allowed clients (PEM)")
    p.add_argument(
        "--metrics-listen",
        default="0.0.0.0:9190",
        metavar="HOST:PORT",
        help="HTTP address for /metrics and /health (default 0.0.0.0:9190; 'off' disables)",
    )
    p.add_argument(
        "--reload-interval",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="how often to check the config and credential files for changes (default 0.25)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM, how long open requests may finish (default 10)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed the random draws (backends, target models, endpoints); for tests only",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default info)",
    )
    args = p.parse_args(argv)
    given = [args.tls_cert, args.tls_key, args.tls_client_ca]
    if any(given) and not all(given):
        p.error("--tls-cert, --tls-key and --tls-client-ca go together (mutual TLS needs all three)")
    return args


def _tls_files(args: argparse.Namespace) -> MutualTLSFiles | None:
    if args.tls_cert is None:
        return None
    return MutualTLSFiles(cert=args.tls_cert, key=args.tls_key, client_ca=args.tls_client_ca)


async def _run(args: argparse.Namespace) -> None:
    app = ExtProcApp(
        tls=_tls_files(args),
        config_path=args.config,
        listen=args.listen,
        metrics_listen=None if args.metrics_listen == "off" else args.metrics_listen,
        reload_interval=args.reload_interval,
        seed=args.seed,
    )
    await app.start()
    gc.collect()
    gc.freeze()  # start-up objects never need scanning again: shorter GC pauses on the hot path
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger(__name__).info("stopping: draining open streams for up to %.1fs", args.grace)
    await app.stop(grace=args.grace)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aigw-extproc`` console script."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        pass
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(args))
    except TLSFilesError as e:
        raise SystemExit(f"aigw-extproc: {e}") from None


if __name__ == "__main__":
    main()
