"""Fixtures: a real Envoy in front of our ext_proc (its own process) and five fake upstreams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.extproc.gatewayconfig import BACKENDS, UPSTREAMS, base_config
from tests.integration.extproc.harness import Gateway, running_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway per test module, serving ``base_config``. Tests that change the config restore it."""
    workdir = tmp_path_factory.mktemp("gateway")
    with running_gateway(
        workdir=workdir, config=base_config, upstream_names=UPSTREAMS, backends=BACKENDS
    ) as gw:
        yield gw
