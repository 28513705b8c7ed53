"""The container engine and the images built without an image registry (hack/setup-docker.sh,
hack/build-base-images.sh, hack/build-kind-base.sh, hack/build-node-images.sh, `make image`)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time

import pytest

from tests.kind.conftest import CACHE, K8S_VERSION, PREFIX, docker, docker_pipe, require_image


def test_privileged_containers_run_through_the_runtime_shim(docker_engine: None) -> None:
    assert docker("info", "--format", "{{.DefaultRuntime}}").stdout.strip() == "aigw-runc"
    image = require_image(f"{PREFIX}/debian:trixie", "make base-images")
    run = docker("run", "--rm", "--privileged", image, "sh", "-c", "echo privileged-ok")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "privileged-ok"


def test_our_image_runs_as_non_root_on_a_read_only_root(docker_engine: None) -> None:
    image = require_image("ai-gateway-py:dev", "make image")
    who = docker("run", "--rm", "--read-only", image, "id", "-u")
    assert who.stdout.strip() == "65532", who.stderr
    for command in ("aigw-controller", "aigw-extproc"):
        run = docker("run", "--rm", "--read-only", image, command, "--help")
        assert run.returncode == 0, run.stderr
        assert f"usage: {command}" in run.stdout


def test_the_kind_base_boots_systemd_and_runs_nested_privileged_containers(node_container: str) -> None:
    state = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = docker("exec", node_container, "systemctl", "is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    assert state in ("running", "degraded"), f"systemd in the node: {state!r}"
    assert docker("exec", node_container, "systemctl", "is-active", "containerd").stdout.strip() == "active"
    # Nested: an image imported into the node's containerd runs privileged (the node's runc is the shim).
    image = require_image(f"{PREFIX}/debian:trixie", "make base-images")
    ctr = ["exec", "-i", node_container, "ctr", "-n", "k8s.io"]
    imported = docker_pipe(["save", image], [*ctr, "images", "import", "-"])
    assert imported.returncode == 0, imported.stderr
    nested = docker(
        "exec", node_container, "ctr", "-n", "k8s.io", "run", "--rm", "--privileged",
        f"{PREFIX}/debian:trixie", "nested", "sh", "-c", "echo nested-ok",
    )  # fmt: skip
    assert nested.returncode == 0, nested.stderr
    assert nested.stdout.strip() == "nested-ok"


def test_the_node_images_archive_names_what_kubeadm_lists() -> None:
    archive = CACHE / "kind" / f"k8s-{K8S_VERSION}" / "images.tar"
    bin_dir = CACHE / "kind" / f"k8s-{K8S_VERSION}" / "bin"
    if not archive.is_file() or not (bin_dir / "kubeadm").is_file():
        pytest.fail(f"{archive} or {bin_dir}/kubeadm is missing: run `make kind-images`")
    listed = subprocess.run(
        [str(bin_dir / "kubeadm"), "config", "images", "list", "--kubernetes-version", f"v{K8S_VERSION}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        tags = {t for entry in json.load(member) for t in entry["RepoTags"]}
    # kind's containerd config names its own pause tag (the sandbox image); kubeadm's other names are all in.
    assert {r for r in listed if "/pause:" not in r} <= tags
    assert any(t.startswith("registry.k8s.io/pause:") for t in tags)
