"""Envoy's global rate limit service (``github.com/envoyproxy/ratelimit``) and its Redis, as local processes,
wired the way Envoy Gateway's Kubernetes provider wires its ``envoy-ratelimit`` Deployment.

Envoy Gateway's Host infrastructure does not run the service (it logs "create/update ratelimit infrastructure
is not supported yet for host infrastructure"), so we do, with the environment Envoy Gateway gives the
container: its limits come over xDS (``CONFIG_TYPE=GRPC_XDS_SOTW``, node ``envoy-ratelimit``) from Envoy
Gateway's rate limit config server on port 18001, over TLS with the ``envoy-rate-limit`` certificate that
``certgen`` made; it serves Envoy's ``ShouldRateLimit`` calls over TLS with the same certificate; its counters
live in Redis.

Contract:
- ``ratelimit_binary()`` is the service built by ``hack/setup-ratelimit.sh`` (``make ratelimit``), building
  it when missing; ``RateLimitError`` names the command that fixes a missing Go toolchain or module proxy.
- ``redis_url(port)`` is how both the service and Envoy Gateway's config name our Redis on ``port``.
- ``RedisServer(port=)`` (a RealPart) runs ``redis-server`` (Debian package redis-server) on loopback
  without persistence; ``start()`` returns once it answers PING. ``command(*args)`` sends one command and
  returns the decoded reply; ``counters(contains)`` reads every key containing ``contains`` with its value.
- ``RateLimitService(binary=, redis_url=, grpc_host=, config=)`` (a RealPart) runs the service on
  ``grpc_host`` and a free port (``grpc_port``; its HTTP and debug ports are free loopback ports). ``config``
  is an ``XdsSource``: Envoy Gateway's config server as a gRPC target (``dns://<dns server>/<name>:18001``
  resolves its name through our dnsmasq) and certgen's certificates; client certificates are then required on
  the gRPC port (Envoy presents Envoy Gateway's ``envoy`` certificate). Or a YAML string: the service's own
  file config, and plain gRPC. ``start()`` returns once ``/healthcheck`` answers 200. ``loaded_config()`` is
  the ``/rlconfig`` debug page: the limits it holds, one line each (empty until the first xDS update).
  ``should_rate_limit(domain=, entries=, hits=)`` asks it through its HTTP ``/json`` endpoint.
- A missing binary raises ``RateLimitError`` naming its fix: a test that needs one fails, it never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.realparts.ports import free_port
from tests.realparts.processes import RealPart, spawn_logged, stop_process, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
XDS_NODE_ID = "envoy-ratelimit"
"""The node id Envoy Gateway's rate limit config server serves the limits to."""
SETUP_HINT = "run `make ratelimit` (or `bash hack/setup-ratelimit.sh`) to build it from the Go module proxy"
REDIS_HINT = "install the Debian package redis-server: `make system-packages` (apt-get install redis-server)"


class RateLimitError(RuntimeError):
    """The rate limit service or Redis could not be found or started. The message says what to do."""


def ratelimit_binary() -> Path:
    """The built service, building it (``hack/setup-ratelimit.sh``) when missing."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "setup-ratelimit.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.splitlines()
        errors = [line for line in lines if "ERROR" in line] or lines[-5:]
        raise RateLimitError(f"building the rate limit service failed: {' / '.join(errors)}; {SETUP_HINT}")
    binary = Path(done.stdout.strip().splitlines()[-1])
    if not os.access(binary, os.X_OK):
        raise RateLimitError(f"{binary} is not an executable; {SETUP_HINT}")
    return binary


def _http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as resp:
        status: int = resp.status
        return status


# ---- Redis ------------------------------------------------------------------------------------------------


def _read_reply(f: IO[bytes]) -> object:
    """One RESP reply from the buffered reader ``f`` (simple and bulk strings, integers, arrays, errors)."""
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RateLimitError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RateLimitError(f"unexpected redis reply {line!r}")


def redis_url(port: int) -> str:
    """The URL of our Redis on ``port``, for both the service's ``REDIS_URL`` and Envoy Gateway's
    ``rateLimit.backend.redis.url`` (which must parse as a URL: a host name, never a bare IP address)."""
    return f"localhost:{port}"


class RedisServer(RealPart):
    """``redis-server`` on loopback. See the module docstring."""

    def __init__(self, *, port: int, workdir: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="aigw-redis-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "redis-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return redis_url(self.port)

    def _start(self) -> None:
        binary = shutil.which("redis-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin")
        if binary is None:
            raise RateLimitError(f"redis-server not found: {REDIS_HINT}")
        args = [
            binary,
            "--bind", self.host, "-::1",  # localhost may resolve to either; "-": ::1 only where it exists
            "--port", str(self.port),
            "--save", "",  # no snapshots, no append-only file: counters live as long as the test
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = spawn_logged("redis-server", args, self.log, death_signal=signal.SIGKILL)
        wait_until(
            lambda: self.command("PING") == "PONG",
            f"redis-server to answer PING on {self.url}",
            proc=self._proc,
            log=self.log,
            timeout=30,
            error=RateLimitError,
        )

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, grace=10)

    def command(self, *args: str) -> object:
        """Send one command, return its decoded reply (str, int, None or a list of those)."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
        )
        with socket.create_connection((self.host, self.port), timeout=5) as s:
            s.sendall(payload)
            with s.makefile("rb") as f:
                return _read_reply(f)

    def counters(self, contains: str) -> dict[str, int]:
        """Every key whose name contains ``contains`` (the rate limit service's counters), with its value."""
        keys = self.command("KEYS", f"*{contains}*")
        assert isinstance(keys, list)
        return {str(k): int(str(self.command("GET", str(k)) or 0)) for k in keys}


# ---- the rate limit service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class XdsSource:
    """Envoy Gateway's rate limit config server: its gRPC target, and the directory of ``certgen``'s
    certificates (``envoy-rate-limit/{tls.crt,tls.key,ca.crt}``), used both ways (to Envoy Gateway, and for
    Envoy's calls)."""

    server: str
    certs: Path


class RateLimitService(RealPart):
    """``github.com/envoyproxy/ratelimit`` as Envoy Gateway configures it. See the module docstring."""

    def __init__(
        self,
        *,
        binary: Path,
        redis_url: str,
        grpc_host: str,
        config: XdsSource | str,
        workdir: Path | None = None,
    ) -> None:
        self.binary = binary
        self.redis_url = redis_url
        self.grpc_host = grpc_host
        self.config = config
        self.grpc_port = 0
        self.http_port = 0
        self.debug_port = 0
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="aigw-ratelimit-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "ratelimit.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_dir(self) -> Path:
        """Where a file config lives (``RUNTIME_ROOT``/``RUNTIME_SUBDIRECTORY``/config)."""
        return self.workdir / "data" / "ratelimit" / "config"

    def environment(self) -> dict[str, str]:
        """The container environment of Envoy Gateway's ``envoy-ratelimit`` Deployment, with our paths and
        ports (pure given the ports; every variable name is the service's own). With a file config (a YAML
        string) instead of an ``XdsSource``: ``CONFIG_TYPE=FILE`` and plain-text gRPC."""
        env = {
            "RUNTIME_ROOT": str(self.workdir / "data"),
            "RUNTIME_SUBDIRECTORY": "ratelimit",
            "RUNTIME_IGNOREDOTFILES": "true",
            "RUNTIME_WATCH_ROOT": "false",
            "LOG_LEVEL": "debug",
            "USE_STATSD": "false",
            "BACKEND_TYPE": "redis",
            "REDIS_SOCKET_TYPE": "tcp",
            "REDIS_URL": self.redis_url,
            "GRPC_HOST": self.grpc_host,
            "GRPC_PORT": str(self.grpc_port),
            "HOST": "127.0.0.1",
            "PORT": str(self.http_port),
            "DEBUG_HOST": "127.0.0.1",
            "DEBUG_PORT": str(self.debug_port),
        }
        if not isinstance(self.config, XdsSource):
            return {**env, "CONFIG_TYPE": "FILE"}
        cert, key, ca = (
            str(self.config.certs / "envoy-rate-limit" / f) for f in ("tls.crt", "tls.key", "ca.crt")
        )
        return {
            **env,
            "CONFIG_TYPE": "GRPC_XDS_SOTW",
            "CONFIG_GRPC_XDS_SERVER_URL": self.config.server,
            "CONFIG_GRPC_XDS_NODE_ID": XDS_NODE_ID,
            "CONFIG_GRPC_XDS_SERVER_USE_TLS": "true",
            "CONFIG_GRPC_XDS_CLIENT_TLS_CERT": cert,
            "CONFIG_GRPC_XDS_CLIENT_TLS_KEY": key,
            "CONFIG_GRPC_XDS_SERVER_TLS_CACERT": ca,
            "FORCE_START_WITHOUT_INITIAL_CONFIG": "true",
            "GRPC_SERVER_USE_TLS": "true",
            "GRPC_SERVER_TLS_CERT": cert,
            "GRPC_SERVER_TLS_KEY": key,
            "GRPC_CLIENT_TLS_CACERT": ca,  # Envoy must present a certificate of the same CA
        }

    def should_rate_limit(self, *, domain: str, entries: list[tuple[str, str]], hits: int) -> str:
        """Ask the service through its HTTP ``/json`` endpoint (the gRPC request in JSON): the overall code
        (``OK`` or ``OVER_LIMIT``) for one descriptor of ``entries`` and ``hits`` hits."""
        # the descriptor's own hits_addend, as Envoy sends a cost: 0 there means "check only" (the request's
        # hits_addend would mean 1 when 0)
        body = {
            "domain": domain,
            "descriptors": [{"entries": [{"key": k, "value": v} for k, v in entries], "hits_addend": hits}],
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/json",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as e:  # 429 carries the same JSON answer
            if e.code != 429:
                raise
            answer = json.load(e)
        code: str = answer["overallCode"]
        return code

    def _start(self) -> None:
        if not os.access(self.binary, os.X_OK):
            raise RateLimitError(f"no rate limit service at {self.binary}: {SETUP_HINT}")
        self.grpc_port = free_port(self.grpc_host)
        self.http_port = free_port()
        self.debug_port = free_port()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        if not isinstance(self.config, XdsSource):
            (self.config_dir / "config.yaml").write_text(self.config)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.environment()}
        try:
            self._proc = spawn_logged(
                "ratelimit", [str(self.binary)], self.log, death_signal=signal.SIGKILL, env=env
            )
        except OSError as e:
            raise RateLimitError(f"cannot run {self.binary}: {e}. {SETUP_HINT}") from e
        wait_until(
            lambda: _http_status(f"http://127.0.0.1:{self.http_port}/healthcheck") == 200,
            "the rate limit service's /healthcheck",
            proc=self._proc,
            log=self.log,
            timeout=60,
            error=RateLimitError,
        )

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, grace=10)

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            raise RateLimitError(f"the rate limit service exited with code {code}; see {self.log}")

    def loaded_config(self) -> str:
        """The ``/rlconfig`` debug page: one line per limit the service holds ('' before any config)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.debug_port}/rlconfig", timeout=5) as resp:
            text: str = resp.read().decode()
            return text
