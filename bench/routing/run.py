"""``make bench-routing``: the same Poisson traces through one real Envoy to N simulated vLLM replicas, with
each picker, and the Inference Extension's EPP v1.5.0 as the peer. Run under ``flock /tmp/aigw-heavy.lock``.

For each workload:
1. **Capacity**, measured, not assumed: the pool behind Envoy's least-request balancing, with
   ``replicas x max_num_seqs`` requests of the workload kept in flight (a closed loop: every replica's batch
   full, little queueing); capacity = completions per second after a warm-up quarter.
2. For each load (default 0.5, 0.8, 0.95 of that capacity), one trace of Poisson arrivals at that rate,
   replayed identically through every picker: ``random`` and ``least-request`` (Envoy's own load balancing, no
   ext_proc), ``aigw-<picker>`` (our ext_proc, every picker type it has), ``epp``. The replicas are restarted
   before each replay, so every picker starts from empty queues and caches.
3. Per replay: TTFT and e2e percentiles, throughput, 429 and 5xx counts, and CPU time (from /proc) of the
   picker's ext_proc and of Envoy, per request.

Writes ``results.json``, ``runinfo.json`` and ``latency-vs-load.png`` into ``--out`` and the table into
``bench/README.md``. The default run writes into ``bench/routing``; ``--quick`` and runs with other
workload or simulator files write into a fresh temporary directory (printed) and leave the committed
results alone, unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigw.sim.config import SimConfig, SimConfigError, load_config
from bench.extproc.run import cpu_seconds
from bench.routing import loadgen, report
from bench.routing.setups import all_pickers, epp_for, gateway
from bench.routing.workload import Workload, WorkloadError, load_workload, make_trace
from tests.realparts.controlplane import ControlPlane
from tests.realparts.epp import RunningEpp
from tests.realparts.simulators import SimReplicas

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_WORKLOADS = [HERE / "workloads" / f"{n}.yaml" for n in ("chat-uniform", "shared-prefix", "lora-skew")]
DEFAULT_SIM = HERE / "sim.yaml"
README = REPO_ROOT / "bench" / "README.md"


@dataclass(frozen=True, slots=True)
class Plan:
    workloads: list[tuple[Path, Workload]]
    sim_path: Path
    sim: SimConfig
    replicas: int
    loads: list[float]
    duration: float
    capacity_duration: float
    pickers: list[str]
    seed: int
    out: Path
    update_readme: bool


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench-routing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workload", type=Path, action="append", help="workload YAML (repeat; default: the 3 shipped)"
    )
    p.add_argument("--sim", type=Path, help=f"simulator YAML (default {DEFAULT_SIM.relative_to(REPO_ROOT)})")
    p.add_argument("--replicas", type=int, default=4, help="simulator replicas (default %(default)s)")
    p.add_argument("--loads", default="0.5,0.8,0.95", help="shares of capacity (default %(default)s)")
    p.add_argument(
        "--duration", type=float, default=30.0, help="seconds of arrivals per replay (default %(default)s)"
    )
    p.add_argument(
        "--capacity-duration", type=float, default=20.0, help="seconds of the capacity measurement"
    )
    p.add_argument("--pickers", help=f"comma-separated subset of: {', '.join(all_pickers())}")
    p.add_argument("--seed", type=int, default=1, help="trace seed (default %(default)s)")
    p.add_argument(
        "--out", type=Path, help="where results go (default: bench/routing for the default full run)"
    )
    p.add_argument(
        "--render",
        type=Path,
        metavar="DIR",
        help="run nothing: redraw DIR's plot and bench/README.md's table from DIR's results and runinfo",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one workload (the first), load 0.8, 10 s replays: under 3 minutes",
    )
    return p.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    try:
        sim_path = args.sim or DEFAULT_SIM
        sim = load_config(sim_path)
        paths = args.workload or DEFAULT_WORKLOADS
        workloads = [(p, load_workload(p)) for p in paths]
    except (SimConfigError, WorkloadError) as e:
        raise SystemExit(f"bench-routing: {e}") from e
    served = {sim.model, *sim.lora_adapters}
    for p, w in workloads:
        if missing := [m for m in w.models if m not in served]:
            raise SystemExit(
                f"bench-routing: {p}: models {missing} are not served by the simulator ({sim_path})"
            )
    pickers = all_pickers()
    if args.pickers:
        wanted = [x.strip() for x in args.pickers.split(",") if x.strip()]
        if unknown := [x for x in wanted if x not in pickers]:
            raise SystemExit(f"bench-routing: unknown pickers {unknown}; known: {', '.join(pickers)}")
        pickers = wanted
    loads = [float(x) for x in args.loads.split(",")]
    duration, capacity_duration = args.duration, args.capacity_duration
    if args.quick:
        workloads, loads, duration, capacity_duration = workloads[:1], [0.8], 10.0, 6.0
    default_run = not args.quick and not args.workload and not args.sim and not args.pickers
    out = args.out or (HERE if default_run else Path(tempfile.mkdtemp(prefix="bench-routing-")))
    return Plan(
        workloads=workloads,
        sim_path=sim_path,
        sim=sim,
        replicas=args.replicas,
        loads=loads,
        duration=duration,
        capacity_duration=capacity_duration,
        pickers=pickers,
        seed=args.seed,
        out=out,
        update_readme=default_run or (args.out is not None and args.out.resolve() == HERE),
    )


def _log(msg: str) -> None:
    print(f"[bench-routing {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@contextlib.contextmanager
def _parts(plan: Plan, workdir: Path) -> Iterator[tuple[SimReplicas, RunningEpp | None]]:
    ips = [f"127.0.0.{81 + i}" for i in range(plan.replicas)]
    with contextlib.ExitStack() as stack:
        sims = stack.enter_context(
            SimReplicas(ips=ips, config=plan.sim_path, name="bench-sim", workdir=workdir / "sims")
        )
        epp = None
        if {"epp", "aigw-epp"} & set(plan.pickers):
            _log("starting the API server (the EPP reads its pool's Pods from it)")
            cp = stack.enter_context(ControlPlane())
            epp = epp_for(control_plane=cp, endpoints=sims.endpoints, workdir=workdir / "epp")
        yield sims, epp


def _shown(path: Path) -> str:
    full = path.resolve()
    return str(full.relative_to(REPO_ROOT)) if full.is_relative_to(REPO_ROOT) else str(path)


def _cpu(pids: tuple[int, ...]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def _measure_capacity(plan: Plan, w: Workload, sims: SimReplicas, workdir: Path) -> float:
    sims.restart()
    trace = make_trace(w, rate=50.0, duration=60.0, seed=plan.seed + 1000)
    concurrency = plan.replicas * plan.sim.max_num_seqs
    with gateway("least-request", endpoints=sims.endpoints, models=w.models, workdir=workdir, epp=None) as gw:
        outs = asyncio.run(
            loadgen.closed_loop(
                f"http://127.0.0.1:{gw.port}", trace, concurrency=concurrency, duration=plan.capacity_duration
            )
        )
    warm = plan.capacity_duration / 4
    done = [o for o in outs if o.status == 200 and o.done_at >= warm]
    if not done:
        raise SystemExit(f"bench-routing: no request completed while measuring {w.name}'s capacity")
    return len(done) / (plan.capacity_duration - warm)


def run(plan: Plan) -> None:
    began, began_at = time.monotonic(), time.gmtime()
    plan.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    details: dict[str, dict[str, Any]] = {}
    capacities: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-routing-work-"))
    # the machine is shared: the 1-minute load average at the start and after every replay says how busy
    load_seen = [os.getloadavg()[0]]
    _log(
        f"pickers: {', '.join(plan.pickers)}; {plan.replicas} replicas of {plan.sim_path}; work dir {workdir}"
    )
    with _parts(plan, workdir) as (sims, epp):
        for _, w in plan.workloads:
            cap = _measure_capacity(plan, w, sims, workdir / w.name / "capacity")
            capacities[w.name] = round(cap, 2)
            _log(f"{w.name}: capacity {cap:.2f} req/s")
            for load in plan.loads:
                trace = make_trace(w, rate=load * cap, duration=plan.duration, seed=plan.seed)
                for picker in plan.pickers:
                    sims.restart()
                    wd = workdir / w.name / f"{load}" / picker
                    with gateway(
                        picker, endpoints=sims.endpoints, models=w.models, workdir=wd, epp=epp
                    ) as gw:
                        picker_before, envoy_before = _cpu(gw.picker_pids), _cpu((gw.envoy_pid,))
                        outs = asyncio.run(loadgen.replay(f"http://127.0.0.1:{gw.port}", trace))
                        picker_cpu = _cpu(gw.picker_pids) - picker_before if gw.picker_pids else None
                        envoy_cpu = _cpu((gw.envoy_pid,)) - envoy_before
                    load_seen.append(os.getloadavg()[0])
                    row = report.result_row(
                        workload=w.name, load=load, picker=picker, outcomes=outs, picker_cpu_s=picker_cpu
                    )
                    rows.append(row)
                    details[f"{w.name}/{load}/{picker}"] = {
                        "rate_rps": round(load * cap, 3),
                        **report.run_details(outcomes=outs, envoy_cpu_s=envoy_cpu),
                    }
                    _log(
                        f"{w.name} load {load} {picker}: {len(outs)} req, TTFT p90 {row['ttft_p90_ms']} ms, "
                        f"e2e p90 {row['e2e_p90_ms']} ms, 429 {row['shed_429']}, 5xx {row['errors_5xx']}"
                    )
    elapsed = time.monotonic() - began
    (plan.out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    info = {
        "duration_s": round(elapsed),
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        "load_average_1m_range": [round(min(load_seen), 1), round(max(load_seen), 1)],
        "cpus": os.cpu_count(),
        "replicas": plan.replicas,
        "sim": _shown(plan.sim_path),
        "replay_seconds": plan.duration,
        "capacity_rps": capacities,
        "capacity_method": (
            f"least-request, a closed loop of {plan.replicas * plan.sim.max_num_seqs} requests in flight "
            f"(replicas x max_num_seqs) for {plan.capacity_duration:.0f} s; completions/s after a quarter"
        ),
        "measured": time.strftime("%Y-%m-%d %H:%M", began_at) + time.strftime("-%H:%M UTC", time.gmtime()),
        "runs": details,
    }
    (plan.out / "runinfo.json").write_text(json.dumps(info, indent=1) + "\n")
    render(plan.out, update_readme=plan.update_readme)
    _log(f"done in {elapsed:.0f} s; results in {plan.out}")


def render(out: Path, *, update_readme: bool) -> None:
    """The plot (into ``out``) and, with ``update_readme``, bench/README.md's table, from ``out``'s
    results.json and runinfo.json."""
    rows = json.loads((out / "results.json").read_text())
    info = json.loads((out / "runinfo.json").read_text())
    report.plot(rows, out / "latency-vs-load.png")
    if update_readme:
        caps = ", ".join(f"{k} {v}" for k, v in info["capacity_rps"].items())
        minutes = info["duration_s"] / 60
        load = f"{info['load_average_1m_at_end']} at its end"
        if seen := info.get("load_average_1m_range"):  # older runinfo files lack it
            load = f"{seen[0]}-{seen[1]} after its replays, {load}"
        header = (
            f"Measured {info.get('measured', '')}: {info['replicas']} replicas, "
            f"{info['replay_seconds']:.0f} s per replay, capacity (req/s) {caps}; the whole run took "
            f"{minutes:.0f} min (1-minute load average on {info['cpus']} cores: {load}).\n"
        )
        table = report.markdown_table(rows, info["runs"])
        README.write_text(report.replace_between_markers(README.read_text(), header + table))


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # SystemExit unwinds the context managers, which stop Envoy, the ext_procs, the EPP and the replicas
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = _parse_args(argv)
    if args.render:
        render(args.render, update_readme=True)
        return 0
    plan = _plan(args)
    run(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
