"""The Secret the rotation writes, and what a restarted controller reads back from it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from api.v1alpha1 import BackendSecurityPolicy
from controller.rotation.schedule import Issued
from controller.rotation.secret import aws_credentials_file, build_secret, issued_from, source_fingerprint

T0 = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)


def policy(tenant: str = "t", uid: str = "uid-1") -> BackendSecurityPolicy:
    return BackendSecurityPolicy.model_validate({
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "BackendSecurityPolicy",
        "metadata": {"name": "azure", "namespace": "team-a", "uid": uid},
        "spec": {"type": "AzureCredentials",
                 "azureCredentials": {"clientID": "c", "tenantID": tenant, "clientSecretRef": {"name": "s"}}},
    })  # fmt: skip


def test_the_secret_says_when_its_credentials_were_issued_and_expire() -> None:
    issued = Issued(issued_at=T0, expires_at=T0 + timedelta(hours=1), source="fp")
    secret = build_secret(policy(), key="azureAccessToken", value="tok", issued=issued)
    md = secret["metadata"]
    assert (md["name"], md["namespace"]) == ("ai-eg-bsp-azure", "team-a")
    assert md["labels"]["app.kubernetes.io/managed-by"] == "envoy-ai-gateway"
    assert md["ownerReferences"] == [
        {"apiVersion": "aigateway.envoyproxy.io/v1alpha1", "kind": "BackendSecurityPolicy", "name": "azure",
         "uid": "uid-1", "controller": True, "blockOwnerDeletion": False}
    ]  # fmt: skip
    assert base64.b64decode(secret["data"]["azureAccessToken"]) == b"tok"
    assert issued_from(secret) == issued  # what a restarted controller schedules from
    not_ours = {**secret, "metadata": {**md, "labels": {}}}
    assert issued_from(not_ours) is None and issued_from(None) is None
    broken = {
        **secret,
        "metadata": {**md, "annotations": {"aigateway.envoyproxy.io/credentials-issued-at": "x"}},
    }
    assert issued_from(broken) is None  # unreadable: refreshed at once


def test_the_fingerprint_changes_with_every_input_of_a_refresh() -> None:
    base = source_fingerprint(policy(), client_secret="s1", endpoint="https://login")
    assert base == source_fingerprint(policy(), client_secret="s1", endpoint="https://login")
    assert "s1" not in base
    for other in (
        source_fingerprint(policy(), client_secret="s2", endpoint="https://login"),
        source_fingerprint(policy(tenant="t2"), client_secret="s1", endpoint="https://login"),
        source_fingerprint(policy(uid="uid-2"), client_secret="s1", endpoint="https://login"),
        source_fingerprint(policy(), client_secret="s1", endpoint="https://other"),
    ):
        assert other != base


def test_aws_credentials_file_has_the_session_token() -> None:
    ini = aws_credentials_file(access_key_id="ASIA1", secret_access_key="sk", session_token="tok")
    assert (
        ini == "[default]\naws_access_key_id = ASIA1\naws_secret_access_key = sk\naws_session_token = tok\n"
    )
