"""Fixtures of the e2e harness: the real API server and Envoy Gateway (Host infrastructure: it starts Envoy on
this machine), and, for the scenarios, our controller with its extension server, our ext_proc and a real DNS
server (``tests/e2e/harness.py``).

Envoy Gateway binds fixed ports, so the e2e tests run serially (one harness per machine). A missing real part
fails the test; it never skips. Every process logs under ``tests.e2e.artifacts.ARTIFACTS``; a failing test's
report carries the tail of each log, and a session with a failure keeps the directory.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.filterconfig import CONFIG_KEY
from tests.e2e import artifacts, objects
from tests.e2e.harness import (
    ConfigMapProjector,
    Scenario,
    SecretProjector,
    TLSProjector,
    Upstreams,
    project_atomically,
    scenario,
)
from tests.e2e.kube import Kube
from tests.e2e.processes import LoggedProcess, ProcessError
from tests.realparts.controlplane import ControlPlane, ControlPlaneError
from tests.realparts.dns import DnsServer, DnsServerError
from tests.realparts.envoygateway import EG_NAMESPACE, RATE_LIMIT_XDS_PORT, EnvoyGateway, EnvoyGatewayError
from tests.realparts.ports import free_port, port_free_on
from tests.realparts.ratelimit import (
    RateLimitError,
    RateLimitService,
    RedisServer,
    XdsSource,
    ratelimit_binary,
    redis_url,
)
from tests.realparts.tinyca import TinyCA

DNS_TTL = 5
"""Seconds: the TTL of every dnsmasq answer (scenario 6 expects traffic to move within it plus a little)."""

_failed = False


TEST_TIMEOUT = 300
"""Seconds per test, harness start-up included (pytest-timeout): a hung part fails a test, not the CI job."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and "tests/e2e/" in str(item.fspath):
        global _failed
        _failed = True
        for title, text in artifacts.log_sections():
            report.sections.append((title, text))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if artifacts.MEASUREMENTS:
        terminalreporter.section("e2e measurements")
        for name, value in artifacts.MEASUREMENTS.items():
            terminalreporter.write_line(f"{name}: {value}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not artifacts.ARTIFACTS.exists():
        return
    if _failed or exitstatus not in (0, 5) or artifacts.KEEP_ALWAYS:
        print(f"\n[e2e] logs of every process are kept under {artifacts.ARTIFACTS}")
    else:
        shutil.rmtree(artifacts.ARTIFACTS, ignore_errors=True)


def console_script(name: str) -> str:
    """Path of one of our console scripts, installed next to this interpreter (``make setup``)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run `make setup` (pip install -e '.[dev]') to install our console scripts"
        )
    return str(path)


@contextlib.contextmanager
def serving(proc: LoggedProcess, host: str, port: int, timeout: float = 60) -> Iterator[LoggedProcess]:
    """Wait until the started ``proc`` listens on ``host:port`` (fail the test if it does not), keep its log
    in failure reports while the block runs, stop it afterwards."""
    artifacts.register(proc.name, lambda: [proc.log])
    try:
        try:
            proc.wait_tcp(host, port, timeout=timeout)
        except ProcessError as e:
            pytest.fail(str(e))
        yield proc
    finally:
        proc.stop()
        artifacts.unregister(proc.name)


@contextlib.contextmanager
def running_envoy_gateway(
    name: str,
    control_plane: ControlPlane,
    kube: Kube,
    artifacts_dir: Path,
    extension_server: tuple[str, int] | None = None,
    rate_limit_redis_url: str | None = None,
) -> Iterator[EnvoyGateway]:
    """Envoy Gateway (logs under ``<artifacts>/<name>``) with the Secrets a certgen job would have made."""
    eg = EnvoyGateway(
        kubeconfig=control_plane.kubeconfig,
        extension_server=extension_server,
        workdir=artifacts_dir / name,
        rate_limit_redis_url=rate_limit_redis_url,
    )
    artifacts.register(name, lambda: [eg.log, *eg.envoy_run_logs()])
    try:
        eg.start()
    except EnvoyGatewayError as e:
        pytest.fail(f"Envoy Gateway did not start: {e}")
    try:
        kube.apply(*eg.certificate_secrets())
        yield eg
    finally:
        eg.stop(keep_workdir=True)
        artifacts.unregister(name)


def failed() -> bool:
    """Whether any e2e test failed so far (teardowns keep their logs then)."""
    return _failed


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with our CRDs and the Gateway API / Envoy Gateway CRDs installed."""
    cp = ControlPlane()
    try:
        cp.start()
    except ControlPlaneError as e:
        pytest.fail(f"the real control plane did not start: {e}")
    artifacts.register("control plane", lambda: [cp.apiserver_log])
    yield cp
    if _failed:
        shutil.copytree(cp.logs_dir, artifacts.ARTIFACTS / "control-plane", dirs_exist_ok=True)
    artifacts.unregister("control plane")
    cp.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    """kubectl on the control plane, with Envoy Gateway's namespace and our GatewayClass in place."""
    k = Kube(control_plane)
    k.apply(objects.namespace(EG_NAMESPACE), objects.gateway_class())
    return k


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    artifacts.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return artifacts.ARTIFACTS


# ---- the full harness: our controller + extension server, our ext_proc, DNS, Envoy Gateway ----------------


@dataclass(frozen=True)
class Addresses:
    """Loopback addresses of the harness processes (chosen once per session)."""

    extension_server: tuple[str, int]
    extproc: tuple[str, int]
    extproc_metrics: str
    controller_metrics: str
    controller_health: str
    redis_port: int
    """Where the rate limit service's Redis listens when a scenario asks for it (``rate_limit``); Envoy
    Gateway's config names it from the start."""


@pytest.fixture(scope="session")
def addresses() -> Addresses:
    return Addresses(
        extension_server=("127.0.0.1", free_port()),
        extproc=("127.0.0.1", free_port()),
        extproc_metrics=f"127.0.0.1:{free_port()}",
        controller_metrics=f"127.0.0.1:{free_port()}",
        controller_health=f"127.0.0.1:{free_port()}",
        redis_port=free_port(),
    )


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    """dnsmasq answering the names our scenarios give it, with a short TTL (scenario 6 waits on it)."""
    server = DnsServer(ttl=DNS_TTL)
    try:
        server.start()
    except DnsServerError as e:
        pytest.fail(f"the real DNS server did not start: {e}")
    artifacts.register("dnsmasq", lambda: [server.log_file])
    yield server
    if _failed:
        shutil.copy(server.log_file, artifacts.ARTIFACTS / "dnsmasq.log")
    artifacts.unregister("dnsmasq")
    server.close()


@pytest.fixture(scope="session")
def extproc(addresses: Addresses, artifacts_dir: Path) -> Iterator[LoggedProcess]:
    """Our ext_proc, serving the file the projector writes (as the kubelet would project the ConfigMap)."""
    config = artifacts_dir / "extproc" / CONFIG_KEY
    config.parent.mkdir(parents=True, exist_ok=True)
    host, port = addresses.extproc
    tls = artifacts_dir / "extproc" / "tls"
    # Mutual TLS only, as in the cluster. Until the first scenario's Gateway has its material (projected by
    # tls_projector), it serves a throwaway pair no client holds.
    boot = TinyCA("e2e bootstrap, trusted by nobody")
    server = boot.issue("ai-gateway ext_proc", dns_names=("bootstrap.invalid",), server=True)
    project_atomically(
        tls, {"tls.crt": server.cert_pem, "tls.key": server.key_pem, "ca.crt": boot.pair.cert_pem}
    )
    proc = LoggedProcess(
        "aigw-extproc",
        [
            console_script("aigw-extproc"),
            "--config",
            str(config),
            "--listen",
            f"{host}:{port}",
            "--metrics-listen",
            addresses.extproc_metrics,
            "--log-level",
            "info",
            *("--tls-cert", str(tls / "tls.crt"), "--tls-key", str(tls / "tls.key")),
            *("--tls-client-ca", str(tls / "ca.crt")),
        ],
        artifacts_dir,
    ).start()
    with serving(proc, host, port):
        yield proc


@pytest.fixture(scope="session")
def controller(
    control_plane: ControlPlane,
    kube: Kube,
    dns_server: DnsServer,
    addresses: Addresses,
    artifacts_dir: Path,
) -> Iterator[LoggedProcess]:
    """``aigw-controller`` with its extension server in-process and the ext_proc outside the cluster."""
    host, port = addresses.extension_server
    xhost, xport = addresses.extproc
    proc = LoggedProcess(
        "aigw-controller",
        [
            console_script("aigw-controller"),
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--dns-server",
            f"{dns_server.address}:{dns_server.port}",
            "--enable-inference-extension",
            # small enough that scenario 12 can cross it cheaply, large enough for its 3 MB bodies
            "--max-body-bytes",
            "8Mi",
            "--extension-server-address",
            f"{host}:{port}",
            "--extproc-address",
            f"{xhost}:{xport}",
            "--extproc-auth-dir",
            str(artifacts_dir / "extproc" / "auth"),  # where auth_projector writes the auth Secret
            "--extproc-mtls",  # the Gateway's TLS material: tls_projector gives the ext_proc its part
            "--metrics-address",
            addresses.controller_metrics,
            "--health-address",
            addresses.controller_health,
            # a closed loopback port: no scenario's policy may make the credential rotation reach a public
            # token endpoint
            "--aws-sts-endpoint",
            "http://127.0.0.1:9",
            "--azure-authority-host",
            "http://127.0.0.1:9",
        ],
        artifacts_dir,
    ).start()
    # Stopped after Envoy Gateway (fixture order): Envoy Gateway blocks on an extension server that is gone.
    with serving(proc, host, port, timeout=90):
        yield proc


@pytest.fixture(scope="session")
def envoy_gateway(
    control_plane: ControlPlane,
    kube: Kube,
    controller: LoggedProcess,
    addresses: Addresses,
    artifacts_dir: Path,
) -> Iterator[EnvoyGateway]:
    """Envoy Gateway with our extension server as its extensionManager, and global rate limiting on (the
    service itself runs only for the scenarios that ask for ``rate_limit``)."""
    with running_envoy_gateway(
        "envoy-gateway",
        control_plane,
        kube,
        artifacts_dir,
        extension_server=addresses.extension_server,
        rate_limit_redis_url=redis_url(addresses.redis_port),
    ) as eg:
        yield eg


@pytest.fixture(scope="session")
def projector(kube: Kube, extproc: LoggedProcess, artifacts_dir: Path) -> Iterator[ConfigMapProjector]:
    config = artifacts_dir / "extproc" / CONFIG_KEY
    p = ConfigMapProjector(kube, config, artifacts_dir / "projector.log")
    artifacts.register("projector", lambda: [p.log, p.path])
    yield p
    p.stop()
    artifacts.unregister("projector")


@pytest.fixture(scope="session")
def auth_projector(kube: Kube, extproc: LoggedProcess, artifacts_dir: Path) -> Iterator[SecretProjector]:
    p = SecretProjector(kube, artifacts_dir / "extproc" / "auth", artifacts_dir / "auth-projector.log")
    artifacts.register("auth-projector", lambda: [p.log])  # the log only: never the credentials
    yield p
    p.stop()
    artifacts.unregister("auth-projector")


@pytest.fixture(scope="session")
def tls_projector(kube: Kube, extproc: LoggedProcess, artifacts_dir: Path) -> Iterator[TLSProjector]:
    p = TLSProjector(kube, artifacts_dir / "extproc" / "tls", artifacts_dir / "tls-projector.log")
    artifacts.register("tls-projector", lambda: [p.log])  # the log only: never the keys
    yield p
    p.stop()
    artifacts.unregister("tls-projector")


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    u = Upstreams()
    yield u
    u.close()


@pytest.fixture
def scn(
    request: pytest.FixtureRequest,
    kube: Kube,
    envoy_gateway: EnvoyGateway,
    extproc: LoggedProcess,
    projector: ConfigMapProjector,
    auth_projector: SecretProjector,
    tls_projector: TLSProjector,
    upstreams: Upstreams,
    addresses: Addresses,
) -> Iterator[Scenario]:
    """A fresh namespace and Gateway for one scenario; everything it applied is deleted afterwards."""
    name = "e2e-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:40].strip(
        "-"
    )
    with scenario(
        name=name,
        kube=kube,
        envoy_gateway=envoy_gateway,
        projector=projector,
        auth_projector=auth_projector,
        tls_projector=tls_projector,
        upstreams=upstreams,
        extproc_metrics=addresses.extproc_metrics,
    ) as s:
        yield s
        extproc.check_alive()


# ---- opt-in: the rate limit service Envoy Gateway's Kubernetes provider would deploy, and its Redis -------


RATE_LIMIT_IP = "127.0.0.161"
"""The loopback address our dnsmasq gives ``envoy-ratelimit``'s Service name (its gRPC port is a free one)."""


@dataclass(frozen=True)
class RateLimit:
    redis: RedisServer
    service: RateLimitService


@pytest.fixture
def rate_limit(
    envoy_gateway: EnvoyGateway, dns_server: DnsServer, addresses: Addresses, artifacts_dir: Path
) -> Iterator[RateLimit]:
    """Redis and ``envoy-ratelimit`` as processes, with the Service names of both ends (``envoy-gateway``'s,
    where the service fetches its limits, and ``envoy-ratelimit``'s, where Envoy calls it) answered by our
    dnsmasq. A scenario still has to point its Envoy's DNS at dnsmasq and at the service's port
    (``tests/e2e/test_14_token_budget.py`` shows how)."""
    names = {
        objects.service_fqdn("envoy-gateway", EG_NAMESPACE): ["127.0.0.1"],
        objects.service_fqdn("envoy-ratelimit", EG_NAMESPACE): [RATE_LIMIT_IP],
    }
    dns_server.set_records({**dns_server.records, **names})
    try:
        binary = ratelimit_binary()
    except RateLimitError as e:
        pytest.fail(str(e))
    # the port Envoy Gateway's config names, unless something took it since (Envoy Gateway's Host
    # infrastructure only validates that URL: the service gets the one Redis really listens on)
    port = addresses.redis_port if port_free_on("127.0.0.1", addresses.redis_port) else free_port()
    redis = RedisServer(port=port, workdir=artifacts_dir / "redis")
    eg_host = objects.service_fqdn("envoy-gateway", EG_NAMESPACE)
    xds = f"dns://{dns_server.address}:{dns_server.port}/{eg_host}"
    service = RateLimitService(
        binary=binary,
        redis_url=redis.url,
        grpc_host=RATE_LIMIT_IP,
        config=XdsSource(
            server=f"{xds}:{RATE_LIMIT_XDS_PORT}", certs=envoy_gateway.workdir / "config" / "certs"
        ),
        workdir=artifacts_dir / "ratelimit",
    )
    artifacts.register("rate limit", lambda: [service.log, redis.log])
    try:
        try:
            redis.start()
            service.start()
        except RateLimitError as e:
            pytest.fail(f"the rate limit service did not start: {e}")
        yield RateLimit(redis=redis, service=service)
        service.check_alive()
    finally:
        # the logs stay in the artifacts directory (removed with it when the whole session passed)
        service.stop(keep_workdir=True)
        redis.stop(keep_workdir=True)
        artifacts.unregister("rate limit")
        dns_server.set_records({k: v for k, v in dns_server.records.items() if k not in names})
