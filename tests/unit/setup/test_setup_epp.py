"""``hack/setup-epp.sh`` and the EPP harness's ``epp_assets()``: when the EPP cannot be built here (a Go
toolchain too old, or no way through the Go module proxy), the harness raises an error that says why and names
the command to run once it is fixed, so every test needing the EPP fails (never skips) with that message.

``go`` is a fake on the front of PATH and the cache is a temporary directory, so nothing is built or fetched;
bash and the coreutils are the real ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.realparts.epp import EppError, epp_assets


def _fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, version: str, proxy_ok: bool) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    refused = 'echo "dial tcp 127.0.0.1:9: connect: connection refused" >&2; exit 1'
    go = bin_dir / "go"
    go.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "env GOVERSION" ]; then echo {version}; exit 0; fi\n'
        'if [ "$1 $2" = "env GOPROXY" ]; then echo http://127.0.0.1:9; exit 0; fi\n'
        'if [ "$1" = "list" ]; then\n' + ("  exit 0\n" if proxy_ok else f"  {refused}\n") + "fi\n"
        'echo "unexpected: go $*" >&2; exit 3\n'
    )
    go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AIGW_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("version", "proxy_ok", "why"),
    [
        pytest.param("go1.22.5", True, ["Go go1.22.5 is too old", "needs Go >= 1.25"], id="go-too-old"),
        pytest.param(
            "go1.25.3",
            False,
            ["through the Go module proxy (http://127.0.0.1:9)", "connection refused"],
            id="proxy-unreachable",
        ),
    ],
)
def test_an_epp_that_cannot_be_built_fails_saying_why_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, proxy_ok: bool, why: list[str]
) -> None:
    _fake_go(tmp_path, monkeypatch, version=version, proxy_ok=proxy_ok)
    with pytest.raises(EppError) as e:
        epp_assets()
    message = str(e.value)
    for part in [*why, "run `make epp`"]:
        assert part in message, message
    assert not (tmp_path / "cache" / "epp").exists()  # nothing half-built left in the cache
