"""Fake token endpoints for the credential rotation, on one loopback HTTP server:

* an OIDC provider (``issuer``): discovery document and a client-credentials token endpoint that checks the
  client id and secret;
* AWS STS (``sts_endpoint``): ``AssumeRoleWithWebIdentity`` in the query protocol with STS's XML answers,
  which accepts only tokens the fake OIDC provider issued, and hands out new temporary credentials each time;
* the Microsoft identity platform (``azure_authority``): ``/<tenant>/oauth2/v2.0/token``, client credentials.

``lifetime`` sets how long issued credentials and tokens live; ``fail_sts`` / ``fail_azure`` make the next
requests fail with a provider-shaped error. ``keys`` holds every AWS key issued (``KnownKey``s, the shape the
fake Bedrock verifies signatures with); ``sts_calls`` and ``azure_calls`` record what was asked, when.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from aiohttp import web

from aigw.httpserve import AppServer
from tests.fakes.sigv4_verifier import KnownKey

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class StsCall:
    at: float
    role_arn: str
    session_name: str
    access_key_id: str | None
    """The key issued (None: refused)."""


@dataclass
class AzureCall:
    at: float
    tenant: str
    client_id: str
    scope: str
    token: str | None


@dataclass
class FakeTokenEndpoints(AppServer):
    clients: dict[str, str]
    """client id -> client secret, for both the OIDC provider and Azure."""
    lifetime: timedelta = timedelta(hours=1)
    fail_sts: tuple[str, str] | None = None
    """(code, message) of the STS error to answer with, while set."""
    fail_azure: tuple[str, str] | None = None
    """(error, error_description) of the Azure error to answer with, while set."""
    keys: dict[str, KnownKey] = field(default_factory=dict)
    azure_tokens: set[str] = field(default_factory=set)
    sts_calls: list[StsCall] = field(default_factory=list)
    azure_calls: list[AzureCall] = field(default_factory=list)
    oidc_tokens: set[str] = field(default_factory=set)

    @property
    def issuer(self) -> str:
        return f"{self.url}/oidc"

    @property
    def sts_endpoint(self) -> str:
        return f"{self.url}/sts"

    @property
    def azure_authority(self) -> str:
        return f"{self.url}/azure"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oidc/.well-known/openid-configuration", self._discovery)
        app.router.add_post("/oidc/token", self._oidc_token)
        app.router.add_post("/sts", self._sts)
        app.router.add_post("/sts/", self._sts)
        app.router.add_post("/azure/{tenant}/oauth2/v2.0/token", self._azure_token)
        return app

    # --- OIDC

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "token_endpoint": f"{self.issuer}/token"})

    def _client_ok(self, form: dict[str, str]) -> bool:
        cid = form.get("client_id", "")
        return cid in self.clients and secrets.compare_digest(
            self.clients[cid], form.get("client_secret", "")
        )

    async def _oidc_token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not self._client_ok(form):
            body = {"error": "invalid_client", "error_description": "client authentication failed"}
            return web.json_response(body, status=401)
        token = "oidc-" + secrets.token_urlsafe(24)
        self.oidc_tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 300})

    # --- STS

    def _sts_error(self, code: str, message: str, status: int = 400) -> web.Response:
        body = (
            f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{secrets.token_hex(8)}</RequestId>"
            "</ErrorResponse>"
        )
        return web.Response(status=status, body=body.encode(), content_type="text/xml")

    async def _sts(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("Version") != "2011-06-15":
            return self._sts_error("InvalidAction", f"unexpected action {form.get('Action')!r}")
        role, name = form.get("RoleArn", ""), form.get("RoleSessionName", "")
        if self.fail_sts is not None:
            self.sts_calls.append(StsCall(time.monotonic(), role, name, None))
            return self._sts_error(*self.fail_sts)
        if form.get("WebIdentityToken") not in self.oidc_tokens:
            self.sts_calls.append(StsCall(time.monotonic(), role, name, None))
            return self._sts_error(
                "InvalidIdentityToken", "The web identity token was not issued by a trusted IdP"
            )
        key_id = "ASIA" + secrets.token_hex(8).upper()
        secret, token = secrets.token_urlsafe(30), "FwoG" + secrets.token_urlsafe(48)
        self.keys[key_id] = KnownKey(secret=secret, session_token=token)
        self.sts_calls.append(StsCall(time.monotonic(), role, name, key_id))
        expires = (datetime.now(UTC) + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = (
            f'<AssumeRoleWithWebIdentityResponse xmlns="{STS_NS}"><AssumeRoleWithWebIdentityResult>'
            f"<Credentials><AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
            f"<SubjectFromWebIdentityToken>client</SubjectFromWebIdentityToken>"
            f"<AssumedRoleUser><Arn>{escape(role)}/{escape(name)}</Arn><AssumedRoleId>AROA:{escape(name)}"
            "</AssumedRoleId></AssumedRoleUser></AssumeRoleWithWebIdentityResult>"
            f"<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>"
            "</AssumeRoleWithWebIdentityResponse>"
        )
        return web.Response(body=body.encode(), content_type="text/xml")

    # --- Azure

    async def _azure_token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        tenant = request.match_info["tenant"]
        call = AzureCall(time.monotonic(), tenant, form.get("client_id", ""), form.get("scope", ""), None)
        self.azure_calls.append(call)
        if self.fail_azure is not None:
            error, description = self.fail_azure
            return web.json_response({"error": error, "error_description": description}, status=401)
        if form.get("grant_type") != "client_credentials" or not self._client_ok(form):
            refusal = {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
            }
            return web.json_response(refusal, status=401)
        call.token = "az-" + secrets.token_urlsafe(32)
        self.azure_tokens.add(call.token)
        seconds = int(self.lifetime.total_seconds())
        body: dict[str, str | int] = {
            "token_type": "Bearer",
            "expires_in": seconds,
            "ext_expires_in": seconds,
            "access_token": call.token,
        }
        return web.json_response(body)
