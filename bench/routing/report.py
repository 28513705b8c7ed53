"""Rows from a run's outcomes, and the files they go to: ``results.json`` (the keys issue 14 lists, nothing
else), ``runinfo.json`` (how the run went: capacities, rates, Envoy CPU, spread over replicas, duration), the
table in ``bench/README.md`` (between markers, so a rerun replaces it) and the latency-vs-load plot."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.routing.loadgen import Outcome

RESULT_KEYS = (
    "workload",
    "load",
    "picker",
    "ttft_p50_ms",
    "ttft_p90_ms",
    "ttft_p99_ms",
    "e2e_p50_ms",
    "e2e_p90_ms",
    "e2e_p99_ms",
    "throughput_rps",
    "shed_429",
    "errors_5xx",
    "extproc_cpu_us_per_req",
)
TABLE_BEGIN = "<!-- bench-routing:begin (written by make bench-routing) -->"
TABLE_END = "<!-- bench-routing:end -->"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def result_row(
    *, workload: str, load: float, picker: str, outcomes: Sequence[Outcome], picker_cpu_s: float | None
) -> dict[str, Any]:
    """One results.json row. Latencies over the requests answered 200 with a first token; throughput is
    those completions per second from the trace's start to the last answer."""
    ok = [o for o in outcomes if o.status == 200 and o.ttft is not None and o.e2e is not None]
    ttft = [o.ttft for o in ok if o.ttft is not None]
    e2e = [o.e2e for o in ok if o.e2e is not None]
    span = max((o.done_at for o in outcomes), default=0.0)
    row: dict[str, Any] = {
        "workload": workload,
        "load": load,
        "picker": picker,
        "ttft_p50_ms": _ms(percentile(ttft, 50)),
        "ttft_p90_ms": _ms(percentile(ttft, 90)),
        "ttft_p99_ms": _ms(percentile(ttft, 99)),
        "e2e_p50_ms": _ms(percentile(e2e, 50)),
        "e2e_p90_ms": _ms(percentile(e2e, 90)),
        "e2e_p99_ms": _ms(percentile(e2e, 99)),
        "throughput_rps": round(len(ok) / span, 2) if span > 0 else 0.0,
        "shed_429": sum(1 for o in outcomes if o.status == 429),
        "errors_5xx": sum(1 for o in outcomes if o.status >= 500 or o.status == 0),
        "extproc_cpu_us_per_req": None
        if picker_cpu_s is None
        else round(picker_cpu_s / max(len(outcomes), 1) * 1e6, 1),
    }
    assert tuple(row) == RESULT_KEYS
    return row


def run_details(*, outcomes: Sequence[Outcome], envoy_cpu_s: float) -> dict[str, Any]:
    """What results.json leaves out: request counts, other statuses, Envoy's CPU, where requests went."""
    statuses = Counter(o.status for o in outcomes)
    return {
        "requests": len(outcomes),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "envoy_cpu_us_per_req": round(envoy_cpu_s / max(len(outcomes), 1) * 1e6, 1),
        "served_by": dict(sorted(Counter(o.upstream or "-" for o in outcomes).items())),
        "by_criticality": {
            c: {
                "requests": n,
                "shed_429": sum(1 for o in outcomes if o.item.criticality == c and o.status == 429),
            }
            for c, n in sorted(Counter(o.item.criticality for o in outcomes).items())
        },
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"
    return str(v)


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def markdown_table(rows: Sequence[dict[str, Any]], details: dict[str, dict[str, Any]]) -> str:
    """Per workload: one line per (load, picker), with p90 TTFT and p90 e2e relative to the EPP's in the same
    run (below 1: faster than the EPP)."""
    out: list[str] = []
    for workload in dict.fromkeys(r["workload"] for r in rows):
        out.append(f"\n**{workload}**\n")
        out.append(
            "| load | picker | TTFT p50 / p90 / p99 ms | e2e p50 / p90 / p99 ms | p90 TTFT, e2e ÷ EPP "
            "| req/s | 429 | 5xx | ext_proc CPU µs/req | Envoy CPU µs/req |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        wrows = [r for r in rows if r["workload"] == workload]
        for r in wrows:
            epp = next((x for x in wrows if x["load"] == r["load"] and x["picker"] == "epp"), {})
            ttft_ratio = _ratio(r["ttft_p90_ms"], epp.get("ttft_p90_ms"))
            ratio = f"{ttft_ratio}, {_ratio(r['e2e_p90_ms'], epp.get('e2e_p90_ms'))}"
            d = details.get(f"{workload}/{r['load']}/{r['picker']}", {})
            out.append(
                f"| {r['load']:.2f} | {r['picker']} "
                f"| {_fmt(r['ttft_p50_ms'])} / {_fmt(r['ttft_p90_ms'])} / {_fmt(r['ttft_p99_ms'])} "
                f"| {_fmt(r['e2e_p50_ms'])} / {_fmt(r['e2e_p90_ms'])} / {_fmt(r['e2e_p99_ms'])} | {ratio} "
                f"| {_fmt(r['throughput_rps'])} | {r['shed_429']} | {r['errors_5xx']} "
                f"| {_fmt(r['extproc_cpu_us_per_req'])} | {_fmt(d.get('envoy_cpu_us_per_req'))} |"
            )
    return "\n".join(out) + "\n"


def replace_between_markers(text: str, body: str) -> str:
    """``text`` with what lies between the table markers replaced by ``body`` (markers appended if absent)."""
    block = f"{TABLE_BEGIN}\n{body}\n{TABLE_END}"
    if TABLE_BEGIN in text and TABLE_END in text:
        head, _, rest = text.partition(TABLE_BEGIN)
        _, _, tail = rest.partition(TABLE_END)
        return head + block + tail
    return text.rstrip("\n") + "\n\n" + block + "\n"


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """p90 TTFT and p90 e2e against load, one line per picker, one column per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    pickers = list(dict.fromkeys(r["picker"] for r in rows))
    fig, axes = plt.subplots(2, len(workloads), figsize=(5 * len(workloads), 7), squeeze=False)
    for col, w in enumerate(workloads):
        for row_i, (key, label) in enumerate(
            (("ttft_p90_ms", "p90 TTFT (ms)"), ("e2e_p90_ms", "p90 e2e (ms)"))
        ):
            ax = axes[row_i][col]
            for p in pickers:
                pts = sorted(
                    (r["load"], r[key]) for r in rows if r["workload"] == w and r["picker"] == p and r[key]
                )
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=p)
            ax.set_yscale("log")
            ax.set_xlabel("load (share of measured capacity)")
            ax.set_ylabel(label)
            ax.set_title(w)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
