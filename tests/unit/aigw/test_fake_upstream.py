"""The fake upstream answers a load-aware picker's scrapes like a vLLM server, and does not count them."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from aigw.upstream import serve_in_thread


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: bytes = resp.read()
    return body.decode()


def _samples(text: str) -> dict[str, float]:
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_scrapes_are_answered_in_vllm_names_and_never_recorded() -> None:
    with serve_in_thread(name="one") as upstream:
        text = _get(f"{upstream.url}/metrics")
        assert _samples(text) == {
            "vllm:num_requests_running": 0.0,
            "vllm:num_requests_waiting": 0.0,
            "vllm:kv_cache_usage_perc": 0.0,
        }
        assert upstream.received == []


def test_running_counts_the_requests_being_answered() -> None:
    with serve_in_thread(name="one") as upstream:

        async def scrape_while_answering() -> str:
            slow = asyncio.to_thread(
                lambda: urllib.request.urlopen(
                    urllib.request.Request(
                        f"{upstream.url}/v1/chat/completions",
                        data=b'{"model": "m", "messages": []}',
                        headers={"content-type": "application/json", "x-response-delay-ms": "600"},
                    ),
                    timeout=5,
                ).read()
            )
            task = asyncio.ensure_future(slow)
            await asyncio.sleep(0.3)
            text = await asyncio.to_thread(_get, f"{upstream.url}/metrics")
            await task
            return text

        during = asyncio.run(scrape_while_answering())
        assert _samples(during)["vllm:num_requests_running"] == 1.0
        assert _samples(_get(f"{upstream.url}/metrics"))["vllm:num_requests_running"] == 0.0
        assert [r.path for r in upstream.received] == ["/v1/chat/completions"]
