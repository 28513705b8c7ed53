"""The request state machine, fed Envoy's messages directly: every answer is a valid ProcessingResponse."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from hypothesis import given, settings
from hypothesis import strategies as st

from api import headers as hdr
from api.filterconfig import Criticality
from extproc.metrics import Metrics
from extproc.picker import PickRefusedError, PickRequest, RandomPicker
from extproc.processor import Dependencies, RequestProcessor
from extproc.snapshot import PoolEndpoint
from extproc.watch import ConfigHolder
from tests.unit.extproc.configs import simple_config, snapshot_of

SNAPSHOT = snapshot_of(simple_config())


def _deps(seed: int = 1) -> Dependencies:
    rng = random.Random(seed)
    return Dependencies(
        holder=ConfigHolder(SNAPSHOT), picker=RandomPicker(rng=rng), metrics=Metrics(), rng=rng
    )


def _headers_msg(headers: dict[str, str], *, end_of_stream: bool = False) -> Any:
    return ep.ProcessingRequest(
        request_headers=ep.HttpHeaders(
            headers=core.HeaderMap(
                headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
            ),
            end_of_stream=end_of_stream,
        )
    )


def _body_msg(body: bytes) -> Any:
    return ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True))


def _response_200() -> Any:
    return ep.ProcessingRequest(
        response_headers=ep.HttpHeaders(
            headers=core.HeaderMap(headers=[core.HeaderValue(key=":status", raw_value=b"200")])
        )
    )


def _answer(raw: bytes) -> Any:
    return ep.ProcessingResponse.FromString(raw)


def _set_headers(resp: Any) -> dict[str, str]:
    return {
        h.header.key: h.header.raw_value.decode()
        for h in resp.request_body.response.header_mutation.set_headers
    }


def _route(model: str, extra: dict[str, str] | None = None, seed: int = 1) -> Any:
    proc = RequestProcessor(deps=_deps(seed))
    first = _answer(
        proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST", **(extra or {})}))
    )
    assert first.WhichOneof("response") == "request_headers"
    return _answer(proc.handle(_body_msg(b'{"model": "%s"}' % model.encode())))


def test_headers_phase_strips_every_client_routing_header() -> None:
    proc = RequestProcessor(deps=_deps())
    resp = _answer(proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"})))
    removed = set(resp.request_headers.response.header_mutation.remove_headers)
    assert set(hdr.CLIENT_ROUTING_HEADERS) <= removed


def test_body_phase_sets_routing_headers_and_clears_the_route_cache() -> None:
    resp = _route("m1", {hdr.SELECTED_BACKEND_HEADER: "evil.ns", hdr.ORIGINAL_DST_HEADER: "1.2.3.4:5"})
    common = resp.request_body.response
    assert common.clear_route_cache
    assert _set_headers(resp)[hdr.SELECTED_BACKEND_HEADER] == "b1.ns"
    assert _set_headers(resp)[hdr.MODEL_NAME_HEADER] == "m1"
    assert hdr.ORIGINAL_DST_HEADER in common.header_mutation.remove_headers
    assert all(
        h.append_action == core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
        for h in common.header_mutation.set_headers
    )


def test_pool_request_gets_an_endpoint_a_target_model_and_a_matching_content_length() -> None:
    seen_hosts = set()
    for seed in range(30):
        resp = _route("p-model", seed=seed)
        headers = _set_headers(resp)
        assert headers[hdr.SELECTED_BACKEND_HEADER] == hdr.ORIGINAL_DST_CLUSTER
        assert headers[hdr.ORIGINAL_DST_HEADER] in {"10.0.0.1:8000", "10.0.0.2:8000"}
        if headers[hdr.ORIGINAL_DST_HEADER] == "10.0.0.2:8000":
            assert headers[":authority"] == "pod2.example"
        seen_hosts.add(headers[hdr.ORIGINAL_DST_HEADER])
        body = resp.request_body.response.body_mutation.body
        assert int(headers["content-length"]) == len(body)
        assert body in (b'{"model": "t1"}', b'{"model": "t2"}')  # only the value changes
    assert len(seen_hosts) == 2


def test_unknown_pool_model_is_a_404_immediate_response() -> None:
    resp = _route("ghost")
    assert resp.immediate_response.status.code == 404


def test_models_path_is_answered_from_the_config() -> None:
    proc = RequestProcessor(deps=_deps())
    resp = _answer(
        proc.handle(_headers_msg({":path": "/v1/models?x=1", ":method": "GET"}, end_of_stream=True))
    )
    assert resp.immediate_response.status.code == 200
    assert resp.immediate_response.body == SNAPSHOT.models_body


@pytest.mark.parametrize(
    ("path", "method", "allow"),
    [
        ("/v1/chat/completions", "GET", "POST"),
        ("/v1/embeddings", "PUT", "POST"),
        ("/v1/completions", "", "POST"),
        ("/v1/models", "POST", "GET, HEAD"),
        ("/v1/models", "DELETE", "GET, HEAD"),
    ],
)
def test_a_wrong_method_on_a_known_path_is_a_405_with_allow(path: str, method: str, allow: str) -> None:
    proc = RequestProcessor(deps=_deps())
    resp = _answer(proc.handle(_headers_msg({":path": path, ":method": method}, end_of_stream=True)))
    ir = resp.immediate_response
    assert ir.status.code == 405
    headers = {h.header.key: h.header.raw_value.decode() for h in ir.headers.set_headers}
    assert headers["allow"] == allow
    assert headers["content-type"] == "application/json"
    error = orjson.loads(ir.body)["error"]
    assert error["code"] == "method_not_allowed"
    assert path in error["message"] and allow in error["message"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_models_path_answers_get_and_head(method: str) -> None:
    proc = RequestProcessor(deps=_deps())
    resp = _answer(proc.handle(_headers_msg({":path": "/v1/models", ":method": method}, end_of_stream=True)))
    assert resp.immediate_response.status.code == 200


PATHS = st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/x", ""])


@settings(max_examples=300)
@given(
    PATHS,
    st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=5),
    st.binary(max_size=120),
    st.booleans(),
)
def test_no_input_crashes_the_processor(
    path: str, headers: dict[str, str], body: bytes, bodyless: bool
) -> None:
    proc = RequestProcessor(deps=_deps())
    first = _answer(proc.handle(_headers_msg({**headers, ":path": path}, end_of_stream=bodyless)))
    kind = first.WhichOneof("response")
    if kind == "immediate_response":
        assert first.immediate_response.status.code in {200, 400, 404, 405, 415}
    else:
        second = _answer(proc.handle(_body_msg(body)))
        assert second.WhichOneof("response") in {"request_body", "immediate_response"}
        if second.WhichOneof("response") == "immediate_response":
            assert second.immediate_response.status.code in {400, 404, 503}
    proc.finish()


@given(st.binary(max_size=200), st.sampled_from(["200", "500", "abc", ""]), st.booleans())
def test_any_response_is_processed_without_crashing(body: bytes, status: str, stream: bool) -> None:
    proc = RequestProcessor(deps=_deps())
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"}))
    proc.handle(_body_msg(b'{"model": "m1", "stream": %s}' % (b"true" if stream else b"false")))
    proc.handle(
        ep.ProcessingRequest(
            response_headers=ep.HttpHeaders(
                headers=core.HeaderMap(headers=[core.HeaderValue(key=":status", raw_value=status.encode())])
            )
        )
    )
    for chunk in (body[:50], body[50:]):
        resp = _answer(
            proc.handle(ep.ProcessingRequest(response_body=ep.HttpBody(body=chunk, end_of_stream=False)))
        )
        assert resp.WhichOneof("response") == "response_body"
    resp = _answer(proc.handle(ep.ProcessingRequest(response_body=ep.HttpBody(body=b"", end_of_stream=True))))
    assert resp.WhichOneof("response") == "response_body"
    proc.finish()


def test_costs_go_into_dynamic_metadata_at_the_end_of_the_response() -> None:
    proc = RequestProcessor(deps=_deps())
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"}))
    proc.handle(_body_msg(b'{"model": "m1"}'))
    proc.handle(_response_200())
    resp = _answer(
        proc.handle(
            ep.ProcessingRequest(
                response_body=ep.HttpBody(
                    body=b'{"usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}',
                    end_of_stream=True,
                )
            )
        )
    )
    ns = resp.dynamic_metadata.fields[hdr.METADATA_NAMESPACE].struct_value
    assert ns.fields["tokens"].number_value == 5


class _SheddingPicker:
    """Stands in for a metrics-aware picker: sheds non-critical requests, else picks the last endpoint."""

    def __init__(self) -> None:
        self.seen: list[PickRequest] = []

    def pick(self, request: PickRequest) -> PoolEndpoint:
        self.seen.append(request)
        if request.model.criticality != Criticality.CRITICAL:
            raise PickRefusedError(status=429, message="pool saturated: shedding non-critical requests")
        return request.pool.endpoints[-1]


def test_a_custom_picker_sees_the_request_and_can_shed_it() -> None:
    picker = _SheddingPicker()
    rng = random.Random(3)
    deps = Dependencies(holder=ConfigHolder(SNAPSHOT), picker=picker, metrics=Metrics(), rng=rng)
    proc = RequestProcessor(deps=deps)
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST", "x-user": "u1"}))
    resp = _answer(proc.handle(_body_msg(b'{"model": "p-model"}')))
    assert resp.immediate_response.status.code == 429
    assert b"shedding" in resp.immediate_response.body
    (seen,) = picker.seen
    assert seen.pool.name == "pool.ns"
    assert seen.model.name == "p-model"
    assert seen.target_model in {"t1", "t2"}
    assert seen.headers["x-user"] == "u1"
    assert seen.body_size == len(b'{"model": "p-model"}')


def _chat_with_usage(deps: Dependencies, usage: bytes) -> Any:
    proc = RequestProcessor(deps=deps)
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"}))
    proc.handle(_body_msg(b'{"model": "m1"}'))
    status = core.HeaderMap(headers=[core.HeaderValue(key=":status", raw_value=b"200")])
    proc.handle(ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=status)))
    body = ep.HttpBody(body=b'{"usage": ' + usage + b"}", end_of_stream=True)
    return _answer(proc.handle(ep.ProcessingRequest(response_body=body)))


def test_cel_costs_see_model_backend_and_tokens_and_failures_are_counted_not_fatal() -> None:
    cfg = simple_config()
    cfg["llmRequestCosts"] = [
        {
            "route": "ns/r1",
            "metadataKey": "weighted",
            "type": "CEL",
            "cel": "model == 'm1' && backend == 'b1.ns' ? input_tokens * 3 + output_tokens : 0",
        },
        {"route": "ns/r1", "metadataKey": "margin", "type": "CEL", "cel": "input_tokens - output_tokens"},
    ]
    deps = _deps()
    deps.holder.replace(snapshot_of(cfg))
    resp = _chat_with_usage(deps, b'{"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}')
    ns = resp.dynamic_metadata.fields[hdr.METADATA_NAMESPACE].struct_value
    assert dict(ns.fields.items()).keys() == {"weighted", "margin"}
    assert ns.fields["weighted"].number_value == 34 and ns.fields["margin"].number_value == 6
    # a negative result: that cost is left out and counted; the response passes unchanged
    resp = _chat_with_usage(deps, b'{"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}')
    ns = resp.dynamic_metadata.fields[hdr.METADATA_NAMESPACE].struct_value
    assert set(ns.fields) == {"weighted"} and ns.fields["weighted"].number_value == 7
    assert not resp.response_body.response.HasField("body_mutation")
    failures = deps.metrics.cost_failures.labels("ns/r1", "margin", "negative")
    assert failures._value.get() == 1


def _credential_route(tmp_path: Any, backend: dict[str, Any], *, pool: bool = False) -> Any:
    """Route model ``m1`` (or the pool model) to a backend (or pool member) with a credential."""
    (tmp_path / "key").write_text("sk-secret\n")
    (tmp_path / "aws").write_text(
        "[default]\naws_access_key_id = AKID\naws_secret_access_key = s3cret\naws_session_token = tok3n\n"
    )
    cfg = simple_config()
    target = cfg["pools"][0]["members"][0] if pool else cfg["backends"][0]
    target.update(backend)
    rng = random.Random(1)
    deps = Dependencies(
        holder=ConfigHolder(snapshot_of(cfg, base_dir=tmp_path)),
        picker=RandomPicker(rng=rng),
        metrics=Metrics(),
        rng=rng,
    )
    proc = RequestProcessor(deps=deps)
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"}))
    model = b"p-model" if pool else b"m1"
    return _answer(
        proc.handle(_body_msg(b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % model))
    )


def _credential_metadata(resp: Any) -> dict[str, str]:
    ns = resp.dynamic_metadata.fields[hdr.CREDENTIAL_METADATA_NAMESPACE].struct_value
    return {k: v.string_value for k, v in ns.fields.items()}


@pytest.mark.parametrize("pool", [False, True], ids=["backend", "pool-member"])
@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({"auth": {"apiKey": {"filename": "key"}}}, {"authorization": "Bearer sk-secret"}),
        (
            {
                "schema": {"name": "AzureOpenAI", "version": "2024-10-21"},
                "auth": {"apiKey": {"filename": "key"}},
            },
            {"api-key": "sk-secret"},
        ),
        (
            {
                "schema": {"name": "AWSBedrock"},
                "auth": {"aws": {"credentialFileName": "aws", "region": "us-east-1"}},
            },
            {"authorization": "AWS4-HMAC-SHA256 Credential=AKID/", "x-amz-security-token": "tok3n"},
        ),
    ],
    ids=["bearer", "azure-api-key", "sigv4"],
)
def test_the_credential_travels_as_metadata_never_as_a_request_header(
    tmp_path: Any, backend: dict[str, Any], expected: dict[str, str], pool: bool
) -> None:
    resp = _credential_route(tmp_path, backend, pool=pool)
    assert resp.WhichOneof("response") == "request_body", resp
    serialized_headers = resp.request_body.response.header_mutation.SerializeToString()
    assert b"sk-secret" not in serialized_headers and b"tok3n" not in serialized_headers
    assert not set(_set_headers(resp)) & set(hdr.CREDENTIAL_HEADERS)
    metadata = _credential_metadata(resp)
    assert set(metadata) == set(expected)
    for name, value in expected.items():
        assert metadata[name].startswith(value)
    if "x-amz-security-token" in expected:
        # what the signature covers but is no secret stays a header
        assert set(_set_headers(resp)) >= {"x-amz-date", ":authority"}
        assert "x-amz-security-token" in metadata["authorization"]  # signed over it, then re-added by Envoy


def test_a_backend_without_credential_gets_no_credential_metadata() -> None:
    resp = _route("m1")
    assert hdr.CREDENTIAL_METADATA_NAMESPACE not in resp.dynamic_metadata.fields


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity, gzip", "GZIP"])
def test_an_encoded_body_is_refused_with_415_naming_the_encoding(encoding: str) -> None:
    proc = RequestProcessor(deps=_deps())
    headers = {":path": "/v1/chat/completions", ":method": "POST", "content-encoding": encoding}
    ir = _answer(proc.handle(_headers_msg(headers))).immediate_response
    assert ir.status.code == 415
    set_headers = {h.header.key: h.header.raw_value.decode() for h in ir.headers.set_headers}
    assert set_headers["accept-encoding"] == "identity"
    error = orjson.loads(ir.body)["error"]
    assert error["code"] == "unsupported_content_encoding"
    assert encoding.split(", ")[-1].lower() in error["message"]


def test_identity_encoding_is_no_encoding() -> None:
    proc = RequestProcessor(deps=_deps())
    headers = {":path": "/v1/chat/completions", ":method": "POST", "content-encoding": "identity"}
    assert _answer(proc.handle(_headers_msg(headers))).WhichOneof("response") == "request_headers"


@pytest.mark.parametrize("ended", [True, False])
def test_a_response_cut_short_is_counted_cancelled_not_ok(ended: bool) -> None:
    deps = _deps()
    proc = RequestProcessor(deps=deps)
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"}))
    proc.handle(_body_msg(b'{"model": "m1", "stream": true}'))
    proc.handle(_response_200())
    proc.handle(ep.ProcessingRequest(response_body=ep.HttpBody(body=b"data: {}\n\n", end_of_stream=False)))
    if ended:
        proc.handle(
            ep.ProcessingRequest(response_body=ep.HttpBody(body=b"data: [DONE]\n\n", end_of_stream=True))
        )
    proc.finish()  # ended or not, the stream is over: a client that went away mid-answer is not "ok"
    requests = deps.metrics.requests
    assert requests.labels("ok")._value.get() == (1 if ended else 0)
    assert requests.labels("cancelled")._value.get() == (0 if ended else 1)


def test_a_huge_model_name_is_not_sent_back_whole() -> None:
    proc = RequestProcessor(deps=_deps())
    proc.handle(_headers_msg({":path": "/v1/chat/completions", ":method": "POST"}))
    answer = _answer(proc.handle(_body_msg(orjson.dumps({"model": "m" * 100_000}))))
    assert answer.immediate_response.status.code == 404
    body = answer.immediate_response.body
    assert len(body) < 1024
    assert orjson.loads(body)["error"]["code"] == "model_not_found"
    assert b"(100000 characters)" in body
