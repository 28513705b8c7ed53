"""Benchmark: CPU per CEL cost evaluation, ``common-expression-language`` (Rust bindings, what the gateway
uses through ``api.costexpr``) against ``cel-python`` (pure Python), on the same expressions in one run.

For each expression it compiles once with each library, checks both give the same result, then times
``--evaluations`` evaluations with ``time.process_time`` (CPU, not wall clock) and prints µs per evaluation
and the ratio. Run with ``make bench-extproc`` (first part) or ``python -m bench.extproc.cel``.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

from api.costexpr import compile_cost, evaluate_cost

EXPRESSIONS = (
    "input_tokens * 2 + output_tokens * 6",
    "model == 'gpt-4o' ? total_tokens * 3 : total_tokens",
    "backend.startsWith('bedrock') ? int(double(input_tokens) * 1.5) + output_tokens : total_tokens",
    "(model == 'llama' && input_tokens > 1000) ? total_tokens / 2 : total_tokens + 100",
)
VALUES: dict[str, Any] = {
    "model": "gpt-4o",
    "backend": "bedrock.default",
    "input_tokens": 1200,
    "output_tokens": 300,
    "total_tokens": 1500,
}


def _cpu_us_per_call(fn: Callable[[], object], n: int) -> float:
    fn()  # warm
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def _celpy(expr: str) -> Callable[[], Any]:
    import celpy
    from celpy import celtypes

    env = celpy.Environment(
        annotations={
            "model": celtypes.StringType,
            "backend": celtypes.StringType,
            "input_tokens": celtypes.IntType,
            "output_tokens": celtypes.IntType,
            "total_tokens": celtypes.IntType,
        }
    )
    program = env.program(env.compile(expr))
    activation = {
        k: celtypes.StringType(v) if isinstance(v, str) else celtypes.IntType(v) for k, v in VALUES.items()
    }
    return lambda: program.evaluate(activation)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extproc.cel", description=__doc__)
    parser.add_argument("--evaluations", type=int, default=2000, help="evaluations per expression (2000)")
    args = parser.parse_args(argv)
    print("CEL cost evaluation, CPU µs per evaluation (time.process_time)")
    print("| expression | common-expression-language | cel-python | ratio |\n|---|---|---|---|")
    for expr in EXPRESSIONS:
        program = compile_cost(expr)
        rust: Callable[[], int] = functools.partial(evaluate_cost, program, **VALUES)
        py: Callable[[], Any] = _celpy(expr)
        if int(py()) != rust():
            raise SystemExit(f"the libraries disagree on {expr!r}: {py()} != {rust()}")
        r, p = _cpu_us_per_call(rust, args.evaluations), _cpu_us_per_call(py, max(args.evaluations // 10, 50))
        print(f"| `{expr}` | {r:.1f} | {p:.1f} | {p / r:.0f}x |")


if __name__ == "__main__":
    main()
