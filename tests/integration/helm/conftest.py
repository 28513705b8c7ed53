"""Fixtures of the Helm chart tests.

- ``helm`` (session): the real helm (``make helm``) with a private home; FAILS, never skips, when missing.
- ``bare_control_plane`` (module): a second real API server with the Gateway API and Envoy Gateway CRDs but
  none of ours, so installing the CRD chart creates them (the session ``control_plane`` already has them).
- ``registry`` (module): the real OCI registry (``make registry``) on loopback.
The charts' paths and the values the tests set are in ``values.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.realparts.controlplane import ControlPlane, ControlPlaneError, upstream_crd_dir
from tests.realparts.helm import Helm, HelmError, find_helm
from tests.realparts.processes import RealPart
from tests.realparts.registry import Registry, RegistryError

P = TypeVar("P", bound=RealPart)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The real helm with a private home; fails (never skips) when it has not been built."""
    error = None
    try:
        binary = find_helm()
    except HelmError as e:
        error = str(e)
    if error is not None:
        pytest.fail(error, pytrace=False)
    return Helm(binary, home=tmp_path_factory.mktemp("helm-home"))


def started(part: P, *, what: str, errors: tuple[type[Exception], ...]) -> Iterator[P]:
    """Start ``part``, yield it, stop it; a start that raises one of ``errors`` FAILS the test (never skips)
    with the part's message, and keeps its work directory (logs)."""
    error = None
    try:
        part.start()
    except errors as e:
        error = str(e)
    if error is not None:
        part.stop(keep_workdir=True)
        pytest.fail(f"{what} did not start: {error}\nkept: {part.workdir}", pytrace=False)
    try:
        yield part
    finally:
        part.stop()


class BareControlPlane(ControlPlane):
    """A control plane with the Gateway API and Envoy Gateway CRDs only."""

    def __init__(self) -> None:
        super().__init__(install_crds=False)

    def _start(self) -> None:
        super()._start()
        upstream = sorted(upstream_crd_dir().glob("*.yaml"))
        if not upstream:
            raise ControlPlaneError(f"no CRDs in {upstream_crd_dir()}: run `make envtest`")
        self.apply_crds(upstream)


@pytest.fixture(scope="module")
def bare_control_plane() -> Iterator[ControlPlane]:
    """A real API server with the Gateway API and Envoy Gateway CRDs and none of ours."""
    yield from started(BareControlPlane(), what="the real control plane", errors=(ControlPlaneError,))


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    """The real OCI registry on loopback."""
    yield from started(Registry(), what="the OCI registry", errors=(RegistryError,))
