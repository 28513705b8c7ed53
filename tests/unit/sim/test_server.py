"""The replica over HTTP: OpenAI-compatible answers, and /metrics parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aigw.sim.config import SimConfig, SimConfigError, load_config
from aigw.sim.main import main
from aigw.sim.server import Replica
from aigw.sim.tokenizer import tokenize

FAST = {"step_base_ms": 1.0, "decode_ms_per_seq": 0.1, "prefill_ms_per_token": 0.001, "lora_load_ms": 1.0}


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    r = Replica(
        name="r1", config=SimConfig.model_validate({**FAST, "lora_adapters": ["ad1"], "max_loras": 2})
    )
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def post(r: Replica, path: str, body: Any) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with aiohttp.ClientSession() as s, s.post(r.url + path, data=data) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def scrape(r: Replica) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(r.url + "/metrics") as resp:
        text = await resp.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_chat_completion_with_usage(replica: Replica) -> None:
    msgs = [{"role": "user", "content": "Hello, world!"}]
    status, headers, raw = await post(
        replica, "/v1/chat/completions", {"model": "sim-llm", "messages": msgs, "max_tokens": 7}
    )
    assert status == 200 and headers["x-upstream-name"] == "r1"
    body = orjson.loads(raw)
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7 == len(tokenize(body["choices"][0]["message"]["content"]))
    assert body["usage"]["prompt_tokens"] == len(tokenize("<user> Hello, world!")) == 6


async def test_streaming_completion_with_include_usage(replica: Replica) -> None:
    req = {
        "model": "ad1",
        "prompt": "one two",
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, headers, raw = await post(replica, "/v1/completions", req)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [e.removeprefix(b"data: ") for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert len(texts) == 5 and len(tokenize("".join(texts))) == 5
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["model"] == "ad1" for c in chunks)


async def test_errors_are_openai_shaped(replica: Replica) -> None:
    status, _, raw = await post(replica, "/v1/chat/completions", {"model": "other", "messages": []})
    assert status == 404 and orjson.loads(raw)["error"]["type"] == "NotFoundError"
    status, _, raw = await post(replica, "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in orjson.loads(raw)["error"]["message"]
    status, _, raw = await post(
        replica, "/v1/completions", {"model": "sim-llm", "prompt": "x", "max_tokens": 9000}
    )
    assert status == 400 and "maximum context length" in orjson.loads(raw)["error"]["message"]
    status, _, raw = await post(replica, "/v1/chat/completions", {"model": "sim-llm", "messages": "hi"})
    assert status == 400


async def test_metrics_carry_vllm_names_and_show_the_queue() -> None:
    slow = {**FAST, "step_base_ms": 20.0, "max_num_seqs": 1, "lora_adapters": ["ad1"], "max_loras": 1}
    r = Replica(name="q", config=SimConfig.model_validate(slow))
    await r.start()
    try:
        req = {"model": "ad1", "prompt": " ".join(["word"] * 40), "max_tokens": 50}
        tasks = [asyncio.create_task(post(r, "/v1/completions", req)) for _ in range(3)]
        async with asyncio.timeout(20):
            while True:
                m = await scrape(r)
                if m["vllm:num_requests_waiting"].samples[0].value == 2:
                    break
                await asyncio.sleep(0.01)
        assert m["vllm:num_requests_running"].samples[0].value == 1
        assert m["vllm:num_requests_running"].type == "gauge"
        kv = m["vllm:kv_cache_usage_perc"].samples[0].value
        assert 0 < kv <= 1 and m["vllm:gpu_cache_usage_perc"].samples[0].value == kv
        (lora,) = m["vllm:lora_requests_info"].samples
        assert lora.labels == {
            "max_lora": "1",
            "running_lora_adapters": "ad1",
            "waiting_lora_adapters": "ad1",
        }
        assert lora.value > 1e9  # a timestamp
        info = m["vllm:cache_config_info"].samples[0].labels
        assert info == {"block_size": "16", "num_gpu_blocks": "1024"}
        for t in tasks:
            status, _, _ = await t
            assert status == 200
        m = await scrape(r)
        assert m["vllm:prefix_cache_queries"].type == "counter"
        assert m["vllm:prefix_cache_queries"].samples[0].value == 3 * 40
        assert m["vllm:prefix_cache_hits"].samples[0].value == 2 * 32  # the two later ones hit 2 full blocks
        for name in (
            "vllm:time_to_first_token_seconds",
            "vllm:time_per_output_token_seconds",
            "vllm:e2e_request_latency_seconds",
        ):
            assert m[name].type == "histogram"
            count = next(s for s in m[name].samples if s.name.endswith("_count"))
            assert count.value == 3
        assert m["vllm:num_requests_waiting"].samples[0].value == 0
    finally:
        await r.stop()


async def test_client_going_away_frees_its_place() -> None:
    r = Replica(name="g", config=SimConfig.model_validate({**FAST, "step_base_ms": 20.0}))
    await r.start()
    try:
        req = {"model": "sim-llm", "prompt": "x", "max_tokens": 1000, "stream": True}
        async with aiohttp.ClientSession() as s, s.post(r.url + "/v1/completions", json=req) as resp:
            await resp.content.readline()
            assert len(r.engine.running) == 1
        async with asyncio.timeout(10):
            while r.engine.running:  # noqa: ASYNC110 - the engine signals nothing when a request leaves
                await asyncio.sleep(0.01)
        assert r.engine.pool.used == 0
    finally:
        await r.stop()


def test_config_file_errors_name_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("max_num_seqs: 3\nlora_adapters: [a, b]\n")
    assert load_config(good).max_num_seqs == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_num_seqs: 0\nmax_num_seq: 3\n")
    with pytest.raises(SimConfigError, match=r"bad.yaml: max_num_seqs: .*; max_num_seq: Extra inputs"):
        load_config(bad)
    assert main(["--config", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
