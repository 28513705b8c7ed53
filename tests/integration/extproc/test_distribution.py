"""Weighted backends, pool spread and target-model weights, observed through the real Envoy.

The ext_proc runs with a fixed seed and requests are sequential, so each run draws the same sequence; the
tolerances are still wide enough (over 4 standard deviations) to hold for any seed.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.extproc.harness import Gateway

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]

N = 300


def test_backend_weights_show_in_the_split(gateway: Gateway) -> None:
    landed = Counter(gateway.chat("gpt-split").headers["x-upstream-name"] for _ in range(N))
    assert set(landed) == {"a", "b"}
    # weights a:1 b:3 -> b gets 75%; sd = sqrt(.75*.25/300) = 2.5%, tolerance 10%
    assert abs(landed["b"] / N - 0.75) < 0.10, landed


def test_a_pool_spreads_requests_over_all_its_endpoints(gateway: Gateway) -> None:
    landed = Counter(gateway.chat("mistral").headers["x-upstream-name"] for _ in range(N))
    assert set(landed) == {"p1", "p2", "p3"}
    # uniform: 100 each, sd = 8.2; at least 60 each
    assert min(landed.values()) >= 60, landed


def test_target_model_weights_show_in_the_rewritten_models(gateway: Gateway) -> None:
    models: Counter[str] = Counter()
    for _ in range(N):
        r = gateway.chat("llama")
        assert r.status == 200
        assert r.headers["x-echo-content-length"] == r.headers["x-echo-body-bytes"]
        models[r.headers["x-echo-model"]] += 1
        # the client-facing model stays in the routing header
        assert r.json()["echo"]["headers"]["x-ai-eg-model"] == "llama"
    assert set(models) == {"llama-base", "llama-lora"}
    # weights 80/20; sd = 2.3%, tolerance 10%
    assert abs(models["llama-base"] / N - 0.80) < 0.10, models
