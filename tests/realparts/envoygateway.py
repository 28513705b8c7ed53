"""The real Envoy Gateway v1.9 as a local process: Kubernetes resources from our API server, Envoy on the
host.

Contract (provider Custom with Kubernetes resources read through a kubeconfig and Host infrastructure, the
topology Envoy Gateway accepts since v1.9.0; the README's e2e section says how it differs from a cluster):
- ``EnvoyGateway(kubeconfig=...).start()`` runs ``envoy-gateway certgen --local`` into its own config home,
  copies the control-plane certificates to ``/certs`` (Envoy Gateway hard-codes that path for the xDS server
  and the topology-injector webhook when its resources come from Kubernetes; needs root), writes an
  ``EnvoyGateway`` config (provider Custom: resources Kubernetes through ``kubeconfig``, infrastructure Host
  with its own config, state and runtime dirs and the cache's data dir where ``hack/setup-envoy-gateway.sh``
  seeded Envoy 1.39.0), starts ``envoy-gateway server`` and returns once its health probe says ready and
  xDS accepts connections.
- With ``extension_server=(host, port)`` the config carries an ``extensionManager`` with hooks
  ``post: [VirtualHost, Translation]`` and every ``translation.*.includeAll`` on. Envoy Gateway blocks on an
  extension server that is down, so start ours first and stop it after ``stop()``.
- With ``rate_limit_redis_url`` the config enables global rate limiting (``rateLimit.backend.redis.url``,
  fail closed, a timeout a loaded machine meets): Envoy Gateway then serves the limits of every
  ``BackendTrafficPolicy`` to the rate limit service over xDS on port 18001 (fixed, checked like the
  others), and points each Envoy's ``ratelimit_cluster`` at
  ``envoy-ratelimit.envoy-gateway-system.svc.cluster.local:8081``. Its Host infrastructure does not run that
  service: ``tests/realparts/ratelimit.py`` does.
- Envoy Gateway starts one Envoy per Gateway (func-e, no download). ``envoy_admin_addresses()`` reads the
  ``admin-address.txt`` files func-e writes; ``wait_for_listener(port)`` waits until an Envoy answers there.
- Ports fixed by Envoy Gateway (xDS 18000, health 8081, controller metrics 8080, webhook 9443) make it one
  instance per machine: ``start()`` takes an exclusive file lock and fails with a clear message when a fixed
  port is taken. The admin port is picked free.
- Every byte Envoy Gateway and its Envoys print goes to ``log`` (``<workdir>/logs/envoy-gateway.log``); func-e
  also keeps per-run logs under ``<workdir>/state/envoy-runs/``. ``stop(keep_workdir=True)`` keeps them all.
- Missing binaries or a failed start raise ``EnvoyGatewayError`` whose message says what to do: a test that
  needs Envoy Gateway fails, it never skips.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from tests.realparts.ports import free_port, port_free_on, tcp_open
from tests.realparts.processes import RealPart, cache_root, spawn_logged, stop_process, tail, wait_until

EG_VERSION = os.environ.get("EG_VERSION", "1.9.0")
ENVOY_VERSION = os.environ.get("ENVOY_VERSION", "1.39.0")
SETUP_HINT = "run `make envoy-gateway` (or `bash hack/setup-envoy-gateway.sh`) to build and seed it"
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
EG_NAMESPACE = "envoy-gateway-system"
CERTS_DIR = Path(os.environ.get("AIGW_EG_CERTS_DIR", "/certs"))
LOCK_FILE = Path(tempfile.gettempdir()) / "aigw-envoy-gateway.lock"
# Ports Envoy Gateway binds whatever its config says (all interfaces).
FIXED_PORTS: dict[int, str] = {
    18000: "xDS server",
    8081: "health probe",
    8080: "controller-runtime metrics",
    9443: "topology-injector webhook",
}
RATE_LIMIT_XDS_PORT = 18001
"""Where Envoy Gateway serves the rate limit service's config (all interfaces) when rate limiting is on."""
RATE_LIMIT_TIMEOUT = "5s"
"""How long Envoy waits for the rate limit service (Envoy Gateway's default, 20 ms, is missed on a loaded
machine)."""


class EnvoyGatewayError(RuntimeError):
    """Envoy Gateway could not be found, started or used. The message says what to do."""


@dataclass(frozen=True)
class Install:
    """Where the built Envoy Gateway binary and the func-e data dir (seeded Envoy) live."""

    binary: Path
    data_home: Path

    @property
    def envoy(self) -> Path:
        return self.data_home / "envoy-versions" / ENVOY_VERSION / "bin" / "envoy"


def find_install() -> Install:
    """``$ENVOY_GATEWAY_BIN`` / ``$ENVOY_GATEWAY_DATA_HOME``, else the version-keyed cache; must exist."""
    root = cache_root() / "envoy-gateway" / f"eg-{EG_VERSION}_envoy-{ENVOY_VERSION}"
    binary = Path(os.environ.get("ENVOY_GATEWAY_BIN") or root / "bin" / "envoy-gateway")
    data_home = Path(os.environ.get("ENVOY_GATEWAY_DATA_HOME") or root / "data")
    install = Install(binary=binary, data_home=data_home)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise EnvoyGatewayError(f"no envoy-gateway binary at {binary}: {SETUP_HINT}")
    if not (install.envoy.exists() and os.access(install.envoy, os.X_OK)):
        raise EnvoyGatewayError(f"no Envoy {ENVOY_VERSION} seeded at {install.envoy}: {SETUP_HINT}")
    return install


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            status: int = resp.status
            return 200 <= status < 300
    except (OSError, urllib.error.URLError):
        return False


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _secret(name: str, type_: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": EG_NAMESPACE},
        "type": type_,
        "data": data,
    }


def envoy_gateway_config(
    *,
    workdir: Path,
    data_home: Path,
    admin_port: int,
    extension_server: tuple[str, int] | None,
    log_level: str = "info",
    rate_limit_redis_url: str | None = None,
) -> dict[str, Any]:
    """The ``EnvoyGateway`` config document (pure; see the module docstring for what it selects).

    The kubeconfig is not part of it: Envoy Gateway finds it through ``KUBECONFIG`` (controller-runtime).
    """
    config: dict[str, Any] = {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyGateway",
        "gateway": {"controllerName": CONTROLLER_NAME},
        "logging": {"level": {"default": log_level}},
        "provider": {
            "type": "Custom",
            "custom": {
                "resource": {
                    "type": "Kubernetes",
                    "kubernetes": {"leaderElection": {"disable": True}},
                },
                "infrastructure": {
                    "type": "Host",
                    "host": {
                        "configHome": str(workdir / "config"),
                        "dataHome": str(data_home),
                        "stateHome": str(workdir / "state"),
                        "runtimeDir": str(workdir / "run"),
                    },
                },
            },
        },
        "admin": {"address": {"host": "127.0.0.1", "port": admin_port}},
        "telemetry": {"metrics": {"prometheus": {"disable": True}}},
        "extensionApis": {"enableBackend": True, "enableEnvoyPatchPolicy": True},
    }
    if extension_server is not None:
        host, port = extension_server
        include_all = {"includeAll": True}
        config["extensionManager"] = {
            "hooks": {
                "xdsTranslator": {
                    "post": ["VirtualHost", "Translation"],
                    "translation": {
                        "listener": include_all,
                        "route": include_all,
                        "cluster": include_all,
                        "secret": include_all,
                    },
                }
            },
            "service": {"fqdn": {"hostname": host, "port": port}},
            "failOpen": False,
        }
    if rate_limit_redis_url is not None:
        config["rateLimit"] = {
            "backend": {"type": "Redis", "redis": {"url": rate_limit_redis_url}},
            "timeout": RATE_LIMIT_TIMEOUT,
            "failClosed": True,  # a request the service did not judge is refused, never let through unseen
        }
    return config


class EnvoyGateway(RealPart):
    """``envoy-gateway server`` with Host infrastructure. See the module docstring for the contract."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        extension_server: tuple[str, int] | None = None,
        workdir: Path | None = None,
        start_timeout: float | None = None,
        log_level: str = "info",
        rate_limit_redis_url: str | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.extension_server = extension_server
        self.rate_limit_redis_url = rate_limit_redis_url
        self.start_timeout = start_timeout or float(os.environ.get("AIGW_EG_START_TIMEOUT", "90"))
        self.log_level = log_level
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="aigw-envoy-gateway-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir = self.workdir / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.config_path = self.workdir / "envoy-gateway.yaml"
        self.log = self.logs_dir / "envoy-gateway.log"
        self.admin_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None
        self._install: Install | None = None

    # ---- public surface ---------------------------------------------------------------------------------

    @property
    def install(self) -> Install:
        if self._install is None:
            self._install = find_install()
        return self._install

    @property
    def state_home(self) -> Path:
        return self.workdir / "state"

    @property
    def runtime_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def _start(self) -> None:
        """Make certs, write the config, start Envoy Gateway, wait until it serves."""
        self.install  # noqa: B018 -- fail early, before touching /certs
        self._take_lock()
        self._check_fixed_ports()
        self._certgen()
        self.admin_port = free_port()
        config = envoy_gateway_config(
            workdir=self.workdir,
            data_home=self.install.data_home,
            admin_port=self.admin_port,
            extension_server=self.extension_server,
            log_level=self.log_level,
            rate_limit_redis_url=self.rate_limit_redis_url,
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._spawn()
        self._wait_until(lambda: _http_ok("http://127.0.0.1:8081/readyz"), "the health probe /readyz")
        self._wait_until(lambda: tcp_open("127.0.0.1", 18000), "the xDS server on 18000")
        if self.rate_limit_redis_url is not None:
            self._wait_until(
                lambda: tcp_open("127.0.0.1", RATE_LIMIT_XDS_PORT),
                f"the rate limit xDS server on {RATE_LIMIT_XDS_PORT}",
            )

    def _shutdown(self) -> None:
        """SIGTERM Envoy Gateway (it stops its Envoys), SIGKILL after 30 s; release the machine lock."""
        self._terminate()
        self._release_lock()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def envoy_admin_addresses(self) -> list[str]:
        """``host:port`` of the admin API of every Envoy func-e started (newest run last)."""
        files = sorted(
            [*self.runtime_dir.rglob("admin-address.txt"), *self.state_home.rglob("admin-address.txt")],
            key=lambda p: p.stat().st_mtime,
        )
        seen: list[str] = []
        for f in files:
            address = f.read_text().strip()
            if address and address not in seen:
                seen.append(address)
        return seen

    def envoy_run_logs(self) -> list[Path]:
        """Per-run Envoy logs func-e keeps (stdout.log / stderr.log)."""
        return sorted(self.state_home.glob("envoy-runs/*/*.log"))

    def wait_for_listener(self, port: int, host: str = "127.0.0.1", timeout: float = 60) -> None:
        """Wait until something (an Envoy that Envoy Gateway started) accepts TCP on ``host:port``."""
        self._wait_until(lambda: tcp_open(host, port), f"an Envoy listener on {host}:{port}", timeout=timeout)

    def config_dump(self, admin_address: str) -> dict[str, Any]:
        """Envoy's ``/config_dump`` (with EDS) from the given admin address."""
        import json

        url = f"http://{admin_address}/config_dump?include_eds"
        with urllib.request.urlopen(url, timeout=10) as resp:
            dump: dict[str, Any] = json.load(resp)
        return dump

    def certificate_secrets(self) -> list[dict[str, Any]]:
        """The Secrets an in-cluster ``certgen`` job would create in Envoy Gateway's namespace, from this
        run's certificates (``envoy``, ``envoy-gateway``, ``envoy-rate-limit`` as TLS Secrets with ``ca.crt``,
        and ``envoy-oidc-hmac``). Apply them after ``start()``: without them every translation logs errors."""
        certs = self.workdir / "config" / "certs"
        out: list[dict[str, Any]] = []
        for name in ("envoy", "envoy-gateway", "envoy-rate-limit"):
            data = {f: _b64(certs / name / f) for f in ("tls.crt", "tls.key", "ca.crt")}
            out.append(_secret(name, "kubernetes.io/tls", data))
        out.append(
            _secret(
                "envoy-oidc-hmac", "Opaque", {"hmac-secret": _b64(certs / "envoy-oidc-hmac" / "hmac-secret")}
            )
        )
        return out

    def log_tails(self, lines: int = 80) -> dict[str, str]:
        """Last lines of Envoy Gateway's log and of every Envoy run log, keyed by path."""
        out = {str(self.log): tail(self.log, lines)}
        for p in self.envoy_run_logs():
            out[str(p)] = tail(p, lines)
        return out

    # ---- internals --------------------------------------------------------------------------------------

    def _take_lock(self) -> None:
        self._lock = LOCK_FILE.open("wb")
        deadline = time.monotonic() + float(os.environ.get("AIGW_EG_LOCK_TIMEOUT", "600"))
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EnvoyGatewayError(
                        f"another Envoy Gateway harness holds {LOCK_FILE}: fixed ports, one per machine"
                    ) from None
                time.sleep(1)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _check_fixed_ports(self) -> None:
        fixed = dict(FIXED_PORTS)
        if self.rate_limit_redis_url is not None:
            fixed[RATE_LIMIT_XDS_PORT] = "rate limit xDS server"
        busy = [f"{port} ({what})" for port, what in fixed.items() if not port_free_on("0.0.0.0", port)]
        if busy:
            who = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout
            raise EnvoyGatewayError(
                f"Envoy Gateway needs these fixed ports but they are taken: {', '.join(busy)}\n{who}"
            )

    def _certgen(self) -> None:
        config_home = self.workdir / "config"
        done = subprocess.run(
            [str(self.install.binary), "certgen", "--local", "--config-home", str(config_home)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        (self.logs_dir / "certgen.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise EnvoyGatewayError(f"envoy-gateway certgen --local failed:\n{done.stdout}{done.stderr}")
        source = config_home / "certs" / "envoy-gateway"
        try:
            CERTS_DIR.mkdir(parents=True, exist_ok=True)
            for name in ("tls.crt", "tls.key", "ca.crt"):
                shutil.copyfile(source / name, CERTS_DIR / name)
        except OSError as e:
            raise EnvoyGatewayError(
                f"cannot copy the xDS server certificates to {CERTS_DIR} ({e}): Envoy Gateway reads them "
                "from there when its resources come from Kubernetes; run as root"
            ) from e

    def _spawn(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "ENVOY_GATEWAY_NAMESPACE": EG_NAMESPACE}
        args = [str(self.install.binary), "server", "--config-path", str(self.config_path)]
        try:
            # SIGTERM when pytest dies: Envoy Gateway then stops its Envoys. Its own session: stop() can reach
            # the Envoys it forked.
            self._proc = spawn_logged(
                "envoy-gateway",
                args,
                self.log,
                death_signal=signal.SIGTERM,
                cwd=self.workdir,
                env=env,
                new_session=True,
            )
        except OSError as e:
            raise EnvoyGatewayError(f"cannot run {args[0]}: {e}. {SETUP_HINT}") from e

    def _wait_until(self, check: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        wait_until(
            check,
            what,
            proc=self._proc,
            log=self.log,
            timeout=timeout or self.start_timeout,
            error=EnvoyGatewayError,
        )

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc, grace=30)
        # Envoys func-e started share the session: make sure none outlives Envoy Gateway.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
