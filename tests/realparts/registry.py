"""A real OCI registry for tests: the CNCF Distribution registry that ``hack/setup-registry.sh`` builds, on
127.0.0.1 and a free port, plain HTTP, storing into its work directory.

Contract:
- ``find_registry()`` is ``$AIGW_REGISTRY`` when set, else
  ``<cache>/registry/<REGISTRY_VERSION>/bin/registry``; ``RegistryError`` says to run ``make registry`` when
  it is missing. Callers in pytest fail, never skip.
- ``Registry().start()`` writes a config (filesystem storage, no debug server), starts ``registry serve`` and
  returns once ``GET /v2/`` answers 200; ``host`` is ``127.0.0.1:<port>`` (for ``oci://<host>/...`` with
  ``--plain-http``). ``stop()`` ends it and removes the work directory; a ``with`` block keeps the directory
  (with ``registry.log``) when it raised. Start from the main thread: the process then dies with pytest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.realparts.httpclient import request
from tests.realparts.ports import free_port
from tests.realparts.processes import RealPart, cache_root, spawn_logged, stop_process, wait_until

REGISTRY_VERSION = os.environ.get("REGISTRY_VERSION", "3.1.2")
SETUP_HINT = "run `make registry` (or `bash hack/setup-registry.sh`) to build the OCI registry"


class RegistryError(RuntimeError):
    """The registry is missing or did not start; the message says what to do."""


def find_registry() -> Path:
    """The registry binary, or RegistryError naming the command that builds it."""
    if env := os.environ.get("AIGW_REGISTRY"):
        path = Path(env)
    else:
        path = cache_root() / "registry" / REGISTRY_VERSION / "bin" / "registry"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RegistryError(f"no registry binary at {path}: {SETUP_HINT}")
    return path


class Registry(RealPart):
    """``registry serve`` on loopback. See the module docstring for the contract."""

    def __init__(self, *, start_timeout: float = 30) -> None:
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="aigw-registry-"))
        self.log = self.workdir / "registry.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def _start(self) -> None:
        binary = find_registry()
        self.port = free_port()
        config = {
            "version": 0.1,
            "log": {"level": "info"},
            "storage": {"filesystem": {"rootdirectory": str(self.workdir / "data")}},
            "http": {"addr": self.host},
        }
        config_path = self.workdir / "config.yml"
        config_path.write_text(yaml.safe_dump(config))
        try:
            self._proc = spawn_logged(
                "registry",
                [str(binary), "serve", str(config_path)],
                self.log,
                death_signal=signal.SIGKILL,
                env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)},
            )
        except OSError as e:
            raise RegistryError(f"cannot run {binary}: {e}; {SETUP_HINT}") from None

        def serving() -> bool:
            return request(self.port, "/v2/", timeout=2).status == 200

        wait_until(
            serving, f"{self.host}/v2/", proc=self._proc, log=self.log, timeout=self.start_timeout,
            error=RegistryError,
        )  # fmt: skip

    def _shutdown(self) -> None:
        stop_process(self._proc, grace=10)
        self._proc = None
