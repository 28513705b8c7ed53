"""Free TCP ports on loopback for the real parts our tests start."""

from __future__ import annotations

import socket


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
