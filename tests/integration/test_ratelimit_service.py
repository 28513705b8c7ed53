"""The real rate limit service (``github.com/envoyproxy/ratelimit``, as Envoy Gateway deploys it) counts hits
in the real Redis the way the e2e token budget relies on: a check with 0 hits passes while the counter is
within the limit, each response's cost is added, and a tenant past its limit is refused while another is not.

The e2e scenario (``tests/e2e/test_14_token_budget.py``) gets its limits from Envoy Gateway over xDS; this one
gives the service the same limit as its own file config, so it runs without Envoy Gateway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realparts.ports import free_port
from tests.realparts.ratelimit import RateLimitError, RateLimitService, RedisServer, ratelimit_binary

BUDGET = 250
CONFIG = f"""
domain: budget
descriptors:
  - key: tenant
    rate_limit: {{unit: minute, requests_per_unit: {BUDGET}}}
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[RedisServer, RateLimitService]]:
    try:
        binary = ratelimit_binary()
        with (
            RedisServer(port=free_port(), workdir=tmp_path / "redis") as redis,
            RateLimitService(
                binary=binary,
                redis_url=redis.url,
                grpc_host="127.0.0.1",
                config=CONFIG,
                workdir=tmp_path / "ratelimit",
            ) as service,
        ):
            yield redis, service
    except RateLimitError as e:
        pytest.fail(str(e))


def test_a_tenant_is_refused_once_its_counter_is_past_the_limit(
    service: tuple[RedisServer, RateLimitService],
) -> None:
    redis, rl = service
    assert "budget.tenant" in rl.loaded_config()
    if 60 - time.time() % 60 < 5:  # the service counts per minute of the clock: stay in one minute
        time.sleep(60 - time.time() % 60 + 0.2)

    def ask(tenant: str, hits: int) -> str:
        return rl.should_rate_limit(domain="budget", entries=[("tenant", tenant)], hits=hits)

    assert ask("a", 0) == "OK"  # the check of a request: costs nothing
    assert ask("a", 100) == "OK"  # a response's cost: 100
    assert ask("a", 0) == "OK"
    assert ask("a", 150) == "OK"  # 250: exactly the budget, still within it
    assert ask("a", 0) == "OK"
    assert ask("a", 1) == "OVER_LIMIT"  # 251
    assert ask("a", 0) == "OVER_LIMIT"  # spent: the next request of tenant a is refused
    assert ask("b", 0) == "OK"  # tenant b has its own counter
    counters = redis.counters("_tenant_")
    assert sum(v for k, v in counters.items() if "_tenant_a_" in k) == 251, counters
    assert sum(v for k, v in counters.items() if "_tenant_b_" in k) == 0, counters
