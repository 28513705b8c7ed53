"""``aigw-sim``: run one or more simulated vLLM replicas in one process until SIGINT/SIGTERM.

    aigw-sim --config sim.yaml --listen 127.0.0.21:8000 --listen 127.0.0.22:8000

Each ``--listen`` is one replica with its own engine, KV cache and /metrics, named ``--name`` (one replica) or
``<--name>-<n>`` (n from 1), and seeded with the config's seed + n - 1. Prints one ``ready <name>
http://host:port`` line per replica once all are serving, so a parent process can wait for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from aigw.sim.config import SimConfig, SimConfigError, load_config
from aigw.sim.server import Replica


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aigw-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, help="simulator parameters (YAML); default: the built-in defaults")
    p.add_argument(
        "--listen",
        type=_listen,
        action="append",
        metavar="HOST:PORT",
        help="serve one replica here (repeat for more; default 127.0.0.1:8000)",
    )
    p.add_argument("--name", default="sim", help="replica name (prefix, with several) (default %(default)s)")
    p.add_argument(
        "--any-model",
        action="store_true",
        help="answer any model name that is not an adapter as the base model (accept_any_model)",
    )
    return p


async def serve(*, config: SimConfig, listens: list[tuple[str, int]], name: str) -> None:
    """Start every replica, print their ready lines, and serve until cancelled or signalled."""
    replicas = [
        Replica(
            name=name if len(listens) == 1 else f"{name}-{i + 1}",
            config=config,
            host=h,
            port=port,
            seed_offset=i,
        )
        for i, (h, port) in enumerate(listens)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for r in replicas:
            await r.start()
        for r in replicas:
            print(f"ready {r.name} {r.url}", flush=True)
        await stop.wait()
    finally:
        for r in replicas:
            with contextlib.suppress(Exception):
                await r.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config) if args.config else SimConfig()
        if args.any_model:
            config = config.model_copy(update={"accept_any_model": True})
    except SimConfigError as e:
        print(f"aigw-sim: {e}", file=sys.stderr)
        return 2
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    try:
        asyncio.run(serve(config=config, listens=args.listen or [("127.0.0.1", 8000)], name=args.name))
    except OSError as e:
        print(f"aigw-sim: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
