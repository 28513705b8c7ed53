"""AWS Bedrock and Azure OpenAI backends through the real Envoy and our ext_proc, against our fakes.

The fake Bedrock verifies every request's SigV4 signature independently (403 on a mismatch) and answers in
Converse JSON or real event stream frames; the fake Azure (``aigw.upstream``) refuses requests without
``api-version`` or a credential header, as Azure does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from aigw.upstream import FakeUpstream, serve_in_thread
from tests.fakes.bedrock import OUTPUT_TOKENS, FakeBedrock, serve_bedrock_in_thread
from tests.fakes.sigv4_verifier import KnownKey
from tests.integration.extproc.bootstrap import gateway_bootstrap
from tests.integration.extproc.gatewayconfig import model_match
from tests.integration.extproc.harness import Gateway, running_extproc
from tests.realparts.envoy import running_envoy
from tests.realparts.ports import free_port

REGION = "eu-west-3"
KEYS = {
    "AKIDFIRST": KnownKey("first-secret", "first-token"),
    "AKIDSECOND": KnownKey("second-secret"),
}
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
BEDROCK_MODELS = [
    CLAUDE,
    "tool-model",
    "throttle-model",
    "bad-crc-model",
    "truncated-model",
    "stream-exception-model",
]


def _credentials(key: str) -> str:
    k = KEYS[key]
    token = f"aws_session_token = {k.session_token}\n" if k.session_token else ""
    return f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {k.secret}\n{token}"


def _config(creds: Path, wrong: Path, azure_key: Path, azure_token: Path) -> dict[str, Any]:
    def rule(route: str, models: list[str], backend: str) -> dict[str, Any]:
        return {
            "route": route,
            "matches": [model_match(m) for m in models],
            "backendRefs": [{"name": backend}],
        }

    aws = {"credentialFileName": str(creds), "region": REGION}
    return {
        "version": "v1",
        "rules": [
            rule("default/bedrock", BEDROCK_MODELS, "bedrock.default"),
            rule("default/bedrock-wrong", ["wrong-key-model"], "bedrock-wrong.default"),
            rule("default/azure", ["gpt-4o"], "azure-key.default"),
            rule("default/azure-entra", ["gpt-4o-entra"], "azure-token.default"),
        ],
        "backends": [
            {"name": "bedrock.default", "schema": {"name": "AWSBedrock"}, "auth": {"aws": aws}},
            {
                "name": "bedrock-wrong.default",
                "schema": {"name": "AWSBedrock"},
                "auth": {"aws": {**aws, "credentialFileName": str(wrong)}},
            },
            {
                "name": "azure-key.default",
                "schema": {"name": "AzureOpenAI", "version": "2024-10-21"},
                "auth": {"apiKey": {"filename": str(azure_key)}},
            },
            {
                "name": "azure-token.default",
                "schema": {"name": "AzureOpenAI", "version": "2025-01-01-preview"},
                "auth": {"azure": {"filename": str(azure_token)}},
            },
        ],
        "llmRequestCosts": [
            {"route": "default/bedrock", "metadataKey": "input", "type": "InputToken"},
            {"route": "default/bedrock", "metadataKey": "output", "type": "OutputToken"},
            {
                "route": "default/bedrock",
                "metadataKey": "weighted",
                "type": "CEL",
                "cel": "backend == 'bedrock.default' && model == '"
                + CLAUDE
                + "' ? input_tokens * 3 + output_tokens : 0",
            },
        ],
    }


class Providers:
    def __init__(self, gateway: Gateway, bedrock: FakeBedrock, azure: FakeUpstream, creds: Path) -> None:
        self.gateway, self.bedrock, self.azure, self.creds = gateway, bedrock, azure, creds


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Providers]:
    workdir = tmp_path_factory.mktemp("providers")
    creds, wrong = workdir / "credentials", workdir / "wrong-credentials"
    creds.write_text(_credentials("AKIDFIRST"))
    wrong.write_text("[default]\naws_access_key_id = AKIDFIRST\naws_secret_access_key = not-the-secret\n")
    (workdir / "azure-key").write_text("azure-resource-key")
    (workdir / "azure-token").write_text("entra-access-token")
    config_path = workdir / "filter-config.yaml"
    config = _config(creds, wrong, workdir / "azure-key", workdir / "azure-token")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    with contextlib.ExitStack() as stack:
        bedrock = stack.enter_context(serve_bedrock_in_thread(region=REGION, keys=KEYS))
        azure = stack.enter_context(serve_in_thread(name="azure"))
        ext = stack.enter_context(running_extproc(config_path=config_path, workdir=workdir))
        port = free_port()
        bootstrap = gateway_bootstrap(
            listen_port=port,
            ext_proc_port=ext.grpc_port,
            backends={
                "bedrock.default": bedrock.port,
                "bedrock-wrong.default": bedrock.port,
                "azure-key.default": azure.port,
                "azure-token.default": azure.port,
            },
        )
        envoy = stack.enter_context(running_envoy(bootstrap, workdir=workdir))
        gateway = Gateway(port=port, config_path=config_path, envoy=envoy, extproc=ext)
        yield Providers(gateway, bedrock, azure, creds)


def _sse_events(body: bytes) -> list[Any]:
    out: list[Any] = []
    for block in body.decode().split("\n\n"):
        if block:
            assert block.startswith("data: "), body
            data = block[6:]
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def _access_log_line(p: Providers, fragment: str, *, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while True:
        lines = [
            ln
            for ln in p.gateway.envoy.log_path.read_text().splitlines()
            if "[access]" in ln and fragment in ln
        ]
        if lines:
            return lines[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no access log line with {fragment!r}")
        time.sleep(0.1)


def test_bedrock_chat_is_translated_signed_and_answered_in_openai_shape(providers: Providers) -> None:
    r = providers.gateway.request(
        "/v1/chat/completions",
        json={
            "model": CLAUDE,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello Bedrock"},
            ],
            "max_tokens": 50,
        },
    )
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "application/json"
    answer = r.json()
    assert answer["object"] == "chat.completion" and answer["model"] == CLAUDE
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "echo: Hello Bedrock"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    inp = len("Be brief.") + len("Hello Bedrock")
    assert answer["usage"] == {
        "prompt_tokens": inp,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": inp + 7,
    }
    seen = providers.bedrock.received[-1]
    assert seen.refusal is None and seen.signed_by == "AKIDFIRST"
    assert seen.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert seen.host == f"bedrock-runtime.{REGION}.amazonaws.com"
    assert seen.body == {
        "messages": [{"role": "user", "content": [{"text": "Hello Bedrock"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50},
    }
    line = _access_log_line(providers, "/converse ")
    assert f'"input":{inp}' in line and f'"output":{OUTPUT_TOKENS}' in line, line
    assert f'"weighted":{inp * 3 + OUTPUT_TOKENS}' in line, line  # the CEL cost, evaluated at the end


def test_bedrock_tool_use_comes_back_as_tool_calls(providers: Providers) -> None:
    r = providers.gateway.chat(
        "tool-model", tools=[{"type": "function", "function": {"name": "get_weather"}}]
    )
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_fake",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert providers.bedrock.received[-1].body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


def test_bedrock_stream_becomes_openai_sse_with_usage_and_done(providers: Providers) -> None:
    r = providers.gateway.chat(CLAUDE, stream=True)
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "text/event-stream"
    events = _sse_events(r.body)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert text == "echo: hi"
    assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]][-1] == "stop"
    assert events[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 7, "total_tokens": 9}
    assert providers.bedrock.received[-1].path.endswith("/converse-stream")
    line = _access_log_line(providers, "/converse-stream ")
    assert '"input":2' in line and '"output":7' in line, line


@pytest.mark.parametrize(
    ("model", "error_type"),
    [
        ("bad-crc-model", "upstream_error"),
        ("truncated-model", "upstream_error"),
        ("stream-exception-model", "throttlingException"),
    ],
)
def test_a_broken_bedrock_stream_ends_with_an_error_event_not_a_hang(
    providers: Providers, model: str, error_type: str
) -> None:
    started = time.monotonic()
    r = providers.gateway.chat(model, stream=True, timeout=20)
    assert time.monotonic() - started < 15
    assert r.status == 200
    events = _sse_events(r.body)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["type"] == error_type, events


def test_bedrock_errors_become_openai_errors(providers: Providers) -> None:
    r = providers.gateway.chat("throttle-model")
    assert r.status == 429
    assert r.json() == {
        "error": {
            "message": "Too many requests, please wait before trying again.",
            "type": "ThrottlingException",
            "code": "429",
        }
    }


def test_a_wrong_signature_is_refused_by_the_fake_and_reported_as_openai_error(providers: Providers) -> None:
    r = providers.gateway.chat("wrong-key-model")
    assert r.status == 403
    assert r.json()["error"]["type"] == "InvalidSignatureException"
    assert providers.bedrock.received[-1].refusal is not None


def test_bedrock_refuses_what_it_cannot_serve_with_a_400(providers: Providers) -> None:
    r = providers.gateway.request("/v1/embeddings", json={"model": CLAUDE, "input": "x"})
    assert r.status == 400 and "only /v1/chat/completions" in r.json()["error"]["message"]
    r = providers.gateway.request(
        "/v1/chat/completions",
        json={
            "model": CLAUDE,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]}],
        },
    )
    assert r.status == 400 and "data URI" in r.json()["error"]["message"]


def test_rotated_aws_credentials_are_used_without_a_restart(providers: Providers) -> None:
    try:
        tmp = providers.creds.with_suffix(".tmp")
        tmp.write_text(_credentials("AKIDSECOND"))
        tmp.replace(providers.creds)
        deadline = time.monotonic() + 15
        while True:
            assert providers.gateway.chat(CLAUDE).status == 200
            if providers.bedrock.received[-1].signed_by == "AKIDSECOND":
                break
            assert time.monotonic() < deadline, "the ext_proc kept signing with the old credentials"
            time.sleep(0.1)
    finally:
        providers.creds.write_text(_credentials("AKIDFIRST"))


@pytest.mark.parametrize(
    ("path", "body", "suffix"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "chat/completions"),
        ("/v1/completions", {"prompt": "hi"}, "completions"),
        ("/v1/embeddings", {"input": "hi"}, "embeddings"),
    ],
)
@pytest.mark.parametrize(
    ("model", "version", "header"),
    [("gpt-4o", "2024-10-21", "api-key"), ("gpt-4o-entra", "2025-01-01-preview", "authorization")],
)
def test_azure_paths_api_version_and_credential_header_on_every_route(
    providers: Providers, path: str, body: dict[str, Any], suffix: str, model: str, version: str, header: str
) -> None:
    r = providers.gateway.request(path, json={"model": model, **body})
    assert r.status == 200, r.body
    assert r.headers["x-echo-path"] == f"/openai/deployments/{model}/{suffix}?api-version={version}"
    headers = r.json()["echo"]["headers"]
    expected = {"api-key": len("azure-resource-key"), "authorization": len("Bearer entra-access-token")}
    assert headers.get(header) == f"<{expected[header]} chars>"
    other = "authorization" if header == "api-key" else "api-key"
    assert other not in headers
