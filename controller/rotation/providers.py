"""The token endpoints (I/O): an OIDC client-credentials token exchanged for AWS credentials through STS
``AssumeRoleWithWebIdentity``, and an Azure access token from the Microsoft identity platform.

Every endpoint is configurable (``Endpoints``) so tests point them at local fakes. A failure raises
``ProviderError`` with the provider's own error text (its ``error`` / ``error_description``, or STS's error
code and message), scrubbed of the client secret and of any token, and cut to ``MAX_ERROR`` characters: it
goes into a condition, an Event and the log.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from api.v1alpha1 import OIDC, AWSOIDCExchangeToken, BackendSecurityPolicyAzureCredentials

DEFAULT_AZURE_AUTHORITY = "https://login.microsoftonline.com"
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
"""The scope of an access token for Azure OpenAI (Azure AI services)."""
MAX_ERROR = 1024


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Where the rotation asks for tokens."""

    sts_endpoint: str | None = None
    """STS's URL; None: the region's public STS endpoint (botocore's default)."""
    azure_authority: str = DEFAULT_AZURE_AUTHORITY
    """The Microsoft identity platform's authority host: tokens come from
    ``<authority>/<tenant>/oauth2/v2.0/token``."""
    timeout: float = 15.0
    """Seconds for each HTTP exchange."""


@dataclass(frozen=True, slots=True)
class AWSCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime


class ProviderError(Exception):
    """A refresh failed; ``str(error)`` is safe to show (no secret, no token)."""


def scrub(text: str, *secrets: str) -> str:
    """``text`` without any of ``secrets`` (of 8 characters or more: shorter ones are no secret, and would
    garble the text) nor anything shaped like a JWT, on one line, at most ``MAX_ERROR`` characters."""
    for s in secrets:
        if len(s) >= 8:
            text = text.replace(s, "***")
    text = re.sub(r"eyJ[\w-]+\.[\w-]+\.[\w-]*", "***", text)  # JWTs
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def _form_error(where: str, status: int, body: Any, raw: str, secrets: tuple[str, ...]) -> ProviderError:
    if isinstance(body, dict) and body.get("error"):
        detail = str(body["error"])
        if body.get("error_description"):
            detail += f": {body['error_description']}"
    else:
        detail = raw or "(empty body)"
    return ProviderError(scrub(f"{where} answered {status}: {detail}", *secrets))


async def _post_form(
    session: aiohttp.ClientSession, url: str, form: dict[str, str], *, what: str, secrets: tuple[str, ...]
) -> dict[str, Any]:
    """POST an OAuth 2.0 token request; the JSON answer, or ProviderError."""
    try:
        async with session.post(url, data=form, headers={"accept": "application/json"}) as resp:
            raw = await resp.text()
            try:
                body = await resp.json(content_type=None) if raw else None
            except ValueError:
                body = None
            if resp.status != 200 or not isinstance(body, dict):
                raise _form_error(f"{what} {url}", resp.status, body, raw[:300], secrets)
            return body
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ProviderError(scrub(f"{what} {url}: {type(e).__name__}: {e}", *secrets)) from e


async def _token_endpoint(session: aiohttp.ClientSession, oidc: OIDC) -> str:
    """The provider's token endpoint: as configured, else from the issuer's discovery document."""
    if oidc.provider.token_endpoint:
        return oidc.provider.token_endpoint
    url = oidc.provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with session.get(url) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or not isinstance(body, dict) or not body.get("token_endpoint"):
                raise ProviderError(
                    scrub(f"OIDC discovery {url} answered {resp.status} without token_endpoint")
                )
            return str(body["token_endpoint"])
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise ProviderError(scrub(f"OIDC discovery {url}: {type(e).__name__}: {e}")) from e


async def oidc_token(
    session: aiohttp.ClientSession, exchange: AWSOIDCExchangeToken, *, client_secret: str
) -> str:
    """An OIDC token by the client-credentials grant (or ``grantType``), with the client secret in the body
    (``client_secret_post``), scopes ``openid`` plus the policy's, and ``audience`` when ``aud`` is set. The
    ID token when the provider returns one, else the access token."""
    oidc = exchange.oidc
    url = await _token_endpoint(session, oidc)
    form = {
        "grant_type": exchange.grant_type or "client_credentials",
        "client_id": oidc.client_id,
        "client_secret": client_secret,
        "scope": " ".join(dict.fromkeys(["openid", *oidc.scopes])),
    }
    if exchange.aud:
        form["audience"] = exchange.aud
    body = await _post_form(session, url, form, what="OIDC token endpoint", secrets=(client_secret,))
    token = body.get("id_token") or body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ProviderError(f"OIDC token endpoint {url} answered without id_token or access_token")
    return token


@functools.lru_cache(maxsize=32)
def _sts_client(region: str, endpoint: str | None) -> Any:
    """An unsigned STS client (AssumeRoleWithWebIdentity needs no AWS credentials; unsigned, botocore never
    looks for any), without botocore's own retries: the rotation retries with its backoff."""
    config = Config(
        signature_version=UNSIGNED,
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=15,
    )
    return botocore.session.Session().create_client(
        "sts", region_name=region, endpoint_url=endpoint, config=config
    )


def _assume_role(*, region: str, endpoint: str | None, role_arn: str, session_name: str, token: str) -> Any:
    return _sts_client(region, endpoint).assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName=session_name, WebIdentityToken=token
    )


def session_name(namespace: str, name: str) -> str:
    """STS's ``RoleSessionName`` for a policy (CloudTrail shows it): ``ai-gateway-<ns>-<name>`` in STS's
    alphabet, cut to STS's 64 characters with a hash suffix when longer (so it still tells policies apart)."""
    full = re.sub(r"[^\w+=,.@-]", "-", f"ai-gateway-{namespace}-{name}")
    if len(full) <= 64:
        return full
    return f"{full[:55]}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"


async def assume_role_with_web_identity(
    *, token: str, role_arn: str, region: str, session_name: str, endpoint: str | None
) -> AWSCredentials:
    """Temporary credentials for ``role_arn`` from STS (botocore, in a thread: its client is synchronous)."""
    try:
        out = await asyncio.to_thread(
            _assume_role,
            region=region, endpoint=endpoint, role_arn=role_arn, session_name=session_name, token=token,
        )  # fmt: skip
    except ClientError as e:
        err = e.response.get("Error") or {}
        code, message = err.get("Code", "Unknown"), err.get("Message", "")
        raise ProviderError(scrub(f"STS AssumeRoleWithWebIdentity: {code}: {message}", token)) from e
    except BotoCoreError as e:
        raise ProviderError(scrub(f"STS AssumeRoleWithWebIdentity: {e}", token)) from e
    creds = out.get("Credentials") or {}
    try:
        expires = creds["Expiration"]
        if not isinstance(expires, datetime):
            raise TypeError(f"Expiration {expires!r}")
        return AWSCredentials(
            access_key_id=str(creds["AccessKeyId"]),
            secret_access_key=str(creds["SecretAccessKey"]),
            session_token=str(creds["SessionToken"]),
            expires_at=expires.astimezone(UTC),
        )
    except (KeyError, TypeError) as e:
        raise ProviderError(
            f"STS AssumeRoleWithWebIdentity: incomplete credentials in the answer ({e})"
        ) from e


async def azure_access_token(
    session: aiohttp.ClientSession,
    azure: BackendSecurityPolicyAzureCredentials,
    *,
    client_secret: str,
    authority: str,
    now: datetime,
) -> AccessToken:
    """An access token for Azure OpenAI by the Microsoft identity platform's client-credentials flow
    (``<authority>/<tenantID>/oauth2/v2.0/token``, scope ``AZURE_SCOPE``)."""
    url = f"{authority.rstrip('/')}/{azure.tenant_id}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": azure.client_id,
        "client_secret": client_secret,
        "scope": AZURE_SCOPE,
    }
    body = await _post_form(session, url, form, what="Azure token endpoint", secrets=(client_secret,))
    token, expires_in = body.get("access_token"), body.get("expires_in")
    try:
        seconds = int(str(expires_in))
    except ValueError:
        seconds = -1
    if not isinstance(token, str) or not token or seconds <= 0:
        raise ProviderError(f"Azure token endpoint {url} answered without access_token or expires_in")
    return AccessToken(token=token, expires_at=now + timedelta(seconds=seconds))
