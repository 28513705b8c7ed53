"""``hack/system-packages.sh`` (run by ``make setup``): installs exactly the missing system packages as root
with apt-get (after ``apt-get update``), and otherwise prints the one command to run and fails.

The programs it looks for and the ones it calls (``id``, ``apt-get``) are fakes on a private PATH, so the test
decides who is root and what is installed; bash itself is the real one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "system-packages.sh"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(
    *, tmp_path: Path, uid: int, present: tuple[str, ...], with_apt: bool = True
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "id", f"echo {uid}")
    for program in present:
        _fake(bin_dir, program, "exit 0")
    if with_apt:
        _fake(bin_dir, "apt-get", f'echo "$*" >> {tmp_path / "apt.log"}')
    bash = shutil.which("bash")
    assert bash is not None
    # AIGW_SBIN_PATH empty: the script must not find the machine's real /usr/sbin/dnsmasq.
    return subprocess.run(
        [bash, str(SCRIPT)],
        env={"PATH": str(bin_dir), "AIGW_SBIN_PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )


def _apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def test_nothing_missing_is_silent_and_installs_nothing(tmp_path: Path) -> None:
    result = _run(tmp_path=tmp_path, uid=0, present=("dnsmasq", "redis-server", "wrk"))
    assert (result.returncode, result.stderr) == (0, "")
    assert _apt_calls(tmp_path) == []


def test_root_updates_then_installs_exactly_the_missing_package(tmp_path: Path) -> None:
    result = _run(tmp_path=tmp_path, uid=0, present=("dnsmasq", "redis-server"))
    assert result.returncode == 0, result.stderr
    assert _apt_calls(tmp_path) == ["update -qq", "install -y -qq wrk"]


@pytest.mark.parametrize(
    ("present", "packages"),
    [((), "dnsmasq-base redis-server wrk"), (("redis-server", "wrk"), "dnsmasq-base")],
    ids=["all", "dnsmasq"],
)
def test_non_root_prints_the_one_command_and_fails(
    tmp_path: Path, present: tuple[str, ...], packages: str
) -> None:
    result = _run(tmp_path=tmp_path, uid=1000, present=present)
    assert result.returncode == 1
    assert f"sudo apt-get update && sudo apt-get install -y {packages}" in result.stderr
    assert _apt_calls(tmp_path) == []


def test_without_apt_get_names_the_packages_and_fails(tmp_path: Path) -> None:
    result = _run(tmp_path=tmp_path, uid=0, present=("wrk",), with_apt=False)
    assert result.returncode == 1
    assert "dnsmasq-base" in result.stderr
