"""CEL cost expressions: what compiles, what is refused and why, and how results are checked."""

from __future__ import annotations

import pytest

from api.costexpr import MAX_COST, CostExpressionError, compile_cost, evaluate_cost


def _eval(expr: str, **overrides: object) -> int:
    values: dict[str, object] = {
        "model": "gpt-4o",
        "backend": "bedrock.default",
        "input_tokens": 100,
        "output_tokens": 50,
        "total_tokens": 150,
        **overrides,
    }
    return evaluate_cost(compile_cost(expr), **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("input_tokens * 2 + output_tokens * 6", 500),
        ("model == 'gpt-4o' ? total_tokens * 3 : total_tokens", 450),
        ("backend.startsWith('bedrock') ? int(double(input_tokens) * 1.5) : 0", 150),
        ("uint(input_tokens) + uint(1)", 101),
        ("42", 42),
    ],
)
def test_valid_expressions_evaluate(expr: str, expected: int) -> None:
    assert _eval(expr) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("input_tokens +", "Syntax error"),
        ("cached_tokens * 2", "unknown variable(s) cached_tokens"),
        ("model + 1", "trial run"),
        ("input_tokens * 2u", "trial run"),
        ("1.5 * double(input_tokens)", "not an integer"),
        ("model", "not an integer"),
    ],
)
def test_bad_expressions_are_refused_at_compile_time_with_the_reason(expr: str, message: str) -> None:
    with pytest.raises(CostExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_cost(expr)


def test_results_that_depend_on_the_request_are_checked_at_evaluation() -> None:
    expr = "input_tokens - output_tokens"  # fine in the trial run (3 - 5 is only negative)
    program = compile_cost(expr)
    args = {"model": "m", "backend": "b.ns", "total_tokens": 0}
    with pytest.raises(CostExpressionError) as e:
        evaluate_cost(program, input_tokens=1, output_tokens=5, **args)  # type: ignore[arg-type]
    assert e.value.reason == "negative"
    huge = compile_cost("input_tokens * 1000000000")
    with pytest.raises(CostExpressionError) as e:
        evaluate_cost(huge, input_tokens=MAX_COST, output_tokens=0, **args)  # type: ignore[arg-type]
    assert e.value.reason == "error"  # int64 overflow in the evaluator
    big = compile_cost("input_tokens * 2")
    with pytest.raises(CostExpressionError) as e:
        evaluate_cost(big, input_tokens=MAX_COST, output_tokens=0, **args)  # type: ignore[arg-type]
    assert e.value.reason == "too_large"
    div = compile_cost("100 / output_tokens")
    with pytest.raises(CostExpressionError) as e:
        evaluate_cost(div, input_tokens=1, output_tokens=0, **args)  # type: ignore[arg-type]
    assert e.value.reason == "error"
