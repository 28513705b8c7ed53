"""The rotation reconcile over the in-memory fake API, with a fake issuer and a wall clock the test moves:
what it writes, when it comes back, and what a failure keeps and says."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from api.objects import Obj, ObjKey
from api.v1alpha1 import BackendSecurityPolicy
from controller.gateway.kinds import BACKENDSECURITYPOLICIES
from controller.rotation.providers import Endpoints, ProviderError
from controller.rotation.reconciler import Credential, RotationMetrics, RotationReconciler
from controller.runtime import (
    APPLY_PATCH,
    EVENTS,
    SECRETS,
    EventRecorder,
    Request,
    Resource,
    StatusWriter,
    Store,
)
from controller.translate import Snapshot
from tests.unit.runtime.fakes import FakeApi

pytestmark = pytest.mark.timeout(10)

NS = "team-a"
T0 = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)
CLIENT_SECRET = "the-client-secret-value"


class ApplyingApi(FakeApi):
    """The fake API, with server-side apply's create-or-update for the Secrets the rotation applies."""

    async def patch(
        self, resource: Resource, *, name: str, namespace: str | None = None, body: Any, **kw: Any
    ) -> Any:
        if kw.get("content_type") == APPLY_PATCH:
            self._check("apply", resource)
            key = self._key(resource, namespace, name)
            return self._commit(
                resource, key, copy.deepcopy(body), "MODIFIED" if key in self.objects else "ADDED"
            )
        return await super().patch(resource, name=name, namespace=namespace, body=body, **kw)


def azure_policy() -> Obj:
    return {
        "apiVersion": "aigateway.envoyproxy.io/v1alpha1",
        "kind": "BackendSecurityPolicy",
        "metadata": {"name": "azure", "namespace": NS},
        "spec": {
            "type": "AzureCredentials",
            "azureCredentials": {
                "clientID": "c",
                "tenantID": "t",
                "clientSecretRef": {"name": "azure-client"},
            },
        },
    }


class Harness:
    def __init__(self) -> None:
        self.api = ApplyingApi()
        self.now = T0
        self.policies = Store()
        self.outcomes: list[Credential | ProviderError] = []
        self.issued: list[datetime] = []
        self.client_secrets: list[str] = []
        self.recorder = EventRecorder(self.api.client, component="test")
        self.rec = RotationReconciler(
            client=self.api.client,
            status=StatusWriter(self.api.client),
            recorder=self.recorder,
            policies=self.policies,
            policy_resource=BACKENDSECURITYPOLICIES,
            snapshot=self.snapshot,
            endpoints=Endpoints(),
            metrics=RotationMetrics(CollectorRegistry()),
            issue=self.issue,
            now=lambda: self.now,
        )

    def put_policy(self, obj: Obj) -> None:
        self.policies.upsert(self.api.put(BACKENDSECURITYPOLICIES, obj))

    def put_client_secret(self, value: str = CLIENT_SECRET) -> None:
        data = {"client-secret": base64.b64encode(value.encode()).decode()}
        self.api.put(SECRETS, {"metadata": {"name": "azure-client", "namespace": NS}, "data": data})

    async def snapshot(self, obj: Obj) -> Snapshot:
        policy = BackendSecurityPolicy.model_validate(obj)
        secrets = {
            ObjKey(ns, name): o.get("data") or {}
            for (plural, ns, name), o in self.api.objects.items()
            if plural == SECRETS.plural
        }
        return Snapshot(gateway=ObjKey("", ""), security_policies={policy.ref: policy}, secrets=secrets)

    async def issue(self, policy: BackendSecurityPolicy, client_secret: str, now: datetime) -> Credential:
        self.issued.append(now)
        self.client_secrets.append(client_secret)
        out = self.outcomes.pop(0)
        if isinstance(out, ProviderError):
            raise out
        return out

    async def reconcile(self) -> float | None:
        res = await self.rec.reconcile(Request(NS, "azure"))
        await self.recorder.flush()
        return res.requeue_after if res is not None else None

    def secret(self) -> Obj | None:
        return self.api.objects.get((SECRETS.plural, NS, "ai-eg-bsp-azure"))

    def token(self) -> str | None:
        s = self.secret()
        return base64.b64decode(s["data"]["azureAccessToken"]).decode() if s else None

    def condition(self) -> dict[str, Any]:
        obj = self.api.objects[(BACKENDSECURITYPOLICIES.plural, NS, "azure")]
        [c] = [c for c in obj["status"]["conditions"] if c["type"] == "CredentialsRotated"]
        return dict(c)

    def events(self) -> list[tuple[str, str, str]]:
        return [
            (o["type"], o["reason"], o["message"])
            for (plural, _, _), o in sorted(self.api.objects.items())
            if plural == EVENTS.plural
        ]


async def test_success_writes_the_token_and_comes_back_five_minutes_before_expiry() -> None:
    h = Harness()
    h.put_policy(azure_policy())
    h.put_client_secret()
    h.outcomes.append(Credential("token-1", T0 + timedelta(hours=1)))
    assert await h.reconcile() == 55 * 60
    assert h.token() == "token-1"
    md = h.secret()["metadata"]  # type: ignore[index]
    assert md["ownerReferences"][0]["kind"] == "BackendSecurityPolicy"
    assert md["annotations"]["aigateway.envoyproxy.io/credentials-expire-at"] == "2026-12-07T02:00:00Z"
    c = h.condition()
    assert (c["status"], c["reason"]) == ("True", "Rotated")
    assert (
        "valid until 2026-12-07T02:00:00Z" in c["message"]
        and "next refresh at 2026-12-07T01:55:00Z" in c["message"]
    )
    assert h.events()[0][:2] == ("Normal", "Rotated")
    # an unrelated event 10 minutes later: no refresh, back at the same instant
    h.now = T0 + timedelta(minutes=10)
    assert await h.reconcile() == 45 * 60 and len(h.issued) == 1
    # due: a new token
    h.now = T0 + timedelta(minutes=55)
    h.outcomes.append(Credential("token-2", h.now + timedelta(hours=1)))
    assert await h.reconcile() == 55 * 60
    assert h.token() == "token-2" and len(h.issued) == 2


async def test_a_failed_refresh_keeps_the_old_token_until_it_expires() -> None:
    h = Harness()
    h.put_policy(azure_policy())
    h.put_client_secret()
    h.outcomes.append(Credential("token-1", T0 + timedelta(hours=1)))
    await h.reconcile()
    h.now = T0 + timedelta(minutes=55)
    error = "Azure token endpoint https://login/t answered 401: invalid_client: AADSTS7000215: Invalid secret"
    h.outcomes.append(ProviderError(error))
    assert await h.reconcile() == 2  # backoff
    assert h.token() == "token-1"  # kept
    c = h.condition()
    assert (c["status"], c["reason"]) == ("False", "RotationFailed")
    assert c["message"].startswith(f"refreshing the credentials failed: {error}; ")
    assert "stay in use until they expire at 2026-12-07T02:00:00Z" in c["message"]
    assert ("Warning", "RotationFailed") in [e[:2] for e in h.events()]
    assert CLIENT_SECRET not in str(h.api.objects)  # never in a condition or an Event
    # an event before the retry is due does not retry
    h.now += timedelta(seconds=1)
    assert await h.reconcile() == 1 and len(h.issued) == 2
    # failing on until expiry: the token goes
    h.now = T0 + timedelta(minutes=59, seconds=59)
    h.outcomes.append(ProviderError(error))
    assert await h.reconcile() == 1  # retry in 4 s, but the token expires in 1 s
    h.now = T0 + timedelta(hours=1)
    assert await h.reconcile() == 3  # woken at expiry: drop it, then the retry
    assert h.secret() is None
    c = h.condition()
    assert (c["status"], c["reason"]) == ("False", "CredentialsExpired")
    assert "expired at 2026-12-07T02:00:00Z and were removed" in c["message"] and error in c["message"]
    # the provider recovers
    h.now += timedelta(seconds=3)
    h.outcomes.append(Credential("token-3", h.now + timedelta(hours=1)))
    assert await h.reconcile() == 55 * 60
    assert h.token() == "token-3" and h.condition()["reason"] == "Rotated"
    refreshes = h.rec.metrics.refreshes
    assert refreshes.labels("success")._value.get() == 2 and refreshes.labels("failure")._value.get() == 2


async def test_a_changed_client_secret_is_used_at_once() -> None:
    h = Harness()
    h.put_policy(azure_policy())
    h.put_client_secret()
    h.outcomes.append(Credential("token-1", T0 + timedelta(hours=1)))
    await h.reconcile()
    h.put_client_secret("another-secret-value")
    h.now += timedelta(minutes=1)
    h.outcomes.append(Credential("token-2", h.now + timedelta(hours=1)))
    assert await h.reconcile() == 55 * 60
    assert h.client_secrets == [CLIENT_SECRET, "another-secret-value"] and h.token() == "token-2"


async def test_undoing_a_bad_change_clears_the_failure_without_a_refresh() -> None:
    h = Harness()
    h.put_policy(azure_policy())
    h.put_client_secret()
    h.outcomes.append(Credential("token-1", T0 + timedelta(hours=1)))
    await h.reconcile()
    h.put_client_secret("a-wrong-secret-value")
    h.now += timedelta(minutes=1)
    h.outcomes.append(ProviderError("invalid_client"))
    assert await h.reconcile() == 2
    assert h.condition()["reason"] == "RotationFailed" and h.token() == "token-1"
    h.put_client_secret()  # undone: token-1 came from exactly these inputs, and is still valid
    assert await h.reconcile() == 54 * 60  # no retry pending: back 5 minutes before expiry
    c = h.condition()
    assert (c["status"], c["reason"]) == ("True", "Rotated") and "issued at 2026-12-07T01:00:00Z" in c[
        "message"
    ]
    assert len(h.issued) == 2 and h.token() == "token-1"


async def test_a_missing_client_secret_issues_nothing_and_says_so() -> None:
    h = Harness()
    h.put_policy(azure_policy())
    assert await h.reconcile() == 30  # looked at again even if the Secret's event is missed
    assert not h.issued and h.secret() is None
    c = h.condition()
    assert (c["status"], c["reason"]) == ("False", "InvalidReference")
    assert "Secret team-a/azure-client not found" in c["message"]


async def test_a_policy_that_no_longer_rotates_loses_its_secret_and_condition() -> None:
    h = Harness()
    h.put_policy(azure_policy())
    h.put_client_secret()
    h.outcomes.append(Credential("token-1", T0 + timedelta(hours=1)))
    await h.reconcile()
    changed = azure_policy()
    changed["spec"] = {"type": "APIKey", "apiKey": {"secretRef": {"name": "k"}}}
    h.put_policy(changed)
    assert await h.reconcile() is None
    assert h.secret() is None
    obj = h.api.objects[(BACKENDSECURITYPOLICIES.plural, NS, "azure")]
    assert not [c for c in obj["status"]["conditions"] if c["type"] == "CredentialsRotated"]
