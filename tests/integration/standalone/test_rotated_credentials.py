"""Temporary AWS credentials as the controller's rotation issues them, through the real Envoy and our
ext_proc (``aigw run``), to the fake Bedrock, which checks each signature and session token independently.

The credentials come from the rotation's own issuer (``controller.rotation.reconciler.token_issuer``: OIDC
client credentials, then STS ``AssumeRoleWithWebIdentity`` through botocore) against our fake token endpoints,
and are written in the rotation's file format (``controller.rotation.secret.aws_credentials_file``).
``aigw run`` does not rotate by itself, so the test plays the controller's part: it puts each file where the
Gateway's auth Secret would hold it (a credentials-file Secret of the standalone config), then swaps in the
next one, as a rotation does, and retires the old key at the fake Bedrock, as its expiry would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.v1alpha1 import BackendSecurityPolicy
from controller.rotation.providers import Endpoints
from controller.rotation.reconciler import token_issuer
from tests.fakes.bedrock import FakeBedrock, serve_bedrock_in_thread
from tests.fakes.sigv4_verifier import KnownKey
from tests.fakes.token_endpoints import FakeTokenEndpoints
from tests.integration.standalone.harness import aigw_run

pytestmark = pytest.mark.envoy

REGION = "us-east-1"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CLIENT_SECRET = "standalone-client-secret-42"


def issue_credentials(count: int) -> tuple[list[str], dict[str, KnownKey]]:
    """``count`` credentials files issued by the rotation's issuer, and the keys the fake STS handed out."""

    async def run() -> tuple[list[str], dict[str, KnownKey]]:
        fake = FakeTokenEndpoints(clients={"gw-client": CLIENT_SECRET})
        await fake.start()
        try:
            policy = BackendSecurityPolicy.model_validate({
                "apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "BackendSecurityPolicy",
                "metadata": {"name": "bedrock", "namespace": "default"},
                "spec": {"type": "AWSCredentials", "awsCredentials": {"region": REGION, "oidcExchangeToken": {
                    "oidc": {"provider": {"issuer": fake.issuer}, "clientID": "gw-client",
                             "clientSecret": {"name": "oidc-client"}},
                    "awsRoleArn": "arn:aws:iam::123456789012:role/bedrock"}}},
            })  # fmt: skip
            issue = token_issuer(Endpoints(sts_endpoint=fake.sts_endpoint))
            files = [(await issue(policy, CLIENT_SECRET, datetime.now(UTC))).value for _ in range(count)]
            return files, dict(fake.keys)
        finally:
            await fake.stop()

    return asyncio.run(run())


AIGW = "aigateway.envoyproxy.io/v1alpha1"
EG = "gateway.envoyproxy.io"


def config(credentials: str, port: int) -> str:
    gateway = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "local"}
    rule = {
        "matches": [{"headers": [{"name": "x-ai-eg-model", "value": MODEL}]}],
        "backendRefs": [{"name": "bedrock"}],
    }
    policy_ref = {"group": "aigateway.envoyproxy.io", "kind": "BackendSecurityPolicy", "name": "bedrock"}
    aws = {"region": REGION, "credentialsFile": {"secretRef": {"name": "rotated"}}}
    docs: list[dict[str, Any]] = [
        {"apiVersion": AIGW, "kind": "AIGatewayRoute", "metadata": {"name": "r"},
         "spec": {"targetRefs": [gateway], "schema": {"name": "OpenAI"}, "rules": [rule]}},
        {"apiVersion": AIGW, "kind": "AIServiceBackend", "metadata": {"name": "bedrock"},
         "spec": {"schema": {"name": "AWSBedrock"}, "backendSecurityPolicyRef": policy_ref,
                  "backendRef": {"group": EG, "kind": "Backend", "name": "bedrock"}}},
        {"apiVersion": f"{EG}/v1alpha1", "kind": "Backend", "metadata": {"name": "bedrock"},
         "spec": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]}},
        {"apiVersion": AIGW, "kind": "BackendSecurityPolicy", "metadata": {"name": "bedrock"},
         "spec": {"type": "AWSCredentials", "awsCredentials": aws}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rotated"},
         "stringData": {"credentials": credentials}},
    ]  # fmt: skip
    return yaml.safe_dump_all(docs)


@pytest.fixture
def issued() -> tuple[list[str], dict[str, KnownKey]]:
    return issue_credentials(2)


@pytest.fixture
def bedrock() -> Iterator[tuple[FakeBedrock, dict[str, KnownKey]]]:
    accepted: dict[str, KnownKey] = {}  # the keys AWS would accept now; the test retires and adds keys
    with serve_bedrock_in_thread(region=REGION, keys=accepted) as fake:
        yield fake, accepted


def access_key(ini: str) -> str:
    return next(
        line.split("=", 1)[1].strip() for line in ini.splitlines() if line.startswith("aws_access_key_id")
    )


def test_bedrock_requests_are_signed_with_the_rotated_credentials(
    issued: tuple[list[str], dict[str, KnownKey]],
    bedrock: tuple[FakeBedrock, dict[str, KnownKey]],
    tmp_path: Path,
) -> None:
    (first, second), keys = issued
    fake, accepted = bedrock
    key1, key2 = access_key(first), access_key(second)
    assert (
        key1 != key2
        and keys[key1].session_token
        and f"aws_session_token = {keys[key1].session_token}" in first
    )
    accepted[key1] = keys[key1]
    path = tmp_path / "bedrock.yaml"
    path.write_text(config(first, fake.port))
    with aigw_run([path], workdir=tmp_path / "work", extra_args=["--no-demo-upstreams"]) as run:
        r = run.chat(MODEL)
        assert r.status == 200, (r.body, run.output()[-3000:])
        seen = fake.received[-1]
        assert seen.refusal is None and seen.signed_by == key1

        # rotated: the next credentials replace the file, and the old key stops working (expired)
        accepted[key2] = keys[key2]
        path.write_text(config(second, fake.port))
        deadline = time.monotonic() + 30
        while fake.received[-1].signed_by != key2 and time.monotonic() < deadline:
            time.sleep(0.5)
            run.chat(MODEL)
        assert fake.received[-1].signed_by == key2, run.output()[-3000:]
        del accepted[key1]
        r = run.chat(MODEL)
        assert r.status == 200 and fake.received[-1].signed_by == key2, (r.body, fake.received[-1].refusal)
