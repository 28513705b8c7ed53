"""The kind tier's real parts: docker with the runtime shim, and the images hack/ builds. Nothing here is
faked; a missing part fails the test with the command that builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("AIGW_IMAGE_PREFIX", "aigw.local")
KIND_VERSION = os.environ.get("KIND_VERSION", "0.33.0")
K8S_VERSION = os.environ.get("K8S_VERSION", "1.36.3")
CACHE = Path(
    os.environ.get("AIGW_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-gateway-py"
)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; the result is returned whatever the exit code (callers assert on it)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def docker_pipe(
    source: list[str], sink: list[str], *, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    """`docker <source> | docker <sink>`: the sink's result; fails the test when the source fails."""
    produced = subprocess.run(["docker", *source], capture_output=True, timeout=timeout, check=False)
    if produced.returncode != 0:
        pytest.fail(f"docker {' '.join(source)}: {produced.stderr.decode(errors='replace')}")
    return subprocess.run(
        ["docker", *sink], input=produced.stdout, capture_output=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A docker daemon that answers; fails naming `make docker-engine` otherwise."""
    if shutil.which("docker") is None or docker("info").returncode != 0:
        pytest.fail("no working docker daemon: run `sudo make docker-engine` (hack/setup-docker.sh)")


def require_image(ref: str, fix: str) -> str:
    """The image reference when docker has it; fails naming the command that builds it otherwise."""
    if docker("image", "inspect", ref).returncode != 0:
        pytest.fail(f"image {ref} is missing: run `{fix}`")
    return ref


@pytest.fixture
def node_container(docker_engine: None) -> Iterator[str]:
    """A container of our kind base image started the way kind starts a node (privileged, systemd as PID 1,
    /var a volume); removed afterwards with its volumes."""
    image = require_image(f"{PREFIX}/kind-base:v{KIND_VERSION}", "make kind-images")
    name = f"aigw-kind-test-{os.getpid()}"
    started = docker(
        "run", "-d", "--name", name, "--privileged", "--security-opt", "seccomp=unconfined",
        "--tmpfs", "/tmp", "--tmpfs", "/run", "-v", "/var", "-v", "/lib/modules:/lib/modules:ro",
        "-e", "container=docker", image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield name
    finally:
        docker("rm", "-f", "-v", name)


CONTEXT = "kind-ai-gateway-py"
NAMESPACE = "envoy-ai-gateway-system"  # ours: config/default and the chart's namespace in kind-up


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    cached = next(CACHE.glob(f"testbin/k8s-{K8S_VERSION}_etcd-*/kubectl"), None)
    if cached is None:
        pytest.fail("no kubectl: run `make envtest`")
    return str(cached)


def kubectl(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        [kubectl_path(), "--context", CONTEXT, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def cluster() -> None:
    if subprocess.run(
        [kubectl_path(), "--context", CONTEXT, "get", "deploy", "-n", NAMESPACE],
        capture_output=True, timeout=60, check=False,
    ).returncode != 0:  # fmt: skip
        pytest.fail(f"no kind cluster {CONTEXT} with our controller: run `make kind-up AIGW_KIND_LOCAL=1`")
    kubectl("apply", "-f", str(REPO / "config" / "samples" / "gateway.yaml"))


# What a failed test in this tier prints about the cluster: enough to tell a slow machine from a broken
# component without the cluster (CI deletes it right after).
DIAGNOSTICS: tuple[tuple[str, ...], ...] = (
    ("get", "pods", "-A", "-o", "wide"),
    ("get", "events", "-A", "--sort-by=.lastTimestamp"),
    ("get", "gateways,aigatewayroutes,aiservicebackends,inferencepools", "-A"),
    ("-n", NAMESPACE, "logs", "-l", "app.kubernetes.io/name=ai-gateway-controller", "--tail=80", "--prefix"),
    ("logs", "-l", "app.kubernetes.io/name=ai-eg-extproc", "--all-containers", "--tail=80", "--prefix"),
    ("-n", "envoy-gateway-system", "logs", "deploy/envoy-gateway", "--tail=80"),
)


def cluster_diagnostics() -> str:
    """The outputs of DIAGNOSTICS, each under its command line (a command that fails shows its error)."""
    parts = []
    for args in DIAGNOSTICS:
        try:
            done = subprocess.run(
                [kubectl_path(), "--context", CONTEXT, *args],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            out = (done.stdout + done.stderr).strip()
        except (subprocess.TimeoutExpired, pytest.fail.Exception) as e:
            out = f"(not available: {e})"
        parts.append(f"$ kubectl {' '.join(args)}\n{out[-6000:]}")
    return "\n\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the cluster gets the cluster's state in its report."""
    report = yield
    if report.failed and "cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("kind cluster at the failure", cluster_diagnostics()))
    return report
