"""Fixtures of the ``aigw run`` tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.standalone.harness import Prepared, prepared_examples


@pytest.fixture
def examples(tmp_path: Path) -> Prepared:
    """A copy of ``examples/standalone`` on free demo-upstream ports, for the test to run and edit."""
    return prepared_examples(tmp_path / "examples")
