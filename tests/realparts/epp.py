"""The Gateway API Inference Extension's endpoint picker (EPP v1.5.0), run against our real API server.

The EPP is built by ``hack/setup-epp.sh`` (``make epp``) into the cache. There is no kubelet, so the model
servers are Pod objects whose status we patch (phase Running, Ready, ``podIP`` on the loopback address where a
simulator listens), as the EPP's own integration tests do; the EPP watches them, scrapes each one's
``/metrics`` every 50 ms and answers Envoy's ext_proc stream with ``x-gateway-destination-endpoint``.

Contract:
- ``epp_assets()`` returns the built EPP (binary, CRDs), building it when missing; raises EppError naming the
  command that fixes a missing Go toolchain or module proxy.
- ``RunningEpp(control_plane=, namespace=, pool=, endpoints=)`` (a RealPart) installs the CRDs, creates the
  namespace, the v1 InferencePool (its ``endpointPickerRef`` the Service ``epp``, also created, on the port
  the EPP listens on; ``failure_mode``), three InferenceObjectives (``critical`` priority 1, ``standard`` 0,
  ``sheddable`` -1: a request names one with the ``x-gateway-inference-objective`` header) and one Ready Pod
  per endpoint, starts the EPP, and returns once the EPP reports every Pod ready.
- ``epp_envoy_bootstrap(listen_port=, epp_port=)`` is the EPP's own Envoy configuration (the module's
  ``test/testdata/envoy.yaml``) reduced to loopback: ext_proc with bodies FULL_DUPLEX_STREAMED and trailers
  sent, and the ORIGINAL_DST cluster on ``x-gateway-destination-endpoint``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from api.inference_v1 import EPP_TLS_ANNOTATION
from tests.realparts.controlplane import ControlPlane
from tests.realparts.ports import free_port
from tests.realparts.processes import RealPart, spawn_logged, stop_process, tail, wait_until
from tests.realparts.simulators import Endpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
EPP_VERSION = os.environ.get("EPP_VERSION", "1.5.0")
DESTINATION_HEADER = "x-gateway-destination-endpoint"
OBJECTIVE_HEADER = "x-gateway-inference-objective"
OBJECTIVE_PRIORITIES = {"critical": 1, "standard": 0, "sheddable": -1}
POD_NAME = "epp-5d8f7c9b6d-x2x4z"  # the EPP derives its own name from a Deployment-shaped pod name
_FIX = "run `make epp` (or `bash hack/setup-epp.sh`) to see why"


class EppError(RuntimeError):
    """The EPP could not be built or started."""


@dataclass(frozen=True, slots=True)
class EppAssets:
    binary: Path
    crds: list[Path]


def epp_assets() -> EppAssets:
    """The EPP binary and its CRDs from the cache, building them (``hack/setup-epp.sh``) when missing."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "setup-epp.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "ERROR" in line] or done.stderr.splitlines()[
            -5:
        ]
        raise EppError(
            f"building the EPP v{EPP_VERSION} failed: {' / '.join(errors)}. Fix that, then run `make epp`."
        )
    out = Path(done.stdout.strip().splitlines()[-1])
    binary = out / "bin" / "epp"
    crds = sorted((out / "crds").glob("*.yaml"))
    if not binary.is_file() or len(crds) < 2:
        raise EppError(f"{out} lacks bin/epp or its CRDs; {_FIX}")
    return EppAssets(binary=binary, crds=crds)


def pool_objects(
    *,
    namespace: str,
    pool: str,
    port: int,
    labels: dict[str, str],
    epp_port: int = 9002,
    failure_mode: str = "FailClose",
    tls: bool = False,
) -> list[dict[str, Any]]:
    """The namespace, the v1 InferencePool selecting ``labels`` on ``port`` with its endpoint picker the
    Service ``epp`` (port ``epp_port``, which the EPP listens on), that Service, and the
    InferenceObjectives."""
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {
                "name": pool,
                "namespace": namespace,
                # our gateway speaks TLS to an EPP unless told it serves plaintext (--secure-serving=false)
                "annotations": {} if tls else {EPP_TLS_ANNOTATION: "false"},
            },
            "spec": {
                "selector": {"matchLabels": labels},
                "targetPorts": [{"number": port}],
                "endpointPickerRef": {
                    "name": "epp",
                    "port": {"number": epp_port},
                    "failureMode": failure_mode,
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "epp", "namespace": namespace},
            "spec": {"ports": [{"name": "grpc", "port": epp_port, "protocol": "TCP"}]},
        },
    ]
    objs += [
        {
            "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
            "kind": "InferenceObjective",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"priority": priority, "poolRef": {"name": pool}},
        }
        for name, priority in OBJECTIVE_PRIORITIES.items()
    ]
    return objs


def pod_object(*, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "model-server", "image": "aigw-sim:local"}]},
    }


def ready_pod_status(ip: str) -> dict[str, Any]:
    """What a kubelet would report for a running, ready pod at ``ip``."""
    return {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }


@dataclass(eq=False)
class RunningEpp(RealPart):
    """The EPP for ``pool`` in ``namespace`` over ``endpoints`` (one Pod each). See the module docstring."""

    control_plane: ControlPlane
    namespace: str
    pool: str
    endpoints: list[Endpoint]
    labels: dict[str, str] = field(default_factory=lambda: {"app": "aigw-sim"})
    failure_mode: str = "FailClose"
    secure_serving: bool = False
    """The EPP's default TLS (a self-signed certificate); off: plaintext, as the EPP's own Envoy config
    here expects."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aigw-epp-")))
    grpc_port: int = 0
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "epp.log"

    def _start(self) -> None:
        if len({e.port for e in self.endpoints}) != 1:
            raise EppError("an InferencePool has one target port: every endpoint must use the same port")
        self.workdir.mkdir(parents=True, exist_ok=True)
        assets = epp_assets()
        cp = self.control_plane
        cp.apply_crds(assets.crds)
        port = self.endpoints[0].port
        # the EPP listens on every address, so its Service's port is the port it really listens on
        self.grpc_port, health_port, self.metrics_port = free_port(), free_port(), free_port()
        objs = pool_objects(
            namespace=self.namespace,
            pool=self.pool,
            port=port,
            labels=self.labels,
            epp_port=self.grpc_port,
            failure_mode=self.failure_mode,
            tls=self.secure_serving,
        )
        cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
        for i, ep in enumerate(self.endpoints):
            name = f"{self.pool}-{i + 1}"
            pod = pod_object(namespace=self.namespace, name=name, labels=self.labels)
            cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
            cp.kubectl(
                "patch", "pod", name, "-n", self.namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps(ready_pod_status(ep.ip)),
            )  # fmt: skip
        argv = [
            str(assets.binary),
            "--pool-name", self.pool,
            "--pool-namespace", self.namespace,
            f"--secure-serving={str(self.secure_serving).lower()}",
            "--metrics-endpoint-auth=false",
            "--grpc-port", str(self.grpc_port),
            "--grpc-health-port", str(health_port),
            "--metrics-port", str(self.metrics_port),
            "--refresh-prometheus-metrics-interval", "1s",
            "--ha-enable-leader-election=false",
        ]  # fmt: skip
        env = {
            **os.environ,
            "KUBECONFIG": str(cp.kubeconfig),
            "POD_NAMESPACE": self.namespace,
            "POD_NAME": POD_NAME,
        }
        try:
            self.proc = spawn_logged("epp", argv, self.log, death_signal=signal.SIGKILL, env=env)
        except OSError as e:
            raise EppError(f"cannot start {assets.binary}: {e}; {_FIX}") from e
        wait_until(
            lambda: self.ready_pods() == len(self.endpoints),
            f"the EPP to see {len(self.endpoints)} ready pods",
            proc=self.proc,
            log=self.log,
            timeout=60,
            error=EppError,
        )

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text

    def ready_pods(self) -> int:
        """The EPP's own ``inference_pool_ready_pods`` for this pool (0 when not reported yet)."""
        for line in self.metrics_text().splitlines():
            if line.startswith("inference_pool_ready_pods{") and f'name="{self.pool}"' in line:
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def kill(self) -> None:
        """Stop the EPP process (an outage); its objects stay."""
        stop_process(self.proc, grace=1)
        self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log, lines)

    def _shutdown(self) -> None:
        stop_process(self.proc, grace=5)
        self.proc = None


_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def epp_envoy_bootstrap(*, listen_port: int, epp_port: int) -> dict[str, Any]:
    """The EPP's Envoy configuration (its ``test/testdata/envoy.yaml``), on loopback ports."""
    ext_proc = {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": "ext_proc"}, "timeout": "10s"},
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SEND",
                "request_body_mode": "FULL_DUPLEX_STREAMED",
                "response_body_mode": "FULL_DUPLEX_STREAMED",
                "request_trailer_mode": "SEND",
                "response_trailer_mode": "SEND",
            },
            "message_timeout": "1000s",
        },
    }
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            "suppress_envoy_headers": True,
        },
    }
    listener = {
        "name": "vllm",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
        "per_connection_buffer_limit_bytes": 32768,
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": "epp",
                            "route_config": {
                                "name": "vllm",
                                "virtual_hosts": [
                                    {
                                        "name": "vllm-default",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                "route": {
                                                    "cluster": "original_destination_cluster",
                                                    "timeout": "86400s",
                                                    "idle_timeout": "86400s",
                                                },
                                            }
                                        ],
                                    }
                                ],
                            },
                            "http_filters": [ext_proc, router],
                        },
                    }
                ]
            }
        ],
    }
    clusters = [
        {
            "name": "original_destination_cluster",
            "type": "ORIGINAL_DST",
            "connect_timeout": "1000s",
            "lb_policy": "CLUSTER_PROVIDED",
            "circuit_breakers": {
                "thresholds": [
                    {
                        "max_connections": 40000,
                        "max_pending_requests": 40000,
                        "max_requests": 40000,
                        "max_retries": 1024,
                    }
                ]
            },
            "original_dst_lb_config": {"use_http_header": True, "http_header_name": DESTINATION_HEADER},
        },
        {
            "name": "ext_proc",
            "type": "STATIC",
            "connect_timeout": "86400s",
            "lb_policy": "LEAST_REQUEST",
            "circuit_breakers": {
                "thresholds": [
                    {"max_connections": 40000, "max_pending_requests": 40000, "max_requests": 40000}
                ]
            },
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "load_assignment": {
                "cluster_name": "ext_proc",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {"address": "127.0.0.1", "port_value": epp_port}
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        },
    ]
    return {"static_resources": {"listeners": [listener], "clusters": clusters}}
