"""Integration tier: tests here run against the real kube-apiserver, etcd and dnsmasq (never mocks).

Every test collected under this directory gets the ``integration`` marker, so ``pytest -m "not integration"``
runs everything else without the real parts. Missing parts make tests fail, never skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
