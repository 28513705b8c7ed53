"""Credential rotation on the real API server, against our fake token endpoints on loopback
(``tests/fakes/token_endpoints.py``): AWS (OIDC client credentials, then STS AssumeRoleWithWebIdentity through
botocore) and Azure (the Microsoft identity platform's client-credentials flow).

The temporary credentials land in ``ai-eg-bsp-<policy>``, then in the Gateway's auth Secret and its filter
config; they are renewed before they expire; a failed refresh keeps them, and ``kubectl describe`` shows the
provider's error in the ``CredentialsRotated`` condition and a Warning Event.
"""

from __future__ import annotations

import base64
import configparser
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from kubernetes_asyncio import client

from api.objects import Obj
from controller.gateway import kinds
from controller.rotation.providers import Endpoints, session_name
from controller.runtime import SECRETS
from controller.translate import extproc_name
from tests.fakes.token_endpoints import FakeTokenEndpoints
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml, running_aigw
from tests.integration.controller.manifests import backend, docs, route, service
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer

pytestmark = pytest.mark.timeout(180)

CLIENT_SECRET = "gw-client-secret-0123456789"
ROLE = "arn:aws:iam::123456789012:role/bedrock-invoke"


@pytest.fixture
async def tokens() -> AsyncIterator[FakeTokenEndpoints]:
    fake = FakeTokenEndpoints(clients={"gw-client": CLIENT_SECRET})
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def aigw(
    control_plane: ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    dns_server: DnsServer,
    tokens: FakeTokenEndpoints,
) -> AsyncIterator[Aigw]:
    endpoints = Endpoints(sts_endpoint=tokens.sts_endpoint, azure_authority=tokens.azure_authority)
    async with running_aigw(
        control_plane, api_client, namespace, dns_server, cluster_wide=False, token_endpoints=endpoints
    ) as h:
        yield h


def oidc_policy(name: str, issuer: str, role: str = ROLE) -> str:
    return json.dumps({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "BackendSecurityPolicy",
        "metadata": {"name": name},
        "spec": {"type": "AWSCredentials", "awsCredentials": {
            "region": "us-east-1",
            "oidcExchangeToken": {
                "oidc": {"provider": {"issuer": issuer}, "clientID": "gw-client",
                         "clientSecret": {"name": "oidc-client"}},
                "awsRoleArn": role,
            },
        }},
    })  # fmt: skip


def azure_policy(name: str) -> str:
    return json.dumps({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "BackendSecurityPolicy",
        "metadata": {"name": name},
        "spec": {"type": "AzureCredentials", "azureCredentials": {
            "clientID": "gw-client", "tenantID": "tenant-1", "clientSecretRef": {"name": "azure-client"}}},
    })  # fmt: skip


def client_secret(name: str, value: str) -> str:
    """A Secret holding ``value`` under ``client-secret``, as ``data`` (a server-side apply of a changed
    ``stringData`` does not change a Secret's data)."""
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
           "data": {"client-secret": base64.b64encode(value.encode()).decode()}}  # fmt: skip
    return json.dumps(doc)


def data(obj: Obj | None, key: str) -> str:
    assert obj is not None
    return base64.b64decode(obj["data"][key]).decode()


def access_key(ini: str) -> str:
    parser = configparser.ConfigParser()
    parser.read_string(ini)
    return parser["default"]["aws_access_key_id"]


async def test_aws_oidc_credentials_are_issued_rotated_before_expiry_and_kept_on_failure(
    aigw: Aigw, tokens: FakeTokenEndpoints
) -> None:
    ns = aigw.ns
    tokens.lifetime = timedelta(seconds=315)  # the refresh is due 5 minutes before expiry: 15 s after issue
    await aigw.apply(docs(
        gateway_yaml("gw"), service("svc"),
        backend("bedrock", service="svc", schema="AWSBedrock", bsp="p-aws"), route("r", "gw", "bedrock"),
        client_secret("oidc-client", CLIENT_SECRET), oidc_policy("p-aws", tokens.issuer),
    ))  # fmt: skip
    cond = await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-aws", "CredentialsRotated", "True", "Rotated", within=60
    )
    assert f"Secret {ns}/ai-eg-bsp-p-aws" in cond["message"]
    first = tokens.sts_calls[0]
    assert (first.role_arn, first.session_name) == (ROLE, session_name(ns, "p-aws"))
    ini = data(await aigw.get(SECRETS, "ai-eg-bsp-p-aws"), "credentials")
    assert access_key(ini) == first.access_key_id
    assert f"aws_session_token = {tokens.keys[first.access_key_id].session_token}" in ini
    # the Gateway's ext_proc reads them: config and auth Secret
    path = f"/etc/ai-gateway/auth/{ns}.ai-eg-bsp-p-aws.credentials"
    await aigw.config_when("gw", lambda c: c.backends[0].auth.aws.credential_file_name == path)  # type: ignore[union-attr]

    def issued_since(index: int) -> set[str]:
        """The keys STS issued from the ``index``-th successful call on (later rotations may have come)."""
        return {c.access_key_id for c in tokens.sts_calls if c.access_key_id}.difference(
            c.access_key_id for c in [c for c in tokens.sts_calls if c.access_key_id][:index]
        )

    async def in_auth_secret(since: int) -> bool:
        auth = await aigw.get(SECRETS, extproc_name("gw"))
        return auth is not None and access_key(
            data(auth, f"{ns}.ai-eg-bsp-p-aws.credentials")
        ) in issued_since(since)

    await eventually(lambda: in_auth_secret(0), within=30)
    # the client secret itself never reaches the Gateway's auth Secret
    auth = await aigw.get(SECRETS, extproc_name("gw"))
    assert auth is not None and not any("oidc-client" in k for k in auth["data"])

    # rotation before expiry: new credentials about 15 s later, followed by the Gateway
    async def rotated() -> bool:
        held = access_key(data(await aigw.get(SECRETS, "ai-eg-bsp-p-aws"), "credentials"))
        return held in issued_since(1)

    await eventually(rotated, within=60, interval=0.5)
    second = [c for c in tokens.sts_calls if c.access_key_id][1]
    assert second.at - first.at >= 12, "refreshed long before the 5-minute window"
    await eventually(lambda: in_auth_secret(1), within=30)

    # a failed refresh (a new role the provider refuses) keeps the credentials, and says why
    tokens.lifetime = timedelta(hours=1)
    tokens.fail_sts = ("InvalidIdentityToken", "Incorrect token audience")
    failed_before = len([c for c in tokens.sts_calls if c.access_key_id is None])
    await aigw.apply(oidc_policy("p-aws", tokens.issuer, role=ROLE + "-v2"))
    cond = await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-aws", "CredentialsRotated", "False", "RotationFailed", within=30
    )
    assert "STS AssumeRoleWithWebIdentity: InvalidIdentityToken: Incorrect token audience" in cond["message"]
    kept = access_key(data(await aigw.get(SECRETS, "ai-eg-bsp-p-aws"), "credentials"))
    assert kept in tokens.keys and kept == [c for c in tokens.sts_calls if c.access_key_id][-1].access_key_id
    assert "stay in use until they expire" in cond["message"]

    async def described() -> str:
        out = await aigw.kubectl(
            "-n", ns, "describe", "backendsecuritypolicies.aigateway.envoyproxy.io", "p-aws"
        )
        status, events = out.split("Events:", 1)
        assert re.search(r"Reason:\s+RotationFailed\n", status), out
        assert "InvalidIdentityToken: Incorrect token audience" in status, out
        assert re.search(r"Warning\s+RotationFailed\s", events), out
        assert CLIENT_SECRET not in out
        return out

    await eventually(described, within=20)
    # retried with backoff (2 s, 4 s, ...), not in a tight loop
    await eventually(lambda: _count_async(tokens, failed_before), within=30)
    assert _count(tokens, failed_before) <= 5
    # the provider recovers: the next retry issues credentials for the new role
    tokens.fail_sts = None
    await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-aws", "CredentialsRotated", "True", "Rotated", within=60
    )
    latest = [c for c in tokens.sts_calls if c.access_key_id][-1]
    assert latest.role_arn == ROLE + "-v2"
    assert access_key(data(await aigw.get(SECRETS, "ai-eg-bsp-p-aws"), "credentials")) == latest.access_key_id


async def _count_async(tokens: FakeTokenEndpoints, before: int) -> bool:
    return _count(tokens, before) >= 2


def _count(tokens: FakeTokenEndpoints, before: int) -> int:
    return len([c for c in tokens.sts_calls if c.access_key_id is None]) - before


async def test_azure_access_token_is_issued_and_a_wrong_client_secret_keeps_the_old_one(
    aigw: Aigw, tokens: FakeTokenEndpoints
) -> None:
    ns = aigw.ns
    await aigw.apply(docs(
        gateway_yaml("gw"), service("svc"), backend("azure", service="svc", schema="AzureOpenAI", bsp="p-az"),
        route("r", "gw", "azure"), client_secret("azure-client", CLIENT_SECRET),
        azure_policy("p-az"),
    ))  # fmt: skip
    await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-az", "CredentialsRotated", "True", "Rotated", within=60
    )
    token = data(await aigw.get(SECRETS, "ai-eg-bsp-p-az"), "azureAccessToken")
    assert token in tokens.azure_tokens
    [call] = tokens.azure_calls
    assert (call.tenant, call.client_id) == ("tenant-1", "gw-client")
    path = f"/etc/ai-gateway/auth/{ns}.ai-eg-bsp-p-az.azureAccessToken"
    await aigw.config_when("gw", lambda c: c.backends[0].auth.azure.filename == path)  # type: ignore[union-attr]
    await aigw.wait_condition(kinds.BACKENDSECURITYPOLICIES, "p-az", "ResolvedRefs", "True", within=30)

    # a wrong client secret: refused by the provider, the token in use stays
    start = time.monotonic()
    await aigw.apply(client_secret("azure-client", "wrong-secret-value"))
    cond = await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-az", "CredentialsRotated", "False", "RotationFailed", within=30
    )
    assert "answered 401: invalid_client: AADSTS7000215: Invalid client secret provided." in cond["message"]
    assert "wrong-secret-value" not in json.dumps(await aigw.get(kinds.BACKENDSECURITYPOLICIES, "p-az"))
    assert data(await aigw.get(SECRETS, "ai-eg-bsp-p-az"), "azureAccessToken") == token
    # the client secret rotated at the provider and in the Secret: a new token at once (a changed secret is
    # tried without waiting for the backoff)
    tokens.clients["gw-client"] = "next-client-secret-value"
    await aigw.apply(client_secret("azure-client", "next-client-secret-value"))
    await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p-az", "CredentialsRotated", "True", "Rotated", within=60
    )
    new = data(await aigw.get(SECRETS, "ai-eg-bsp-p-az"), "azureAccessToken")
    assert new != token and new in tokens.azure_tokens
    assert time.monotonic() - start < 60

    # the policy goes: so does its Secret
    await aigw.delete("backendsecuritypolicies.aigateway.envoyproxy.io", "p-az")

    async def gone() -> bool:
        return await aigw.get(SECRETS, "ai-eg-bsp-p-az") is None

    await eventually(gone, within=30)
