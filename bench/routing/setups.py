"""One gateway per picker, all in front of the same simulator replicas, each on real Envoy (concurrency 1).

- ``random`` / ``least-request``: Envoy's own load balancing over a STATIC cluster of the replicas, no
  ext_proc;
- ``aigw-<picker>``: our ext_proc (one process) with the pool's picker set in the filter config, routing
  through the ORIGINAL_DST cluster as the controller configures it; every picker type ``api.picker`` declares
  is benchmarked (only ``random`` before it existed);
- ``epp``: the Inference Extension's EPP v1.5.0 with its own Envoy configuration, restarted per run so its
  prefix index starts empty as the replicas' caches do;
- ``aigw-epp``: the same EPP as a v1 pool's external endpoint picker behind our ext_proc (which speaks the
  endpoint-picker protocol to it, ``extproc/epp.py``): what our gateway adds to the EPP's own data path.

Each yields a ``Gateway``: Envoy's port, and the process ids whose CPU time the benchmark charges to it.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.integration.extproc.bootstrap import direct_bootstrap, gateway_bootstrap
from tests.integration.extproc.gatewayconfig import model_match
from tests.integration.extproc.harness import running_extproc
from tests.realparts.controlplane import ControlPlane
from tests.realparts.envoy import running_envoy
from tests.realparts.epp import RunningEpp, epp_assets, epp_envoy_bootstrap
from tests.realparts.ports import free_port
from tests.realparts.simulators import Endpoint

ENVOY_PICKERS = {"random": "RANDOM", "least-request": "LEAST_REQUEST"}
POOL = "sims.bench"


@dataclass(frozen=True, slots=True)
class Gateway:
    port: int
    envoy_pid: int
    picker_pids: tuple[int, ...]
    """The ext_proc (ours or the EPP) serving this gateway; empty for Envoy's own load balancing."""


def aigw_pickers() -> dict[str, str | None]:
    """``aigw-<name>`` -> the filter config's ``picker.type`` for every picker our ext_proc has (None: the
    config has no picker section yet, so the only picker is the built-in random one)."""
    try:
        types = importlib.import_module("api.picker").PickerType
    except (ImportError, AttributeError):
        return {"aigw-random": None}
    return {"aigw-" + re.sub(r"(?<!^)(?=[A-Z])", "-", t.value).lower(): t.value for t in types}


def all_pickers() -> list[str]:
    return [*ENVOY_PICKERS, *aigw_pickers(), "epp", "aigw-epp"]


def external_picker_config(
    *, endpoints: Sequence[Endpoint], models: Sequence[str], epp_port: int
) -> dict[str, Any]:
    """The filter config of ``aigw-epp``: the pool as a v1 pool whose endpoint the EPP on ``epp_port``
    chooses (plaintext, as ``RunningEpp`` serves by default)."""
    config = filter_config(endpoints=endpoints, models=models, picker=None)
    config["uuid"] = "bench-aigw-epp"
    pool = config["pools"][0]
    pool["models"], pool["servesAnyModel"] = [], True
    pool["externalPicker"] = {
        "service": "epp.bench:9002",
        "endpoints": [{"ip": "127.0.0.1", "port": epp_port}],
        "targetPorts": sorted({e.port for e in endpoints}),
        "tls": False,
    }
    return config


def filter_config(
    *, endpoints: Sequence[Endpoint], models: Sequence[str], picker: str | None
) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "name": POOL,
        "members": [
            {
                "name": "sim.bench",
                "schema": {"name": "OpenAI"},
                "endpoints": [{"ip": e.ip, "port": e.port} for e in endpoints],
            }
        ],
        "models": [{"modelName": m} for m in models],
    }
    if picker is not None:
        pool["picker"] = {"type": picker}
    return {
        "version": "v1",
        "uuid": f"bench-{picker or 'default'}",
        "rules": [
            {
                "route": "bench/pool",
                "matches": [model_match(m) for m in models],
                "backendRefs": [{"kind": "InferencePool", "name": POOL}],
            }
        ],
        "pools": [pool],
    }


def _envoy_lb(lb_policy: str, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    config = direct_bootstrap(listen_port=0, upstream_port=0)
    (cluster,) = config["static_resources"]["clusters"]
    cluster["lb_policy"] = lb_policy
    cluster["circuit_breakers"] = {"thresholds": [{"max_requests": 100000, "max_pending_requests": 100000}]}
    cluster["load_assignment"]["endpoints"] = [
        {
            "lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": e.ip, "port_value": e.port}}}}
                for e in endpoints
            ]
        }
    ]
    return config


def _listen_on(config: dict[str, Any], port: int) -> dict[str, Any]:
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = port
    return config


@contextlib.contextmanager
def gateway(
    picker: str,
    *,
    endpoints: Sequence[Endpoint],
    models: Sequence[str],
    workdir: Path,
    epp: RunningEpp | None,
) -> Iterator[Gateway]:
    """Start the gateway for ``picker`` (one of ``all_pickers()``) and stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if picker in ENVOY_PICKERS:
        config = _listen_on(_envoy_lb(ENVOY_PICKERS[picker], endpoints), port)
        with running_envoy(config, workdir=workdir, log_level="warning") as envoy:
            yield Gateway(port=port, envoy_pid=envoy.pid, picker_pids=())
    elif picker in (ours := aigw_pickers()):
        config_path = workdir / "filter-config.yaml"
        fc = filter_config(endpoints=endpoints, models=models, picker=ours[picker])
        config_path.write_text(yaml.safe_dump(fc, sort_keys=False))
        with running_extproc(config_path=config_path, workdir=workdir, seed=1) as ext:
            boot = gateway_bootstrap(
                listen_port=port, ext_proc_port=ext.grpc_port, backends={}, access_log=False
            )
            with running_envoy(boot, workdir=workdir, log_level="warning") as envoy:
                yield Gateway(port=port, envoy_pid=envoy.pid, picker_pids=(ext.proc.pid,))
    elif picker == "epp":
        if epp is None:
            raise ValueError("the epp picker needs a RunningEpp")
        epp.start()  # fresh for each replay, and not polling the replicas during the other pickers' replays
        assert epp.proc is not None
        boot = epp_envoy_bootstrap(listen_port=port, epp_port=epp.grpc_port)
        try:
            with running_envoy(boot, workdir=workdir, log_level="warning") as envoy:
                yield Gateway(port=port, envoy_pid=envoy.pid, picker_pids=(epp.proc.pid,))
        finally:
            epp.stop(keep_workdir=True)
    elif picker == "aigw-epp":
        if epp is None:
            raise ValueError("the aigw-epp picker needs a RunningEpp")
        epp.start()
        assert epp.proc is not None
        config_path = workdir / "filter-config.yaml"
        fc = external_picker_config(endpoints=endpoints, models=models, epp_port=epp.grpc_port)
        config_path.write_text(yaml.safe_dump(fc, sort_keys=False))
        try:
            with running_extproc(config_path=config_path, workdir=workdir, seed=1) as ext:
                boot = gateway_bootstrap(
                    listen_port=port, ext_proc_port=ext.grpc_port, backends={}, access_log=False
                )
                with running_envoy(boot, workdir=workdir, log_level="warning") as envoy:
                    yield Gateway(port=port, envoy_pid=envoy.pid, picker_pids=(ext.proc.pid, epp.proc.pid))
        finally:
            epp.stop(keep_workdir=True)
    else:
        raise ValueError(f"unknown picker {picker!r}; known: {', '.join(all_pickers())}")


def epp_for(*, control_plane: ControlPlane, endpoints: Sequence[Endpoint], workdir: Path) -> RunningEpp:
    """The EPP of the bench's pool (built now if missing, so a missing Go fails before any replay);
    ``gateway("epp", ...)`` starts it for each of its replays and stops it afterwards."""
    epp_assets()
    return RunningEpp(
        control_plane=control_plane,
        namespace="bench",
        pool="sims",
        endpoints=list(endpoints),
        workdir=workdir,
    )
