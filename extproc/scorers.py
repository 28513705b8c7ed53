"""The load-aware picker's pure parts: the fusion of scraped and passive signals, the filters' tests and the
scorers. Each scorer maps one endpoint to 0-1 (higher is better); the picker weighs and sums them.

Fusion. A scrape is exact but up to one interval old; this ext_proc's own in-flight count is exact now but
blind to other replicas' traffic. So a fresh scrape's ``waiting + running`` is corrected by how much our own
in-flight count changed since that scrape (requests we sent since are added, those that ended are taken off),
and never taken below our own in-flight count (the server cannot be running fewer of ours than we have open,
give or take requests still in transit, which the next scrape settles). Without a fresh scrape, our own
in-flight count is the load. The queue estimate spills the corrected load over the largest batch the server
was ever seen running.
"""

from __future__ import annotations

from typing import Final

from extproc.promtext import LoraInfo
from extproc.signals import EndpointSignals

LORA_RECENT_S: Final = 30.0
"""An adapter we sent to an endpoint this recently counts as still loaded there."""
HEALTH_PENALTY_LIMIT: Final = 3.0
"""An endpoint whose decayed failure penalty is at least this is filtered out (while others remain)."""


def fuse(
    s: EndpointSignals, *, now: float, stale_after: float, running_weight: float = 1.0
) -> tuple[float, float, float | None]:
    """``(load, queue, kv_cache)`` of one endpoint now: requests on it (each queued one counts 1, each
    running one ``running_weight``), requests queued on it, KV use (None when unknown)."""
    inflight = s.inflight
    if now - s.scraped_at > stale_after:
        cap = s.cap_running
        queue = inflight - cap if cap > 0 and inflight > cap else 0.0
        return queue + running_weight * (inflight - queue), queue, None
    delta = inflight - s.inflight_at_scrape
    waiting, running = s.waiting, s.running
    load = waiting + running + delta
    if load < inflight:
        load = float(inflight)
    cap = s.cap_running
    # a full batch (or a queue already) queues what we add; else it spills over the batch size
    queue = waiting + delta if waiting > 0 or running >= cap else load - cap
    if queue < 0.0:
        queue = 0.0
    return queue + running_weight * (load - queue), queue, s.kv_cache


def saturation(*, queue: float, kv_cache: float | None, queue_limit: float, kv_limit: float) -> float:
    """How far past its thresholds an endpoint is: >= 1 saturated, >= f past f times both thresholds."""
    q = queue / queue_limit
    if kv_cache is None:
        return q
    k = kv_cache / kv_limit
    return q if q > k else k


def healthy(s: EndpointSignals, *, penalty: float) -> bool:
    """False when the last scrape could not reach the endpoint, or it failed requests recently."""
    return not s.unreachable and penalty < HEALTH_PENALTY_LIMIT


def load_score(load: float, *, least: float, spread: float) -> float:
    """1 for the least loaded candidate, falling linearly to 0 at ``spread`` more requests."""
    v = 1.0 - (load - least) / spread
    return v if v > 0.0 else 0.0


def kv_score(kv_cache: float | None) -> float:
    """1 - KV-cache use; 0.5 when unknown (neither favoured nor avoided)."""
    if kv_cache is None:
        return 0.5
    v = 1.0 - kv_cache
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def prefix_score(matched_blocks: int, *, total_blocks: int) -> float:
    """Share of the prompt's leading blocks the endpoint recently served."""
    return matched_blocks / total_blocks if total_blocks else 0.0


def lora_score(lora: LoraInfo | None, *, target: str, served_ago: float | None) -> float:
    """1 adapter running; 0.9 we sent it a request for the adapter within ``LORA_RECENT_S`` (still loaded,
    most likely); 0.8 a slot free; 0.6 adapter waiting to load; else 0. Without LoRA info (or LoRA slots): 1,
    so base-model pools are unaffected."""
    if lora is None or lora.max_lora <= 0:
        return 1.0
    if target in lora.running:
        return 1.0
    if served_ago is not None and served_ago < LORA_RECENT_S:
        return 0.9
    if len(lora.running) + len(lora.waiting) < lora.max_lora:
        return 0.8
    if target in lora.waiting:
        return 0.6
    return 0.0


def latency_score(latency: float | None, *, best: float) -> float:
    """Fastest moving-average response time among candidates / this one's; 1 when unknown."""
    if latency is None or latency <= 0.0 or best <= 0.0:
        return 1.0
    return best / latency if latency > best else 1.0


def health_score(penalty: float) -> float:
    """1 / (1 + decayed failure penalty)."""
    return 1.0 / (1.0 + penalty)
