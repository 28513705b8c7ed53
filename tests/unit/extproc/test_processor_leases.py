"""The processor's hooks for the load-aware picker: in-flight counts return to zero however a request ends,
and a shed request gets an OpenAI 429 with retry-after, counted by model and criticality."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.loadaware import LoadAwarePicker
from extproc.metrics import Metrics
from extproc.processor import Dependencies, RequestProcessor
from extproc.signals import SignalStore
from extproc.watch import ConfigHolder
from tests.unit.extproc.configs import simple_config, snapshot_of


def _deps(pools_patch: dict[str, Any] | None = None) -> Dependencies:
    cfg = simple_config()
    cfg["pools"][0]["models"][0]["criticality"] = "Sheddable"
    if pools_patch:
        cfg["pools"][0].update(pools_patch)
    rng = random.Random(1)
    store = SignalStore()
    return Dependencies(
        holder=ConfigHolder(snapshot_of(cfg)),
        picker=LoadAwarePicker(store=store, rng=rng),
        metrics=Metrics(),
        rng=rng,
        signals=store,
    )


def _headers(pairs: dict[str, str], *, response: bool = False, end: bool = False) -> Any:
    hm = ep.HttpHeaders(
        headers=core.HeaderMap(
            headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
        ),
        end_of_stream=end,
    )
    return ep.ProcessingRequest(response_headers=hm) if response else ep.ProcessingRequest(request_headers=hm)


def _routed(deps: Dependencies, *, stream: bool = False) -> tuple[RequestProcessor, Any]:
    proc = RequestProcessor(deps=deps)
    proc.handle(_headers({":path": "/v1/chat/completions", ":method": "POST"}))
    body = orjson.dumps(
        {"model": "p-model", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    )
    resp = ep.ProcessingResponse.FromString(
        proc.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
    )
    return proc, resp


def _inflight(deps: Dependencies) -> int:
    return deps.signals.total_inflight()


def _body(proc: RequestProcessor, data: bytes, *, end: bool) -> None:
    proc.handle(ep.ProcessingRequest(response_body=ep.HttpBody(body=data, end_of_stream=end)))


def test_normal_end_releases_at_the_last_body_chunk() -> None:
    deps = _deps()
    proc, _ = _routed(deps)
    assert _inflight(deps) == 1
    proc.handle(_headers({":status": "200"}, response=True))
    _body(proc, b'{"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}', end=True)
    assert _inflight(deps) == 0
    proc.finish()
    assert _inflight(deps) == 0
    (signals,) = [deps.signals.get(a) for a in deps.signals.addresses() if deps.signals.get(a).latency]
    assert signals.penalty == 0.0


def test_streamed_end_releases_and_records_ttft() -> None:
    deps = _deps()
    proc, _ = _routed(deps, stream=True)
    proc.handle(_headers({":status": "200"}, response=True))
    _body(proc, b'data: {"choices": []}\n\n', end=False)
    assert _inflight(deps) == 1
    _body(proc, b"data: [DONE]\n\n", end=True)
    assert _inflight(deps) == 0
    assert any(deps.signals.get(a).ttft is not None for a in deps.signals.addresses())


def test_upstream_error_releases_and_penalises() -> None:
    deps = _deps()
    proc, _ = _routed(deps)
    proc.handle(_headers({":status": "503"}, response=True))
    _body(proc, b"upstream connect error", end=True)
    proc.finish()
    assert _inflight(deps) == 0
    assert max(deps.signals.get(a).penalty for a in deps.signals.addresses()) == pytest.approx(1.0)


@pytest.mark.parametrize("stage", ["after_pick", "mid_response"])
def test_client_disconnect_or_stream_reset_releases(stage: str) -> None:
    deps = _deps()
    proc, _ = _routed(deps, stream=True)
    if stage == "mid_response":
        proc.handle(_headers({":status": "200"}, response=True))
        _body(proc, b'data: {"choices": []}\n\n', end=False)
    assert _inflight(deps) == 1
    proc.finish()  # the stream ended without the response: what the server's finally does
    assert _inflight(deps) == 0
    assert all(deps.signals.get(a).penalty == 0.0 for a in deps.signals.addresses())


def test_headers_only_response_releases() -> None:
    deps = _deps()
    proc, _ = _routed(deps)
    proc.handle(_headers({":status": "204"}, response=True, end=True))
    assert _inflight(deps) == 0


def test_shed_request_gets_429_json_retry_after_and_is_counted() -> None:
    deps = _deps({"picker": {"saturation": {"queueDepth": 1, "retryAfterSeconds": 3}}})
    clock = deps.signals.clock
    for a in ("10.0.0.1:8000", "10.0.0.2:8000"):
        deps.signals.get(a).record_scrape(now=clock(), waiting=2, running=4, kv_cache=0.1, lora=None)
    _, resp = _routed(deps)
    imm = resp.immediate_response
    assert imm.status.code == 429
    hdrs = {h.header.key: h.header.raw_value.decode() for h in imm.headers.set_headers}
    assert hdrs["retry-after"] == "3"
    assert hdrs["content-type"] == "application/json"
    err = orjson.loads(imm.body)["error"]
    assert err["type"] == "rate_limit_exceeded" and "saturated" in err["message"]
    assert _inflight(deps) == 0
    value = deps.metrics.registry.get_sample_value(
        "aigw_extproc_shed_requests_total",
        {"pool": "pool.ns", "model": "p-model", "criticality": "Sheddable"},
    )
    assert value == 1.0
