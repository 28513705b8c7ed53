"""One AIGatewayRoute with an OpenAI, an AWS Bedrock and an Azure OpenAI backend, through ``aigw run`` (the
controller's builders, the real Envoy, our ext_proc), answered by our fakes, with the costs (CEL included)
in Envoy's access log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from aigw.upstream import FakeUpstream, serve_in_thread
from tests.fakes.bedrock import OUTPUT_TOKENS, FakeBedrock, serve_bedrock_in_thread
from tests.fakes.sigv4_verifier import KnownKey
from tests.integration.standalone.harness import aigw_run

pytestmark = pytest.mark.envoy

REGION = "us-west-2"
_ROUTE = """\
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {{name: mixed}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: local}}]
  schema: {{name: OpenAI}}
  rules:
  - matches: [{{headers: [{{name: x-ai-eg-model, value: gpt-4o-mini}}]}}]
    backendRefs: [{{name: openai}}]
  - matches: [{{headers: [{{name: x-ai-eg-model, value: "anthropic.claude-3-haiku-20240307-v1:0"}}]}}]
    backendRefs: [{{name: bedrock}}]
  - matches: [{{headers: [{{name: x-ai-eg-model, value: gpt-4o}}]}}]
    backendRefs: [{{name: azure}}]
  llmRequestCosts:
  - {{metadataKey: total, type: TotalToken}}
  - metadataKey: weighted
    type: CEL
    cel: "backend == 'bedrock.default' ? input_tokens * 3 + output_tokens : total_tokens"
"""
_BACKEND = """\
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata: {{name: {name}}}
spec:
  schema: {schema}
  backendRef: {{group: gateway.envoyproxy.io, kind: Backend, name: {name}}}
  backendSecurityPolicyRef: {{group: aigateway.envoyproxy.io, kind: BackendSecurityPolicy, name: {name}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: {name}}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: {port}}}}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata: {{name: {name}}}
spec: {policy}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}}}
stringData: {secret}
"""


@pytest.fixture
def fakes() -> Iterator[tuple[FakeUpstream, FakeBedrock, FakeUpstream]]:
    with ExitStack() as stack:
        openai = stack.enter_context(serve_in_thread(name="openai"))
        bedrock = stack.enter_context(
            serve_bedrock_in_thread(region=REGION, keys={"AKIDSTANDALONE": KnownKey("standalone-secret")})
        )
        azure = stack.enter_context(serve_in_thread(name="azure"))
        yield openai, bedrock, azure


def _mixed_config(openai: FakeUpstream, bedrock: FakeBedrock, azure: FakeUpstream) -> str:
    api_key = "{type: APIKey, apiKey: {secretRef: {name: %s}}}"
    config = _ROUTE.format() + "".join(
        [
            _BACKEND.format(
                name="openai",
                schema="{name: OpenAI}",
                port=openai.port,
                policy=api_key % "openai",
                secret="{apiKey: sk-openai}",
            ),
            _BACKEND.format(
                name="bedrock",
                schema="{name: AWSBedrock}",
                port=bedrock.port,
                policy="{type: AWSCredentials, awsCredentials: {region: "
                + REGION
                + ", credentialsFile: {secretRef: {name: bedrock}}}}",
                secret='{credentials: "[default]\\naws_access_key_id = AKIDSTANDALONE\\n'
                'aws_secret_access_key = standalone-secret\\n"}',
            ),
            _BACKEND.format(
                name="azure",
                schema="{name: AzureOpenAI, version: '2024-10-21'}",
                port=azure.port,
                policy=api_key % "azure",
                secret="{apiKey: azure-resource-key}",
            ),
        ]
    )
    return config


def test_openai_bedrock_and_azure_on_one_route_with_costs_in_the_access_log(
    fakes: tuple[FakeUpstream, FakeBedrock, FakeUpstream], tmp_path: Path
) -> None:
    openai, bedrock, azure = fakes
    path = tmp_path / "mixed.yaml"
    path.write_text(_mixed_config(openai, bedrock, azure))
    with aigw_run([path], workdir=tmp_path / "work", extra_args=["--no-demo-upstreams"]) as run:
        r = run.chat("gpt-4o-mini")
        assert r.status == 200, (r.body, run.output()[-3000:])
        assert (
            r.upstream == "openai"
            and r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer sk-openai')} chars>"
        )

        claude = "anthropic.claude-3-haiku-20240307-v1:0"
        r = run.chat(claude)
        assert r.status == 200, (r.body, run.output()[-3000:])
        assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
        seen = bedrock.received[-1]
        assert seen.refusal is None and seen.signed_by == "AKIDSTANDALONE", seen.refusal
        assert seen.host == f"bedrock-runtime.{REGION}.amazonaws.com"

        r = run.chat("gpt-4o")
        assert r.status == 200, r.body
        assert (
            r.headers["x-echo-path"] == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        )
        assert r.json()["echo"]["headers"]["api-key"] == f"<{len('azure-resource-key')} chars>"

        line = run.wait_for(rf"POST /model/\S+/converse -> 200 .*model={re.escape(claude)} .*cost=(\S+)")
        inp = 2  # "hi"
        assert f'"weighted":{inp * 3 + OUTPUT_TOKENS}' in line.group(
            1
        ) and f'"total":{inp + 7}' in line.group(1)
        line = run.wait_for(r"POST /openai/deployments/gpt-4o/\S+ -> 200 .*model=gpt-4o .*cost=(\S+)")
        total = r.json()["usage"]["total_tokens"]
        assert f'"weighted":{total}' in line.group(1) and f'"total":{total}' in line.group(1)


def test_a_credentials_file_the_ext_proc_refuses_is_not_claimed_to_serve(
    fakes: tuple[FakeUpstream, FakeBedrock, FakeUpstream], tmp_path: Path
) -> None:
    # aigw run checks header keys before handing them over; anything else the ext_proc refuses at load (here
    # an AWS credentials file without its secret) is learned from its metrics, and the good files go back
    openai, bedrock, azure = fakes
    path = tmp_path / "mixed.yaml"
    good = _mixed_config(openai, bedrock, azure)
    path.write_text(good)
    claude = "anthropic.claude-3-haiku-20240307-v1:0"
    with aigw_run([path], workdir=tmp_path / "work", extra_args=["--no-demo-upstreams"]) as run:
        assert run.chat(claude).status == 200, run.output()[-3000:]
        since = run.mark()
        path.write_text(good.replace("aws_secret_access_key = standalone-secret", "region = x"))
        run.wait_for(r"the ext_proc refused config \w+", since=since, timeout=30)
        run.wait_for(r"the previous config keeps serving", since=since, timeout=5)
        after = "\n".join(run.lines[since:])
        assert not re.search(r"config \w+ is serving", after), after
        r = run.chat(claude)
        assert r.status == 200, r.body
        assert bedrock.received[-1].signed_by == "AKIDSTANDALONE"
        credentials = [f.read_text() for f in (run.workdir / "auth").iterdir() if "bedrock" in f.name]
        assert credentials and all("standalone-secret" in c for c in credentials)

        since = run.mark()
        path.write_text(good.replace("gpt-4o-mini", "gpt-4o-mini-renamed"))
        run.wait_for(r"config \w+ is serving", since=since, timeout=30)
        assert run.chat("gpt-4o-mini-renamed").status == 200
