"""Free TCP ports on loopback for the real parts our tests start."""

from __future__ import annotations

import socket
from collections.abc import Sequence


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago.

    The kernel picks it (bind to port 0); the socket is closed before returning, so there is a small window in
    which another process could take it. Callers that can should prefer letting the server bind port 0 itself.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def tcp_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (within 1 s)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def port_free_on(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` right now. With SO_REUSEADDR, as servers bind: a port held
    only by connections in TIME_WAIT counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def common_port(hosts: Sequence[str]) -> int:
    """A TCP port free on every address in ``hosts`` right now (pool members that share one port); the
    kernel picks candidates on ``hosts[0]``. RuntimeError after 100 candidates."""
    for _ in range(100):
        port = free_port(hosts[0])
        if all(port_free_on(h, port) for h in hosts):
            return port
    raise RuntimeError(f"no port free on all of {list(hosts)}")
