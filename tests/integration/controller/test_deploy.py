"""``make deploy``'s manifests are accepted by the real API server: the control plane installs
``config/crd`` as ``make deploy`` does, then ``config/default`` (rendered by our kubectl's kustomize) is
server-side applied with ``--dry-run=server`` and strict field validation, so a misplaced or misspelt field, a
bad probe, port or RBAC rule fails here rather than in a kind cluster. Its Namespace is created for real (a
dry run of the rest needs it). The cross-references between the objects are checked in tests/unit/deploy."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.realparts.controlplane import ControlPlane

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_config_default_is_accepted_by_the_api_server(control_plane: ControlPlane) -> None:
    docs = list(yaml.safe_load_all(control_plane.kubectl("kustomize", str(CONFIG / "default")).stdout))
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    rest = [d for d in docs if d["kind"] != "Namespace"]
    assert len(namespaces) == 1 and rest
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(namespaces))
    done = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        input=yaml.safe_dump_all(rest),
    )  # fmt: skip
    applied = sorted(done.stdout.split())
    want = sorted(f"{kubectl_resource(d['kind'])}/{d['metadata']['name']}" for d in rest)
    assert applied == want, done.stderr


def kubectl_resource(kind: str) -> str:
    """``kubectl -o name``'s prefix for ``kind``."""
    group = {
        "ClusterRole": "rbac.authorization.k8s.io",
        "ClusterRoleBinding": "rbac.authorization.k8s.io",
        "Role": "rbac.authorization.k8s.io",
        "RoleBinding": "rbac.authorization.k8s.io",
        "Deployment": "apps",
    }.get(kind)
    return f"{kind.lower()}.{group}" if group else kind.lower()
