"""The request path through the real Envoy: routing, header spoofing, 400/404/413, large prompts,
/v1/models."""

from __future__ import annotations

import gzip

import pytest

from tests.integration.extproc.bootstrap import BUFFER_LIMIT_BYTES
from tests.integration.extproc.harness import Gateway

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]


def assert_openai_error(body: object, *, code: str | None = None) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    if code is not None:
        assert err["code"] == code


def test_model_routes_to_its_backend_with_routing_headers_set(gateway: Gateway) -> None:
    r = gateway.chat("gpt-a")
    assert r.status == 200, r.body
    assert r.headers["x-upstream-name"] == "a"
    echo = r.json()["echo"]
    assert echo["model"] == "gpt-a"
    assert echo["headers"]["x-ai-eg-model"] == "gpt-a"
    assert echo["headers"]["x-ai-eg-selected-backend"] == "openai-a.default"
    assert "x-ai-eg-original-dst" not in echo["headers"]


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/embeddings"])
def test_completions_and_embeddings_route_by_the_same_model_field(gateway: Gateway, path: str) -> None:
    r = gateway.request(
        path, json={"model": "gpt-team", "input": "x", "prompt": "x"}, headers={"x-team": "blue"}
    )
    assert r.status == 200, r.body
    assert r.headers["x-upstream-name"] == "b"
    assert r.headers["x-echo-path"] == path


def test_a_match_needs_all_its_headers(gateway: Gateway) -> None:
    assert gateway.chat("gpt-team", headers={"x-team": "blue"}).headers["x-upstream-name"] == "b"
    for headers in ({}, {"x-team": "red"}):
        r = gateway.chat("gpt-team", headers=headers)
        assert r.status == 404
        assert_openai_error(r.json(), code="model_not_found")


SPOOFS = {
    "x-ai-eg-selected-backend": "openai-b.default",
    "x-gateway-destination-endpoint": "127.0.0.1:1",
}


def test_client_routing_headers_never_choose_the_upstream(gateway: Gateway) -> None:
    b_port = gateway.upstreams["b"].port
    spoof = {**SPOOFS, "x-ai-eg-original-dst": f"127.0.0.1:{b_port}"}
    for _ in range(10):
        r = gateway.chat("gpt-a", headers=spoof)
        assert r.status == 200
        assert r.headers["x-upstream-name"] == "a"
        seen = r.json()["echo"]["headers"]
        assert seen["x-ai-eg-selected-backend"] == "openai-a.default"
        assert "x-ai-eg-original-dst" not in seen
        assert "x-gateway-destination-endpoint" not in seen
        # a pool request: the original-dst header is ours, never the client's (b is not a pool endpoint)
        r = gateway.chat("mistral", headers=spoof)
        assert r.status == 200
        assert r.headers["x-upstream-name"] in {"p1", "p2", "p3"}
        seen = r.json()["echo"]["headers"]
        assert seen["x-ai-eg-original-dst"] != f"127.0.0.1:{b_port}"
        assert "x-gateway-destination-endpoint" not in seen


def test_a_client_model_header_does_not_pick_the_rule(gateway: Gateway) -> None:
    r = gateway.chat("unknown-model", headers={"x-ai-eg-model": "gpt-a"})
    assert r.status == 404
    assert_openai_error(r.json(), code="model_not_found")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"gpt-a"',
        b"{}",
        b'{"model": 7}',
        b'{"model": null}',
        b'{"model": ""}',
        b"\xff\xfe",
    ],
)
def test_unusable_bodies_get_400_openai_errors(gateway: Gateway, body: bytes) -> None:
    r = gateway.request("/v1/chat/completions", body=body)
    assert r.status == 400, r.body
    assert r.headers["content-type"] == "application/json"
    assert_openai_error(r.json(), code="invalid_body")


def test_bodyless_model_requests_get_400(gateway: Gateway) -> None:
    r = gateway.request("/v1/chat/completions", method="POST")
    assert r.status == 400, r.body
    assert_openai_error(r.json(), code="missing_body")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET, HEAD"),
        ("DELETE", "/v1/models", "GET, HEAD"),
    ],
)
def test_a_wrong_method_gets_405_with_allow(gateway: Gateway, method: str, path: str, allow: str) -> None:
    body = b'{"model": "gpt-a"}' if method in {"POST", "PUT"} else None
    r = gateway.request(path, method=method, body=body)
    assert r.status == 405, r.body
    assert r.headers["allow"] == allow
    assert r.headers["content-type"] == "application/json"
    assert_openai_error(r.json(), code="method_not_allowed")
    assert "x-upstream-name" not in r.headers


def test_models_answers_head_without_a_body(gateway: Gateway) -> None:
    r = gateway.request("/v1/models", method="HEAD")
    assert r.status == 200
    assert r.body == b""


def test_unknown_model_gets_404_not_a_5xx(gateway: Gateway) -> None:
    r = gateway.chat("no-such-model")
    assert r.status == 404
    assert_openai_error(r.json(), code="model_not_found")


def test_pool_model_without_inference_model_gets_404_not_a_5xx(gateway: Gateway) -> None:
    r = gateway.chat("ghost")
    assert r.status == 404
    assert_openai_error(r.json(), code="model_not_found")
    assert "ghost" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/v2/chat", "/", "/v1/chat/completions/extra", "/v1/responses"])
def test_unknown_paths_get_404_json(gateway: Gateway, path: str) -> None:
    r = gateway.request(path, json={"model": "gpt-a"})
    assert r.status == 404
    assert_openai_error(r.json(), code="unknown_path")


def test_a_body_over_envoys_buffer_limit_gets_413(gateway: Gateway) -> None:
    before = gateway.extproc.metric("aigw_extproc_requests_total", outcome="bad_request")
    prompt = "x" * (BUFFER_LIMIT_BYTES + 1024)
    r = gateway.chat("gpt-a", messages=[{"role": "user", "content": prompt}])
    assert r.status == 413
    assert r.headers["content-type"] == "application/json"
    assert_openai_error(r.json(), code="request_too_large")
    assert r.json()["error"]["type"] == "invalid_request_error"
    gateway.extproc.wait_for_metric(
        "aigw_extproc_requests_total",
        before + 1,
        within=5,
        what="the 413 was not counted as a bad request",
        outcome="bad_request",
    )


def test_a_5mb_prompt_reaches_the_upstream_whole(gateway: Gateway) -> None:
    prompt = "lorem ipsum " * (5_000_000 // 12)
    r = gateway.chat("llama", messages=[{"role": "user", "content": prompt}])
    assert r.status == 200, r.body[:300]
    assert int(r.headers["x-echo-body-bytes"]) > 5_000_000
    # the model was rewritten, so the body was re-serialized: content-length must match what arrived
    assert r.headers["x-echo-content-length"] == r.headers["x-echo-body-bytes"]
    assert r.headers["x-echo-model"] in {"llama-base", "llama-lora"}


def test_models_lists_rule_and_pool_models_in_openai_shape(gateway: Gateway) -> None:
    r = gateway.request("/v1/models")
    assert r.status == 200
    doc = r.json()
    assert doc["object"] == "list"
    ids = [m["id"] for m in doc["data"]]
    assert {"gpt-a", "gpt-split", "gpt-team", "llama", "mistral"} <= set(ids)
    assert "ghost" not in ids  # routed to the pool, which has no InferenceModel of that name: 404
    assert len(ids) == len(set(ids))
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in doc["data"])
    assert "x-upstream-name" not in r.headers  # answered by the ext_proc, no upstream involved


def test_one_model_is_retrieved_as_the_openai_sdk_asks_for_it(gateway: Gateway) -> None:
    # client.models.retrieve("gpt-a") is GET /v1/models/gpt-a
    listed = {m["id"]: m for m in gateway.request("/v1/models").json()["data"]}
    r = gateway.request("/v1/models/gpt-a")
    assert r.status == 200, r.body
    assert r.json() == listed["gpt-a"]
    assert "x-upstream-name" not in r.headers
    for unknown in ("/v1/models/ghost", "/v1/models/", "/v1/models/gpt-a/extra"):
        missing = gateway.request(unknown)
        assert missing.status == 404, (unknown, missing.body)
        assert missing.json()["error"]["code"] == "model_not_found", unknown
    assert gateway.request("/v1/models/gpt-a", body=b"{}").status == 405


def test_a_gzip_body_gets_415_naming_the_encoding_not_a_utf8_error(gateway: Gateway) -> None:
    body = gzip.compress(b'{"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]}')
    r = gateway.request("/v1/chat/completions", body=body, headers={"content-encoding": "gzip"})
    assert r.status == 415, r.body
    assert r.headers["accept-encoding"] == "identity"
    assert_openai_error(r.json(), code="unsupported_content_encoding")
    assert "gzip" in r.json()["error"]["message"]
    assert "x-upstream-name" not in r.headers
