"""Scenario 16: HTTPRoutes that someone else attaches to our Gateway and that outrank ours get no credential.

The AIGatewayRoute of scenario 11 (OpenAI, Bedrock with a session token, Azure), and two hand-written
HTTPRoutes on the same Gateway, each matching what the ext_proc sets for each of our backends
(``x-ai-eg-selected-backend: <backend>.<ns>``) plus one more header, so Gateway API precedence (more header
matches) puts them ahead of ours for a request that carries that header:

* ``outranker`` (``x-team: a``) forwards to the ``theirs`` upstream: it gets the request, never the
  credential (the ext_proc hands it over as metadata, and only our routes copy it into headers);
* ``leaker`` (``x-team: b``) also adds ``%DYNAMIC_METADATA(<credential namespace>:authorization)%`` as a
  header (Envoy Gateway copies the value verbatim, Envoy evaluates it): the extension server disables it,
  so it answers 403 and forwards nothing.

Our own routes still deliver each credential: the fake Bedrock verifies the SigV4 signature and the session
token, the fakes behind OpenAI and Azure see ``authorization`` and ``api-key``.
"""

from __future__ import annotations

from api import headers as hdr
from api.objects import Obj
from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.harness import Scenario, Upstreams
from tests.e2e.kube import wait_for
from tests.e2e.test_11_providers import CLAUDE, REGION, provider_backends, providers_route
from tests.fakes.bedrock import serve_bedrock_in_thread
from tests.fakes.sigv4_verifier import KnownKey
from tests.realparts.httpclient import Reply

CREDENTIALS = {"authorization", "api-key", "x-amz-security-token"}
BACKENDS = ("openai", "bedrock", "azure")
LEAK = "x-gateway-leak"
"""A header the fake upstream records verbatim."""


def _outranking_route(name: str, ns: str, gateway: str, *, team: str, port: int, leak: bool = False) -> Obj:
    route = objects.http_route(name, ns, gateway, "theirs", port)
    rule = route["spec"]["rules"][0]
    rule["matches"] = [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"type": "Exact", "name": hdr.SELECTED_BACKEND_HEADER, "value": f"{backend}.{ns}"},
                {"type": "Exact", "name": "x-team", "value": team},
            ],
        }
        for backend in BACKENDS
    ]
    if leak:
        value = f"%DYNAMIC_METADATA({hdr.CREDENTIAL_METADATA_NAMESPACE}:authorization)%"
        rule["filters"] = [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"add": [{"name": LEAK, "value": value}]},
            }
        ]
    return route


def test_routes_that_outrank_ours_get_no_credential(scn: Scenario, upstreams: Upstreams) -> None:
    ns = scn.ns
    openai = upstreams.start("openai", "127.0.0.121")
    azure = upstreams.start("azure", "127.0.0.122")
    theirs = upstreams.start("theirs", "127.0.0.124")
    key = KnownKey("e2e-secret", session_token="e2e-session-token")
    with serve_bedrock_in_thread(region=REGION, keys={"AKIDE2E": key}, host="127.0.0.123") as bedrock:
        aws = (
            "[default]\naws_access_key_id = AKIDE2E\naws_secret_access_key = e2e-secret\n"
            "aws_session_token = e2e-session-token\n"
        )
        scn.apply(
            *provider_backends(ns, openai=openai, azure=azure, bedrock=bedrock, aws=aws),
            providers_route(ns, scn.gateway),
            objects.eg_backend("theirs", ns, theirs.port, ip=theirs.host),
            _outranking_route("outranker", ns, scn.gateway, team="a", port=theirs.port),
            _outranking_route("leaker", ns, scn.gateway, team="b", port=theirs.port, leak=True),
        )
        # ours: each credential arrives
        r = scn.wait_ok("gpt-4o-mini", upstream="openai")
        assert r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer sk-e2e-openai')} chars>"
        scn.wait_ok(CLAUDE, timeout=60)
        seen = bedrock.received[-1]
        assert seen.refusal is None and seen.signed_by == "AKIDE2E", seen.refusal  # token checked too
        r = scn.wait_ok("gpt-4o", upstream="azure", timeout=60)
        assert r.json()["echo"]["headers"]["api-key"] == f"<{len('azure-e2e-key')} chars>"

        # the outranking route gets the request for each backend, without the credential
        r = scn.wait_ok("gpt-4o-mini", upstream="theirs", headers={"x-team": "a"}, timeout=60)
        assert not CREDENTIALS & set(r.json()["echo"]["headers"]), r.json()["echo"]
        assert r.json()["echo"]["headers"][hdr.SELECTED_BACKEND_HEADER] == f"openai.{ns}"
        r = chat(scn.port, CLAUDE, headers={"x-team": "a"})
        assert r.upstream == "theirs", (r.status, r.headers, r.body)  # its 404 for Bedrock's path
        last = theirs.received[-1]
        assert last.path.startswith("/model/") and not CREDENTIALS & set(last.headers), last
        r = chat(scn.port, "gpt-4o", headers={"x-team": "a"})
        assert r.upstream == "theirs" and r.status == 401, (r.status, r.headers, r.body)  # no Azure key
        assert r.headers["x-echo-api-key-present"] == r.headers["x-echo-authorization-present"] == "false"

        # the route that copies the credential metadata itself is disabled
        def refused() -> Reply | None:
            reply = chat(scn.port, "gpt-4o-mini", headers={"x-team": "b"})
            return reply if reply.status == 403 else None

        r = wait_for(refused, "the leaking route disabled (403)", 60)
        assert "sk-e2e-openai" not in r.body.decode(errors="replace")
        assert not [seen for seen in theirs.received if LEAK in seen.headers]
        assert chat(scn.port, "gpt-4o-mini").upstream == "openai"  # ours, unaffected
