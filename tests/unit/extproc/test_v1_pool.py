"""A v1 InferencePool (``servesAnyModel``) in the ext_proc: our picker chooses among its Pods' endpoints for
any model, sent unchanged; a client's destination header never survives."""

from __future__ import annotations

import random
from typing import Any

from api import headers as hdr
from api.shared import Criticality
from extproc.metrics import Metrics
from extproc.picker import PickRequest, RandomPicker
from extproc.processor import Dependencies, RequestProcessor
from extproc.snapshot import reachable_models
from extproc.watch import ConfigHolder
from tests.unit.extproc.configs import pool_config, snapshot_of
from tests.unit.extproc.test_processor import _answer, _body_msg, _headers_msg, _set_headers

ENDPOINTS = [("10.0.0.1", 8000), ("10.0.0.2", 8000)]


def _config(*, any_model: bool) -> dict[str, Any]:
    cfg = pool_config(ENDPOINTS, name="p.ns@v1")
    cfg["pools"][0]["servesAnyModel"] = any_model
    return cfg


def _route(cfg: dict[str, Any], model: str, seed: int) -> Any:
    rng = random.Random(seed)
    deps = Dependencies(
        holder=ConfigHolder(snapshot_of(cfg)), picker=RandomPicker(rng=rng), metrics=Metrics(), rng=rng
    )
    proc = RequestProcessor(deps=deps)
    extra = {hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER: "6.6.6.6:1", hdr.ORIGINAL_DST_HEADER: "6.6.6.6:1"}
    first = _answer(proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST", **extra})))
    assert set(hdr.CLIENT_ROUTING_HEADERS) <= set(
        first.request_headers.response.header_mutation.remove_headers
    )
    return _answer(proc.handle(_body_msg(b'{"model": "%s"}' % model.encode())))


def test_any_model_reaches_one_of_the_pods_unchanged() -> None:
    seen = set()
    for seed in range(20):
        resp = _route(_config(any_model=True), "llama", seed)
        headers = _set_headers(resp)
        assert headers[hdr.SELECTED_BACKEND_HEADER] == hdr.ORIGINAL_DST_CLUSTER
        seen.add(headers[hdr.ORIGINAL_DST_HEADER])
        assert resp.request_body.response.body_mutation.body in (b"", b'{"model": "llama"}')
    assert seen == {"10.0.0.1:8000", "10.0.0.2:8000"}


def test_without_the_flag_an_unknown_model_is_still_a_404() -> None:
    assert _route(_config(any_model=False), "llama", 1).immediate_response.status.code == 404


def test_a_v1_pool_makes_the_rules_model_names_reachable() -> None:
    cfg = _config(any_model=True)
    cfg["rules"][0]["matches"] = [{"headers": [{"name": hdr.MODEL_NAME_HEADER, "value": "llama"}]}]
    snap = snapshot_of(cfg)
    assert reachable_models(snap.rules, model_header=hdr.MODEL_NAME_HEADER) == ["llama"]
    cfg["pools"][0]["servesAnyModel"] = False
    assert reachable_models(snapshot_of(cfg).rules, model_header=hdr.MODEL_NAME_HEADER) == []


def test_the_inference_objective_header_sets_the_criticality_our_picker_sheds_by() -> None:
    cfg = _config(any_model=True)
    cfg["pools"][0]["objectives"] = [
        {"name": "batch", "priority": -1},
        {"name": "chat", "priority": 2},
        {"name": "plain", "priority": 0},
    ]
    seen: list[Criticality] = []

    class Recording(RandomPicker):
        def pick(self, request: PickRequest) -> Any:
            seen.append(request.model.criticality)
            return super().pick(request)

    rng = random.Random(1)
    deps = Dependencies(
        holder=ConfigHolder(snapshot_of(cfg)), picker=Recording(rng=rng), metrics=Metrics(), rng=rng
    )
    for name in ("batch", "chat", "plain", "unknown", None):
        proc = RequestProcessor(deps=deps)
        extra = {hdr.OBJECTIVE_HEADER: name} if name is not None else {}
        proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST", **extra}))
        proc.handle(_body_msg(b'{"model": "llama"}'))
    assert seen == [
        Criticality.SHEDDABLE,
        Criticality.CRITICAL,
        Criticality.STANDARD,
        Criticality.STANDARD,
        Criticality.STANDARD,
    ]
