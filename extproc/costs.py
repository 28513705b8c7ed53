"""Request costs: the numbers written into Envoy dynamic metadata when a response ends."""

from __future__ import annotations

import logging
from collections.abc import Callable

from api import filterconfig as fc
from api.costexpr import CostExpressionError, FailureReason, evaluate_cost
from extproc.snapshot import Cost
from extproc.usage import Usage

log = logging.getLogger(__name__)

_reported: set[tuple[str, str, str]] = set()


def cost_values(
    costs: tuple[Cost, ...],
    usage: Usage,
    *,
    model: str,
    backend: str,
    on_failure: Callable[[Cost, FailureReason], None],
) -> dict[str, float]:
    """``metadataKey -> value`` for each cost of the matched rule's route. A CEL cost whose program fails or
    gives a negative, non-integer or too large result is left out and reported to ``on_failure`` (logged at
    warning the first time for each cost and reason, then at debug): a cost never fails the request."""
    out: dict[str, float] = {}
    for c in costs:
        if c.type == fc.CostType.INPUT_TOKEN:
            out[c.metadata_key] = usage.input_tokens
        elif c.type == fc.CostType.OUTPUT_TOKEN:
            out[c.metadata_key] = usage.output_tokens
        elif c.type == fc.CostType.TOTAL_TOKEN:
            out[c.metadata_key] = usage.total_tokens
        elif c.program is not None:
            try:
                out[c.metadata_key] = evaluate_cost(
                    c.program,
                    model=model,
                    backend=backend,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    total_tokens=usage.total_tokens,
                )
            except CostExpressionError as e:
                on_failure(c, e.reason)
                key = (c.route, c.metadata_key, e.reason)
                level = logging.DEBUG if key in _reported else logging.WARNING
                _reported.add(key)
                log.log(level, "llmRequestCosts %s/%s: left out: %s", c.route, c.metadata_key, e)
    return out
