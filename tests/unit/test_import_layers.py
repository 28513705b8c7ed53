"""The package layers in ``pyproject.toml`` (``[tool.importlinter]``) are enforced by ``lint-imports``.

Each case copies the four packages and ``pyproject.toml`` into a temporary directory, breaks one contract (an
import that a ``forbidden`` contract forbids, an import between two independent layers of a ``layers``
contract, or two sibling modules that import each other for an ``acyclic_siblings`` contract), and runs
``lint-imports`` on the copy: that contract, and only that one, must be reported broken and the command must
fail. The untouched copy must pass. The cases are derived from the contracts themselves, so a contract added
later is covered too.
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


def _violations() -> list[tuple[str, dict[str, str]]]:
    """(contract, {module: what it imports}): a forbidden contract's first forbidden module (and asyncio when
    listed) imported by its first source package; for a layers contract, one module of its first independent
    layer importing another; for an acyclic contract, two new siblings importing each other. New modules are
    made only where no exhaustive layers contract would object to them."""
    cases: list[tuple[str, dict[str, str]]] = []
    for contract in _contracts():
        name = contract["name"]
        if contract["type"] == "forbidden":
            source = contract["source_modules"][0]
            forbidden = contract["forbidden_modules"]
            picks = [forbidden[0]] + (["asyncio"] if "asyncio" in forbidden[1:] else [])
            cases += [(name, {source: module}) for module in picks]
        elif contract["type"] == "layers":
            container = contract["containers"][0]
            independent = next(layer for layer in contract["layers"] if "|" in layer)
            first, second = (f"{container}.{m.strip()}" for m in independent.split("|")[:2])
            cases.append((name, {first: second}))
        else:
            assert contract["type"] == "acyclic_siblings", "a new contract type needs its own violation here"
            package = contract["ancestors"][-1]
            cases.append(
                (
                    name,
                    {
                        f"{package}._cycle_a": f"{package}._cycle_b",
                        f"{package}._cycle_b": f"{package}._cycle_a",
                    },
                )
            )
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


@pytest.mark.parametrize(("contract", "modules"), _violations())
def test_a_forbidden_import_fails_lint_imports(
    tmp_path: Path, contract: str, modules: dict[str, str]
) -> None:
    _copy_tree(tmp_path)
    imports = {module: _concrete(target, tmp_path) for module, target in modules.items()}
    for module, imported in imports.items():
        path = tmp_path / module.replace(".", "/")
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if path.exists():  # an existing module gains the import at its end
            path.write_text(path.read_text() + f"\nimport {imported}  # noqa: E402, F401\n")
        else:
            path.write_text(f'"""A deliberate layer violation."""\n\nimport {imported}  # noqa: F401\n')

    result = _lint(tmp_path)

    assert result.returncode != 0, result.stdout
    verdicts = _verdicts(result.stdout)
    assert verdicts[contract] == "BROKEN", result.stdout
    assert [name for name, verdict in verdicts.items() if verdict == "BROKEN"] == [contract]
    module, imported = next(iter(imports.items()))
    if len(imports) == 1:  # the report names the offending import
        assert f"{module} -> {imported}" in result.stdout, result.stdout
    else:  # a cycle is reported by its siblings' short names
        assert all(m.rpartition(".")[2] in result.stdout for m in imports), result.stdout


@pytest.mark.parametrize("source", ["controller.translate", "controller.runtime"])
def test_a_new_controller_package_is_forbidden_to_the_builders_and_the_runtime(source: str) -> None:
    """The builders and the runtime are closed by listing every other part of ``controller``: a package or
    module added beside them must join those lists, or it would be importable from them unchecked."""
    (contract,) = [c for c in _contracts() if c["type"] == "forbidden" and c["source_modules"] == [source]]
    siblings = {
        f"controller.{p.stem if p.suffix == '.py' else p.name}"
        for p in (REPO / "controller").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    assert source in siblings
    assert siblings - {source} <= set(contract["forbidden_modules"])
