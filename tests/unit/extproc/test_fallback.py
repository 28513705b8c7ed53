"""A pool's fallback in the ext_proc: engaged only by the load-aware picker's own refusal (no endpoint, or
saturated and shedding the request), never while the pool can serve; counted by route, pool and reason."""

from __future__ import annotations

import random
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from api import headers as hdr
from extproc.loadaware import LoadAwarePicker
from extproc.metrics import Metrics
from extproc.processor import Dependencies, RequestProcessor
from extproc.signals import SignalStore
from extproc.snapshot import Snapshot
from extproc.watch import ConfigHolder
from tests.unit.extproc.configs import snapshot_of

PRIMARY = ["10.0.0.1:8000", "10.0.0.2:8000"]
SPARE = "10.0.1.1:8000"
MODELS = [{"modelName": c.lower(), "criticality": c} for c in ("Critical", "Standard", "Sheddable")]


def _pool(name: str, addrs: list[str], models: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "members": [
            {
                "name": f"m-{name}",
                "schema": {"name": "OpenAI"},
                "endpoints": [{"ip": a.split(":")[0], "port": 8000} for a in addrs],
            }
        ],
        "models": models,
    }


def _config(*, primary: list[str], fallback: dict[str, Any] | None) -> Snapshot:
    ref: dict[str, Any] = {"kind": "InferencePool", "name": "p.ns"}
    if fallback is not None:
        ref["fallback"] = fallback
    return snapshot_of(
        {
            "version": "v1",
            "rules": [{"route": "ns/r", "backendRefs": [ref]}],
            "backends": [{"name": "cloud.ns", "schema": {"name": "OpenAI"}}],
            "pools": [
                _pool("p.ns", primary, MODELS),
                _pool("spare.ns", [SPARE], [{"modelName": "spare-model", "criticality": "Critical"}]),
            ],
        }
    )


class _Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


class _Gateway:
    """The processor with the real load-aware picker over signals the test sets."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.clock = _Clock()
        self.store = SignalStore(clock=self.clock)
        self.metrics = Metrics()
        rng = random.Random(5)
        self.deps = Dependencies(
            holder=ConfigHolder(snapshot),
            picker=LoadAwarePicker(store=self.store, rng=rng),
            metrics=self.metrics,
            rng=rng,
            signals=self.store,
        )

    def scrape(self, addr: str, *, waiting: float) -> None:
        self.store.get(addr).record_scrape(
            now=self.clock.t, waiting=waiting, running=1, kv_cache=0.1, lora=None
        )

    def saturate_primary(self) -> None:
        for a in PRIMARY:
            self.scrape(a, waiting=1000)  # far past every default threshold, Standard's too

    def send(self, model: str) -> Any:
        proc = RequestProcessor(deps=self.deps)
        proc.handle(
            ep.ProcessingRequest(
                request_headers=ep.HttpHeaders(
                    headers=core.HeaderMap(
                        headers=[
                            core.HeaderValue(key=":path", raw_value=b"/v1/chat/completions"),
                            core.HeaderValue(key=":method", raw_value=b"POST"),
                        ]
                    )
                )
            )
        )
        body = b'{"model": "%s"}' % model.encode()
        raw = proc.handle(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
        # the upstream answers at once, so the request's in-flight claim ends here (as it would in Envoy)
        status = core.HeaderMap(headers=[core.HeaderValue(key=":status", raw_value=b"200")])
        proc.handle(ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=status, end_of_stream=True)))
        proc.finish()
        return ep.ProcessingResponse.FromString(raw)

    def fallbacks(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "aigw_extproc_pool_fallbacks_total", {"route": "ns/r", "pool": "p.ns", "reason": reason}
        )
        return value or 0.0


def _dest(resp: Any) -> tuple[str, str | None, bytes]:
    """(selected backend header, original destination or None, body sent upstream)."""
    assert resp.WhichOneof("response") == "request_body", resp
    common = resp.request_body.response
    headers = {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}
    return (
        headers[hdr.SELECTED_BACKEND_HEADER],
        headers.get(hdr.ORIGINAL_DST_HEADER),
        common.body_mutation.body,
    )


SPARE_POOL = {"kind": "InferencePool", "name": "spare.ns", "modelNameOverride": "spare-model"}
CLOUD = {"kind": "AIServiceBackend", "name": "cloud.ns", "modelNameOverride": "gpt-4o-mini"}


@pytest.mark.parametrize("model", ["critical", "standard", "sheddable"])
def test_a_primary_that_can_serve_keeps_every_request(model: str) -> None:
    gw = _Gateway(_config(primary=PRIMARY, fallback=SPARE_POOL))
    for a in PRIMARY:
        gw.scrape(a, waiting=0)
    for _ in range(20):
        backend, dst, _ = _dest(gw.send(model))
        assert (backend, dst in PRIMARY) == (hdr.ORIGINAL_DST_CLUSTER, True)
    assert gw.fallbacks("saturated") == gw.fallbacks("no_endpoint") == 0


def test_a_saturated_primary_sends_what_it_would_shed_to_the_fallback_pool_with_its_model() -> None:
    gw = _Gateway(_config(primary=PRIMARY, fallback=SPARE_POOL))
    gw.saturate_primary()
    for model in ("sheddable", "standard"):
        backend, dst, body = _dest(gw.send(model))
        assert (backend, dst) == (hdr.ORIGINAL_DST_CLUSTER, SPARE)
        assert body == b'{"model": "spare-model"}'
    assert gw.fallbacks("saturated") == 2
    # Critical is never shed, so the primary still serves it: no fallback
    _, dst, _ = _dest(gw.send("critical"))
    assert dst in PRIMARY
    assert gw.fallbacks("saturated") == 2


def test_traffic_returns_to_the_primary_when_it_recovers() -> None:
    gw = _Gateway(_config(primary=PRIMARY, fallback=SPARE_POOL))
    gw.saturate_primary()
    assert _dest(gw.send("sheddable"))[1] == SPARE
    gw.clock.t += 0.01
    for a in PRIMARY:
        gw.scrape(a, waiting=0)
    assert _dest(gw.send("sheddable"))[1] in PRIMARY
    assert gw.fallbacks("saturated") == 1


def test_an_empty_primary_sends_every_criticality_to_the_fallback_backend() -> None:
    gw = _Gateway(_config(primary=[], fallback=CLOUD))
    for model in ("critical", "standard", "sheddable"):
        backend, dst, body = _dest(gw.send(model))
        assert (backend, dst) == ("cloud.ns", None)
        assert body == b'{"model": "gpt-4o-mini"}'
    assert gw.fallbacks("no_endpoint") == 3


def test_without_override_the_fallback_gets_the_request_body_unchanged() -> None:
    gw = _Gateway(_config(primary=[], fallback={"name": "cloud.ns"}))
    backend, _, body = _dest(gw.send("standard"))
    assert backend == "cloud.ns"
    assert body == b""  # no body mutation: the client's bytes go as they are


def test_without_a_fallback_the_picker_refusals_stand() -> None:
    gw = _Gateway(_config(primary=PRIMARY, fallback=None))
    gw.saturate_primary()
    resp = gw.send("sheddable")
    assert resp.immediate_response.status.code == 429
    empty = _Gateway(_config(primary=[], fallback=None))
    assert empty.send("critical").immediate_response.status.code == 503


def test_a_fallback_pool_without_the_model_answers_404_and_never_chains() -> None:
    gw = _Gateway(_config(primary=PRIMARY, fallback={"kind": "InferencePool", "name": "spare.ns"}))
    gw.saturate_primary()
    gw.scrape(SPARE, waiting=1000)
    # the request's model "sheddable" has no InferenceModel in the spare pool: a clear 404, not a loop
    resp = gw.send("sheddable")
    assert resp.immediate_response.status.code == 404
    assert b"spare.ns" in resp.immediate_response.body
