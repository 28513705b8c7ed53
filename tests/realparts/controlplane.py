"""A real Kubernetes control plane for tests: etcd + kube-apiserver on loopback, started like envtest.

Contract:
- ``ControlPlane().start()`` starts etcd and kube-apiserver on free loopback ports with generated certificates
  (serving CA, a separate client CA with an admin certificate in ``system:masters``, a service-account signing
  key) and RBAC on, writes a kubeconfig, installs every CRD in ``config/crd/*.yaml`` plus the Gateway API and
  Envoy Gateway CRDs from the cache that ``hack/setup-envtest.sh`` fills, and returns once every CRD is
  Established and served by discovery. ``stop()`` ends both processes and removes the work directory.
- Any failure to find the binaries or to start raises ``ControlPlaneError`` with a message saying what to do
  (usually: run ``make envtest``). Callers in pytest turn it into a failure, never a skip.
- A plain class (also a context manager) so the e2e harness and the benchmarks can use it outside pytest.
  Methods are synchronous; call them through ``asyncio.to_thread`` from async code.
- To make a watch or an exact-version list answer 410 Gone (an informer's relist path): ``compact_etcd()``,
  then ``stop_apiserver()`` + ``start_apiserver()``. Without the restart the watch cache still serves the old
  versions from memory.

Binary lookup follows envtest: ``TEST_ASSET_KUBE_APISERVER`` / ``TEST_ASSET_ETCD`` / ``TEST_ASSET_KUBECTL``,
then the directory ``KUBEBUILDER_ASSETS``, then our cache
``$AIGW_CACHE_DIR/testbin/k8s-<K8S_VERSION>_etcd-<ETCD_VERSION>`` (default ``~/.cache/ai-gateway-py``).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import Configuration

from tests.realparts.ports import free_port
from tests.realparts.processes import RealPart, cache_root, spawn_logged, stop_process, tail, wait_until
from tests.realparts.tinyca import TinyCA

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = os.environ.get("K8S_VERSION", "1.36.3")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "3.6.16")
EG_VERSION = os.environ.get("EG_VERSION", "1.9.0")
GAIE_VERSION = os.environ.get("GAIE_VERSION", "1.5.0")
SETUP_HINT = "run `make envtest` (or `bash hack/setup-envtest.sh`) to build kube-apiserver, etcd and kubectl"


class ControlPlaneError(RuntimeError):
    """The control plane could not be found, started or used. The message says what to do."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; ``str()`` includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


def upstream_crd_dir() -> Path:
    """Gateway API + Envoy Gateway CRDs extracted by ``hack/setup-envtest.sh``."""
    return cache_root() / "crds" / f"eg-{EG_VERSION}"


@dataclass(frozen=True)
class Binaries:
    """Paths of the three binaries the control plane runs."""

    kube_apiserver: Path
    etcd: Path
    kubectl: Path

    @property
    def assets(self) -> Path:
        """The directory of kube-apiserver (the others usually sit next to it)."""
        return self.kube_apiserver.parent


def find_binaries() -> Binaries:
    """Locate kube-apiserver, etcd and kubectl (envtest's lookup order), or raise ControlPlaneError."""
    dirs: list[Path] = []
    if env := os.environ.get("KUBEBUILDER_ASSETS"):
        dirs.append(Path(env))
    dirs.append(cache_root() / "testbin" / f"k8s-{K8S_VERSION}_etcd-{ETCD_VERSION}")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name, var in (
        ("kube-apiserver", "TEST_ASSET_KUBE_APISERVER"),
        ("etcd", "TEST_ASSET_ETCD"),
        ("kubectl", "TEST_ASSET_KUBECTL"),
    ):
        candidates = [Path(os.environ[var])] if os.environ.get(var) else [d / name for d in dirs]
        path = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
        if path is None:
            missing.append(f"{name} (looked at {', '.join(map(str, candidates))})")
        else:
            found[name] = path
    if missing:
        raise ControlPlaneError(f"missing control-plane binaries: {'; '.join(missing)}. {SETUP_HINT}")
    return Binaries(found["kube-apiserver"], found["etcd"], found["kubectl"])


def gaie_crd_dir() -> Path:
    """The Inference Extension's v1 InferencePool and InferenceObjective CRDs (``hack/setup-envtest.sh``)."""
    return cache_root() / "crds" / f"gaie-{GAIE_VERSION}"


def crd_files() -> list[Path]:
    """Every CRD file to install: ours (``config/crd/*.yaml``), then Gateway API and Envoy Gateway, then the
    Inference Extension's v1 CRDs."""
    upstream, gaie = upstream_crd_dir(), gaie_crd_dir()
    if not (upstream / "gatewayapi-crds.yaml").is_file():
        raise ControlPlaneError(f"missing Gateway API / Envoy Gateway CRDs in {upstream}. {SETUP_HINT}")
    if len(list(gaie.glob("*.yaml"))) < 2:
        raise ControlPlaneError(f"missing the Inference Extension's CRDs in {gaie}. {SETUP_HINT}")
    return (
        sorted((REPO_ROOT / "config" / "crd").glob("*.yaml"))
        + sorted(upstream.glob("*.yaml"))
        + sorted(gaie.glob("*.yaml"))
    )


def _served_names(crd: dict[str, Any]) -> Iterable[tuple[str, str]]:
    """(group/version, plural) pairs a CRD serves, to check discovery."""
    spec = crd["spec"]
    for version in spec["versions"]:
        if version.get("served", True):
            yield f"{spec['group']}/{version['name']}", spec["names"]["plural"]


class ControlPlane(RealPart):
    """etcd + kube-apiserver on loopback. See the module docstring for the contract."""

    def __init__(self, *, start_timeout: float | None = None, install_crds: bool = True) -> None:
        self.start_timeout = start_timeout or float(os.environ.get("AIGW_CONTROLPLANE_START_TIMEOUT", "60"))
        self.install_crds = install_crds
        self.workdir = Path(tempfile.mkdtemp(prefix="aigw-controlplane-"))
        self.logs_dir = self.workdir / "logs"
        self.logs_dir.mkdir()
        self._certs = self.workdir / "certs"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.etcd_port = 0
        self.secure_port = 0
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._binaries: Binaries | None = None

    # ---- public surface ---------------------------------------------------------------------------------

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    @property
    def assets(self) -> Path:
        """Directory of the kube-apiserver binary in use."""
        return self.binaries.assets

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.secure_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def etcd_log(self) -> Path:
        return self.logs_dir / "etcd.log"

    @property
    def apiserver_log(self) -> Path:
        return self.logs_dir / "kube-apiserver.log"

    def _start(self) -> None:
        """Start etcd, kube-apiserver, install the CRDs; raise ControlPlaneError on failure."""
        crds = crd_files() if self.install_crds else []
        self.binaries  # noqa: B018 -- fail early, before generating anything
        self._write_certs()
        self._start_etcd()
        self.secure_port = free_port()
        self._write_kubeconfig()
        self.start_apiserver()
        if crds:
            self.apply_crds(crds)

    def client_configuration(self) -> Configuration:
        """A fresh kubernetes_asyncio Configuration authenticated as the admin (system:masters)."""
        config = Configuration(host=self.server)
        config.ssl_ca_cert = str(self._certs / "serving-ca.crt")
        config.cert_file = str(self._certs / "admin.crt")
        config.key_file = str(self._certs / "admin.key")
        config.verify_ssl = True
        return config

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run our kubectl against this control plane; raise KubectlError on non-zero exit if ``check``."""
        cmd = [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, cmd, done.stdout, done.stderr)
        return done

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (SIGTERM, then SIGKILL after 30 s). etcd keeps running."""
        stop_process(self._apiserver, grace=30)
        self._apiserver = None

    def start_apiserver(self) -> None:
        """(Re)start kube-apiserver on the same port with the same certificates and etcd; wait for /readyz."""
        if self._apiserver is not None and self._apiserver.poll() is None:
            raise ControlPlaneError("kube-apiserver is already running")
        self._apiserver = self._spawn(
            "kube-apiserver",
            [str(self.binaries.kube_apiserver), *self._apiserver_flags()],
            self.apiserver_log,
        )
        self._wait_until(
            lambda: self._get_json("/readyz", raw=True) == "ok",
            "kube-apiserver /readyz",
            self._apiserver,
            self.apiserver_log,
        )

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision (physically) and return that revision."""
        header = self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode(), "limit": 1})
        revision = int(header["header"]["revision"])
        self._etcd_post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def apply_crds(self, files: list[Path]) -> None:
        """Create (or replace) the CRDs in ``files``, then wait until each is Established and served.

        Plain creates over HTTPS: server-side apply of the large Gateway API / Envoy Gateway schemas
        costs the API server several extra seconds of CPU for managedFields we never read.
        """
        crds = [
            doc
            for f in files
            for doc in yaml.safe_load_all(f.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"
        ]
        for crd in crds:
            self._create_or_replace_crd(crd)
        names = {c["metadata"]["name"] for c in crds}
        wanted = {gv_plural for c in crds for gv_plural in _served_names(c)}

        def ready() -> bool:
            listed = self._get_json("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            established = {
                item["metadata"]["name"]
                for item in listed["items"]
                if any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (item.get("status") or {}).get("conditions") or []
                )
            }
            if not names <= established:
                return False
            for gv in {gv for gv, _ in wanted}:
                served = {r["name"] for r in self._get_json(f"/apis/{gv}")["resources"]}
                if any(plural not in served for g, plural in wanted if g == gv):
                    return False
            return True

        self._wait_until(ready, "CRDs Established and served", self._apiserver, self.apiserver_log)

    def log_tails(self, lines: int = 60) -> dict[str, str]:
        """The last ``lines`` lines of each process log, keyed by log file name."""
        return {p.name: tail(p, lines) for p in (self.etcd_log, self.apiserver_log)}

    # ---- internals --------------------------------------------------------------------------------------

    def _write_certs(self) -> None:
        self._certs.mkdir(exist_ok=True)
        serving = TinyCA("envtest-environment", ("envtest",))
        serving.pair.write_pair(self._certs / "serving-ca.crt", self._certs / "serving-ca.key")
        serving.issue(
            "localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True
        ).write_pair(self._certs / "apiserver.crt", self._certs / "apiserver.key")
        client_ca = TinyCA("client-cert-auth-ca", ("envtest",))
        client_ca.pair.write_pair(
            self._certs / "client-cert-auth-ca.crt", self._certs / "client-cert-auth-ca.key"
        )
        client_ca.issue("default", organizations=("system:masters",), client=True).write_pair(
            self._certs / "admin.crt", self._certs / "admin.key"
        )
        sa = TinyCA("sa-signer")
        sa.pair.write_pair(self._certs / "sa-signer.crt", self._certs / "sa-signer.key")

    def _write_kubeconfig(self) -> None:
        def b64(name: str) -> str:
            return base64.b64encode((self._certs / name).read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.server, "certificate-authority-data": b64("serving-ca.crt")},
                }
            ],
            "users": [
                {
                    "name": "envtest",
                    "user": {
                        "client-certificate-data": b64("admin.crt"),
                        "client-key-data": b64("admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "envtest"}}],
            "current-context": "envtest",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def _start_etcd(self) -> None:
        self.etcd_port, peer = free_port(), free_port()
        args = [
            str(self.binaries.etcd),
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",  # throwaway data: durability costs seconds on a shared disk
        ]
        self._etcd = self._spawn("etcd", args, self.etcd_log)

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as resp:
                return bool(json.load(resp).get("health") == "true")

        self._wait_until(healthy, "etcd /health", self._etcd, self.etcd_log)

    def _apiserver_flags(self) -> list[str]:
        c = self._certs
        return [
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={c}",  # holds apiserver.crt/.key, picked up without --tls-cert-file
            f"--secure-port={self.secure_port}",
            "--bind-address=127.0.0.1",
            # Loopback-only machines have no default route; without this the apiserver refuses to start.
            "--advertise-address=127.0.0.1",
            # ... and the `kubernetes` Service may not point at loopback: skip its endpoints rather than log
            # a validation error every 10 s.
            "--endpoint-reconciler-type=none",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # No controller-manager runs, so no ServiceAccount tokens could ever be created.
            "--disable-admission-plugins=ServiceAccount",
            "--authorization-mode=RBAC",
            f"--client-ca-file={c / 'client-cert-auth-ca.crt'}",
            f"--service-account-issuer={self.server}/",
            f"--service-account-key-file={c / 'sa-signer.crt'}",
            f"--service-account-signing-key-file={c / 'sa-signer.key'}",
        ]

    def _spawn(self, name: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        try:
            # SIGKILL, not SIGTERM, when pytest dies: etcd and kube-apiserver die at once, and a
            # kube-apiserver whose etcd is gone hangs in its graceful shutdown forever.
            return spawn_logged(name, args, log, death_signal=signal.SIGKILL, cwd=self.workdir)
        except OSError as e:
            raise ControlPlaneError(f"cannot run {args[0]}: {e}. {SETUP_HINT}") from e

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self._certs / "serving-ca.crt"))
        ctx.load_cert_chain(str(self._certs / "admin.crt"), str(self._certs / "admin.key"))
        return ctx

    def _get_json(self, path: str, *, raw: bool = False) -> Any:
        with urllib.request.urlopen(self.server + path, context=self._ssl_context(), timeout=5) as resp:
            body = resp.read().decode()
        return body if raw else json.loads(body)

    def _send_json(self, method: str, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.server + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=60) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            if e.code == 409:
                raise
            raise ControlPlaneError(
                f"{method} {path} failed: {e.code} {e.read().decode(errors='replace')}"
            ) from e

    def _create_or_replace_crd(self, crd: dict[str, Any]) -> None:
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        try:
            self._send_json("POST", base, crd)
        except urllib.error.HTTPError:  # 409: it exists; replace it at its current resourceVersion
            name = crd["metadata"]["name"]
            current = self._get_json(f"{base}/{name}")
            replacement = {
                **crd,
                "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            self._send_json("PUT", f"{base}/{name}", replacement)

    def _etcd_post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def _wait_until(
        self, check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes] | None, log: Path
    ) -> None:
        wait_until(
            check,
            what,
            proc=proc,
            log=log,
            timeout=self.start_timeout,
            error=ControlPlaneError,
            tail_lines=40,
        )

    def _shutdown(self) -> None:
        """Stop both processes (SIGTERM, then SIGKILL after 30 s)."""
        stop_process(self._apiserver, grace=30)
        self._apiserver = None
        stop_process(self._etcd, grace=30)
        self._etcd = None
