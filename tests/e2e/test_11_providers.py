"""Scenario 11: one AIGatewayRoute with an OpenAI, an AWS Bedrock and an Azure OpenAI backend, on the real
Envoy Gateway, answered by our fakes; the controller copies each backend's credentials into the Gateway's
auth Secret (projected where the ext_proc reads it), the fake Bedrock verifies every SigV4 signature, and the
costs (TotalToken and CEL) appear in the access log of the Envoy that Envoy Gateway runs."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Protocol

from api.objects import Obj
from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for
from tests.fakes.bedrock import OUTPUT_TOKENS, serve_bedrock_in_thread
from tests.fakes.sigv4_verifier import KnownKey

REGION = "eu-central-1"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
CEL = "backend.startsWith('bedrock') ? input_tokens * 3 + output_tokens : total_tokens"


def _envoy_proxy(name: str, ns: str, log: Path) -> Obj:
    fmt = (
        "[access] %REQ(:PATH)% %RESPONSE_CODE% model=%REQ(x-ai-eg-model)% "
        "cost=%DYNAMIC_METADATA(io.envoy.ai_gateway)%\n"
    )
    return {
        "apiVersion": objects.EG,
        "kind": "EnvoyProxy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "telemetry": {
                "accessLog": {
                    "settings": [
                        {
                            "format": {"type": "Text", "text": fmt},
                            "sinks": [{"type": "File", "file": {"path": str(log)}}],
                        }
                    ]
                }
            }
        },
    }


def bedrock_backend(ns: str, ip: str, port: int) -> Obj:
    backend = objects.eg_backend("bedrock", ns, port, ip=ip)
    backend["spec"]["endpoints"][0]["hostname"] = f"bedrock-runtime.{REGION}.amazonaws.com"
    return backend


class Upstream(Protocol):
    """A fake upstream's address."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


def providers_route(ns: str, gateway: str) -> Obj:
    """AIGatewayRoute ``mixed``: ``gpt-4o-mini`` -> openai, CLAUDE -> bedrock, ``gpt-4o`` -> azure."""
    return objects.ai_gateway_route(
        "mixed",
        ns,
        gateway,
        [
            objects.rule(model="gpt-4o-mini", backends=[("AIServiceBackend", "openai", 1)]),
            objects.rule(model=CLAUDE, backends=[("AIServiceBackend", "bedrock", 1)]),
            objects.rule(model="gpt-4o", backends=[("AIServiceBackend", "azure", 1)]),
        ],
    )


def provider_backends(
    ns: str, *, openai: Upstream, azure: Upstream, bedrock: Upstream, aws: str
) -> list[Obj]:
    """The three AIServiceBackends with their Envoy Gateway Backends, credential Secrets (OpenAI key
    ``sk-e2e-openai``, Azure key ``azure-e2e-key``, the AWS credentials file ``aws``) and
    BackendSecurityPolicies."""
    return [
        objects.eg_backend("openai", ns, openai.port, ip=openai.host),
        # the endpoint's hostname is the regional endpoint, as a real Bedrock Backend's FQDN is: our
        # host-rewrite filter makes Envoy send it as Host, which the signature covers (Envoy Gateway's
        # ext_proc filter ignores an :authority the ext_proc sets)
        bedrock_backend(ns, bedrock.host, bedrock.port),
        objects.eg_backend("azure", ns, azure.port, ip=azure.host),
        objects.secret("openai-key", ns, apiKey="sk-e2e-openai"),
        objects.secret("aws-creds", ns, credentials=aws),
        objects.secret("azure-key", ns, apiKey="azure-e2e-key"),
        objects.security_policy(
            "openai", ns, {"type": "APIKey", "apiKey": {"secretRef": {"name": "openai-key"}}}
        ),
        objects.security_policy(
            "bedrock",
            ns,
            {
                "type": "AWSCredentials",
                "awsCredentials": {"region": REGION, "credentialsFile": {"secretRef": {"name": "aws-creds"}}},
            },
        ),
        objects.security_policy(
            "azure", ns, {"type": "APIKey", "apiKey": {"secretRef": {"name": "azure-key"}}}
        ),
        objects.ai_service_backend("openai", ns, "openai", policy="openai"),
        objects.ai_service_backend("bedrock", ns, "bedrock", schema={"name": "AWSBedrock"}, policy="bedrock"),
        objects.ai_service_backend(
            "azure", ns, "azure", schema={"name": "AzureOpenAI", "version": "2024-10-21"}, policy="azure"
        ),
    ]


def test_openai_bedrock_and_azure_backends_on_one_route(scn: Scenario, upstreams: Upstreams) -> None:
    ns = scn.ns
    log = Path(tempfile.mkdtemp(prefix="aigw-e2e-access-")) / "access.log"
    openai = upstreams.start("openai", "127.0.0.111")
    azure = upstreams.start("azure", "127.0.0.112")
    with serve_bedrock_in_thread(
        region=REGION, keys={"AKIDE2E": KnownKey("e2e-secret")}, host="127.0.0.113"
    ) as bedrock:
        gateway = objects.gateway(scn.gateway, ns, scn.port)
        gateway["spec"]["infrastructure"] = {
            "parametersRef": {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": "access-log"}
        }
        route = providers_route(ns, scn.gateway)
        route["spec"]["llmRequestCosts"] = [
            {"metadataKey": "total", "type": "TotalToken"},
            {"metadataKey": "weighted", "type": "CEL", "cel": CEL},
        ]
        aws = "[default]\naws_access_key_id = AKIDE2E\naws_secret_access_key = e2e-secret\n"
        scn.apply(
            _envoy_proxy("access-log", ns, log),
            gateway,
            *provider_backends(ns, openai=openai, azure=azure, bedrock=bedrock, aws=aws),
            route,
        )
        r = scn.wait_ok("gpt-4o-mini", upstream="openai")
        assert r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer sk-e2e-openai')} chars>"

        r = scn.wait_ok(CLAUDE, timeout=60)
        assert r.json()["object"] == "chat.completion" and r.json()["model"] == CLAUDE
        seen = bedrock.received[-1]
        assert seen.refusal is None and seen.signed_by == "AKIDE2E", seen.refusal
        assert seen.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        bedrock_usage = r.json()["usage"]
        assert bedrock_usage["completion_tokens"] == OUTPUT_TOKENS

        r = scn.wait_ok("gpt-4o", upstream="azure", timeout=60)
        assert (
            r.headers["x-echo-path"] == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        )
        assert r.json()["echo"]["headers"]["api-key"] == f"<{len('azure-e2e-key')} chars>"
        azure_total = r.json()["usage"]["total_tokens"]

        def logged(pattern: str) -> re.Match[str] | None:
            text = log.read_text() if log.exists() else ""
            return re.search(pattern, text)

        m = wait_for(
            lambda: logged(r"\[access\] /model/\S+/converse 200 model=\S+ cost=(\S+)"),
            "a Bedrock access log line with costs",
            30,
        )
        weighted = bedrock_usage["prompt_tokens"] * 3 + bedrock_usage["completion_tokens"]
        assert f'"weighted":{weighted}' in m.group(
            1
        ) and f'"total":{bedrock_usage["total_tokens"]}' in m.group(1), m.group(0)
        m = wait_for(
            lambda: logged(r"\[access\] /openai/deployments/gpt-4o/\S+ 200 model=gpt-4o cost=(\S+)"),
            "an Azure access log line with costs",
            30,
        )
        assert f'"weighted":{azure_total}' in m.group(1), m.group(0)
        assert chat(scn.port, "gpt-4o-mini").status == 200
