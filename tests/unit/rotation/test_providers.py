"""The token exchanges against our fake endpoints on loopback: OIDC discovery and client credentials, STS
``AssumeRoleWithWebIdentity`` through botocore, the Microsoft identity platform; provider errors come back as
their text, without the client secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from api.v1alpha1 import AWSOIDCExchangeToken, BackendSecurityPolicyAzureCredentials
from controller.rotation import providers
from controller.rotation.providers import ProviderError
from tests.fakes.token_endpoints import FakeTokenEndpoints

pytestmark = pytest.mark.timeout(30)
SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTokenEndpoints]:
    f = FakeTokenEndpoints(clients={"gw-client": SECRET}, lifetime=timedelta(minutes=30))
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


def exchange(fake: FakeTokenEndpoints, **oidc: object) -> AWSOIDCExchangeToken:
    return AWSOIDCExchangeToken.model_validate(
        {
            "oidc": {
                "provider": {"issuer": fake.issuer},
                "clientID": "gw-client",
                "clientSecret": {"name": "cs"},
            }
            | oidc,
            "awsRoleArn": "arn:aws:iam::123456789012:role/bedrock",
        }
    )


async def test_oidc_token_then_sts_gives_temporary_credentials(fake: FakeTokenEndpoints) -> None:
    async with aiohttp.ClientSession() as session:
        token = await providers.oidc_token(session, exchange(fake), client_secret=SECRET)
    assert token in fake.oidc_tokens  # found through the issuer's discovery document
    before = datetime.now(UTC)
    creds = await providers.assume_role_with_web_identity(
        token=token,
        role_arn="arn:aws:iam::123456789012:role/bedrock",
        region="us-east-1",
        session_name=providers.session_name("team-a", "bedrock"),
        endpoint=fake.sts_endpoint,
    )
    [call] = fake.sts_calls
    assert (call.role_arn, call.session_name, call.access_key_id) == (
        "arn:aws:iam::123456789012:role/bedrock",
        "ai-gateway-team-a-bedrock",
        creds.access_key_id,
    )
    known = fake.keys[creds.access_key_id]
    assert (known.secret, known.session_token) == (creds.secret_access_key, creds.session_token)
    assert before + timedelta(minutes=29) < creds.expires_at <= before + timedelta(minutes=31)


async def test_a_configured_token_endpoint_skips_discovery_and_wrong_secrets_fail(
    fake: FakeTokenEndpoints,
) -> None:
    ex = exchange(
        fake, provider={"issuer": "http://127.0.0.1:9/nowhere", "tokenEndpoint": fake.issuer + "/token"}
    )
    async with aiohttp.ClientSession() as session:
        assert await providers.oidc_token(session, ex, client_secret=SECRET) in fake.oidc_tokens
        with pytest.raises(ProviderError) as e:
            await providers.oidc_token(session, ex, client_secret="wrong-" + SECRET)
    text = str(e.value)
    assert "answered 401: invalid_client: client authentication failed" in text
    assert SECRET not in text


async def test_sts_errors_carry_the_code_and_message(fake: FakeTokenEndpoints) -> None:
    fake.fail_sts = ("InvalidIdentityToken", "Incorrect token audience")
    with pytest.raises(ProviderError) as e:
        await providers.assume_role_with_web_identity(
            token="a-web-identity-token", role_arn="arn:aws:iam::1:role/r", region="us-east-1",
            session_name="ai-gateway-s",
            endpoint=fake.sts_endpoint,
        )  # fmt: skip
    assert str(e.value) == "STS AssumeRoleWithWebIdentity: InvalidIdentityToken: Incorrect token audience"


async def test_azure_client_credentials_flow(fake: FakeTokenEndpoints) -> None:
    azure = BackendSecurityPolicyAzureCredentials.model_validate(
        {"clientID": "gw-client", "tenantID": "tenant-1", "clientSecretRef": {"name": "s"}}
    )
    now = datetime(2026, 12, 7, tzinfo=UTC)
    async with aiohttp.ClientSession() as session:
        got = await providers.azure_access_token(
            session, azure, client_secret=SECRET, authority=fake.azure_authority, now=now
        )
        assert got.token in fake.azure_tokens and got.expires_at == now + timedelta(minutes=30)
        [call] = fake.azure_calls
        assert (call.tenant, call.scope) == ("tenant-1", providers.AZURE_SCOPE)
        fake.fail_azure = ("invalid_client", f"AADSTS7000215: Invalid client secret provided: {SECRET}")
        with pytest.raises(ProviderError) as e:
            await providers.azure_access_token(
                session, azure, client_secret=SECRET, authority=fake.azure_authority, now=now
            )
    assert "answered 401: invalid_client: AADSTS7000215: Invalid client secret provided: ***" in str(e.value)
    assert SECRET not in str(e.value)


async def test_unreachable_endpoint_is_a_provider_error() -> None:
    azure = BackendSecurityPolicyAzureCredentials.model_validate(
        {"clientID": "c", "tenantID": "t", "clientSecretRef": {"name": "s"}}
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProviderError, match=r"Azure token endpoint http://127\.0\.0\.1:9/t/oauth2"):
            await providers.azure_access_token(
                session, azure, client_secret="x", authority="http://127.0.0.1:9", now=datetime.now(UTC)
            )


def test_session_names_fit_sts_and_stay_distinct() -> None:
    assert providers.session_name("team-a", "bedrock") == "ai-gateway-team-a-bedrock"
    long_a, long_b = (
        providers.session_name("n" * 60, "policy-a"),
        providers.session_name("n" * 60, "policy-b"),
    )
    assert len(long_a) == 64 and long_a != long_b and long_a.startswith("ai-gateway-nnn")


def test_scrub_removes_secrets_tokens_and_newlines() -> None:
    text = providers.scrub("bad\nsecret abcdef123 and eyJhbGciOi.eyJzdWIi.sig here", "abcdef123", "short")
    assert text == "bad secret *** and *** here"
    assert len(providers.scrub("x" * 5000)) == providers.MAX_ERROR
