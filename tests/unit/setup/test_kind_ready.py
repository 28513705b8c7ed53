"""``hack/kind-ready.sh`` (asked by ``.ci/run`` before the kind tier): ready only when docker answers and no
image of the cluster needs a cold Go build; otherwise one line naming why, and nothing built or changed.

``docker`` is a fake on a private PATH (which images exist, whether the daemon answers); the cache is a
temporary directory; bash and coreutils are the real ones.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

KIND_READY = Path(__file__).resolve().parents[3] / "hack" / "kind-ready.sh"
KUBE = ("kubelet", "kubeadm", "kube-proxy", "kube-controller-manager", "kube-scheduler")


def _run(
    tmp_path: Path, *, answers: bool = True, images: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    known = " ".join(images)
    docker.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = info ] && exit {0 if answers else 1}\n'
        f'if [ "$1 $2" = "image inspect" ]; then\n'
        f'  for i in {known}; do [ "$i" = "$3" ] && exit 0; done; exit 1\n'
        "fi\n"
        "exit 2\n"
    )
    docker.chmod(0o755)
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(KIND_READY)],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "AIGW_CACHE_DIR": str(tmp_path / "cache"),
            "HOME": str(tmp_path),
        },
        capture_output=True,
        text=True,
        check=False,
    )


def _touch(tmp_path: Path, *relative: str) -> None:
    for r in relative:
        path = tmp_path / "cache" / r
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def _cached_parts(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "kind/0.33.0/bin/kind",
        *(f"kind/k8s-1.36.3/bin/{c}" for c in KUBE),
        "kind/k8s-1.36.3/images.tar",
        "kind/base-0.33.0/bin/containerd-fuse-overlayfs-grpc",
        "envoy-gateway/eg-1.9.0_envoy-1.39.0/bin/envoy-gateway",
    )


def test_a_docker_that_does_not_answer_is_the_reason(tmp_path: Path) -> None:
    _cached_parts(tmp_path)
    result = _run(tmp_path, answers=False)
    assert result.returncode == 1
    assert result.stdout.strip() == "docker does not answer (sudo make docker-engine installs and starts it)"


def test_an_empty_cache_names_every_cold_build(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    for part in (
        "kind/0.33.0/bin/kind (hack/setup-kind.sh)",
        *(f"kind/k8s-1.36.3/bin/{c} (hack/build-kube-node.sh)" for c in KUBE),
        "kind/k8s-1.36.3/images.tar (hack/build-node-images.sh)",
        "kind/base-0.33.0/bin/containerd-fuse-overlayfs-grpc (hack/build-kind-base.sh)",
        "(hack/setup-envoy-gateway.sh)",
    ):
        assert part in result.stdout
    assert not (tmp_path / "cache" / "kind").exists(), "it must not create or build anything"


def test_the_cached_go_builds_alone_are_ready(tmp_path: Path) -> None:
    _cached_parts(tmp_path)
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ready: ")


def test_one_missing_binary_is_named(tmp_path: Path) -> None:
    _cached_parts(tmp_path)
    (tmp_path / "cache" / "kind" / "k8s-1.36.3" / "bin" / "kubeadm").unlink()
    result = _run(tmp_path)
    assert result.returncode == 1
    assert "missing kind/k8s-1.36.3/bin/kubeadm (hack/build-kube-node.sh)" in result.stdout


def test_built_images_stand_for_their_go_builds(tmp_path: Path) -> None:
    _touch(tmp_path, "kind/0.33.0/bin/kind")
    images = ("aigw.local/kind-node:v1.36.3", "aigw.local/envoy-gateway:v1.9.0")
    assert _run(tmp_path, images=images).returncode == 0
    assert _run(tmp_path, images=images[:1]).returncode == 1
