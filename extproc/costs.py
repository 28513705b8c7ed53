"""Request costs: the numbers written into Envoy dynamic metadata when a response ends."""

from __future__ import annotations

from api import filterconfig as fc
from extproc.snapshot import Cost
from extproc.usage import Usage


def cost_values(costs: tuple[Cost, ...], usage: Usage) -> dict[str, float]:
    """``metadataKey -> value`` for each cost of the matched rule's route (CEL costs were dropped at
    compile)."""
    out: dict[str, float] = {}
    for c in costs:
        if c.type == fc.CostType.INPUT_TOKEN:
            out[c.metadata_key] = usage.input_tokens
        elif c.type == fc.CostType.OUTPUT_TOKEN:
            out[c.metadata_key] = usage.output_tokens
        elif c.type == fc.CostType.TOTAL_TOKEN:
            out[c.metadata_key] = usage.total_tokens
    return out
