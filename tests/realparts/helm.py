"""The real Helm CLI for tests: the binary ``hack/setup-helm.sh`` builds, run with a private home.

Contract:
- ``find_helm()`` is ``$AIGW_HELM`` when set, else ``<cache>/helm/<HELM_VERSION>/bin/helm``; it raises
  ``HelmError`` saying to run ``make helm`` when the binary is missing. Callers in pytest turn that into a
  failure, never a skip.
- ``Helm(binary, home=)`` runs ``helm`` with ``HELM_CACHE_HOME``/``HELM_CONFIG_HOME``/``HELM_DATA_HOME`` under
  ``home`` (no user state is read or written) and, when given, ``--kubeconfig``. ``run`` returns the completed
  process; with ``check`` (the default) a non-zero exit raises ``HelmError`` carrying the command and stderr.
- ``template(chart, *args)`` is ``helm template`` parsed into a list of documents; ``set_args(values)`` turns
  ``{"dotted.key": value}`` into ``--set-json`` arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.realparts.processes import cache_root

HELM_VERSION = os.environ.get("HELM_VERSION", "4.3.2")
SETUP_HINT = "run `make helm` (or `bash hack/setup-helm.sh`) to build helm from the Go module proxy"


class HelmError(RuntimeError):
    """helm is missing or exited non-zero; the message says which, with its stderr."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def find_helm() -> Path:
    """The helm binary to run, or HelmError naming the command that builds it."""
    path = Path(os.environ["AIGW_HELM"]) if os.environ.get("AIGW_HELM") else default_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise HelmError(f"no helm binary at {path}: {SETUP_HINT}")
    return path


def default_path() -> Path:
    """Where ``hack/setup-helm.sh`` puts helm ``HELM_VERSION``."""
    return cache_root() / "helm" / HELM_VERSION / "bin" / "helm"


class Helm:
    """One helm binary with a private home, optionally bound to one cluster's kubeconfig."""

    def __init__(self, binary: Path, *, home: Path, kubeconfig: Path | None = None) -> None:
        self.binary = binary
        self.home = home
        self.kubeconfig = kubeconfig

    def with_kubeconfig(self, kubeconfig: Path) -> Helm:
        """The same helm and home, talking to the cluster of ``kubeconfig``."""
        return Helm(self.binary, home=self.home, kubeconfig=kubeconfig)

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``helm <args>``; raise HelmError on a non-zero exit when ``check``."""
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        env.pop("KUBECONFIG", None)
        cmd = [str(self.binary), *args]
        if self.kubeconfig is not None:
            cmd.append(f"--kubeconfig={self.kubeconfig}")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise HelmError(
                f"helm exited {done.returncode}: {' '.join(cmd)}\nstderr: {done.stderr}", stderr=done.stderr
            )
        return done

    def template(
        self, chart: Path | str, *args: str, release: str = "aigw", namespace: str = "default"
    ) -> list[dict[str, Any]]:
        """``helm template`` of ``chart`` (a directory, an archive or an ``oci://`` reference; more ``args``,
        e.g. ``--set k=v``): the rendered documents."""
        done = self.run("template", release, str(chart), "--namespace", namespace, *args)
        return [d for d in yaml.safe_load_all(done.stdout) if d]


def set_args(values: dict[str, Any]) -> list[str]:
    """``--set-json key=<json>`` for each dotted key of ``values``: any value type, no quoting rules."""
    out: list[str] = []
    for key, value in values.items():
        out += ["--set-json", f"{key}={json.dumps(value)}"]
    return out
