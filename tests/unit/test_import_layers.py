"""The package layers in ``pyproject.toml`` (``[tool.importlinter]``) are enforced by ``lint-imports``.

Each case copies the four packages and ``pyproject.toml`` into a temporary directory, adds one module that
breaks one contract (it imports a module that contract forbids), and runs ``lint-imports`` on the copy: that
contract, and only that one, must be reported broken and the command must fail. The untouched copy must pass.
The cases are derived from the contracts themselves, so a contract added later is covered too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "controller", "extproc", "aigw")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> list[dict[str, Any]]:
    with (REPO / "pyproject.toml").open("rb") as f:
        contracts: list[dict[str, Any]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return contracts


def _violations() -> list[tuple[str, str, str]]:
    """(contract, source package, module to import): its first forbidden module, and asyncio if listed."""
    cases = []
    for contract in _contracts():
        assert contract["type"] == "forbidden", "a new contract type needs its own violation here"
        forbidden = contract["forbidden_modules"]
        picks = [forbidden[0]] + (["asyncio"] if "asyncio" in forbidden[1:] else [])
        cases += [(contract["name"], contract["source_modules"][0], module) for module in picks]
    return cases


def _copy_tree(dest: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")


def _concrete(module: str, root: Path) -> str:
    """A real module for an expression like ``pkg.*``: the first child of ``pkg`` in the copy."""
    if not module.endswith(".*"):
        return module
    parent = module.removesuffix(".*")
    children = sorted(p.stem for p in (root / parent.replace(".", "/")).glob("*.py") if p.stem != "__init__")
    assert children, f"{parent} has no modules to import"
    return f"{parent}.{children[0]}"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: run `make setup` (import-linter is a dev dependency)")
    # PYTHONPATH makes the copy, not the editable install, the packages lint-imports analyses; COLUMNS keeps
    # each contract's verdict on one line.
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "500"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def _verdicts(output: str) -> dict[str, str]:
    names = {c["name"] for c in _contracts()}
    verdicts = {}
    for line in output.splitlines():
        for name in names:
            if line.startswith(f"{name} "):
                verdicts[name] = line.removeprefix(f"{name} ").split()[0]
    return verdicts


def test_the_tree_as_committed_keeps_every_contract(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _verdicts(result.stdout) == {c["name"]: "KEPT" for c in _contracts()}


@pytest.mark.parametrize(("contract", "source", "target"), _violations())
def test_a_forbidden_import_fails_lint_imports(
    tmp_path: Path, contract: str, source: str, target: str
) -> None:
    _copy_tree(tmp_path)
    imported = _concrete(target, tmp_path)
    violation = tmp_path / source.replace(".", "/") / "_layer_violation.py"
    violation.write_text(f'"""A deliberate layer violation."""\n\nimport {imported}  # noqa: F401\n')

    result = _lint(tmp_path)

    assert result.returncode != 0, result.stdout
    verdicts = _verdicts(result.stdout)
    assert verdicts[contract] == "BROKEN", result.stdout
    assert [name for name, verdict in verdicts.items() if verdict == "BROKEN"] == [contract]
    assert f"{source}._layer_violation -> {imported}" in result.stdout
