"""The credential rotation: one reconcile per BackendSecurityPolicy whose credentials are temporary (AWS
``oidcExchangeToken``, ``AzureCredentials``).

Each reconcile reads the policy, its client secret (through the same snapshot and ReferenceGrant checks as
the Gateway reconcile) and the Secret it wrote before (``ai-eg-bsp-<policy>``), asks ``schedule.plan`` what is
due, and when a refresh is due issues new credentials (``providers``) and applies them to that Secret. The
Gateway reconciles copy it into each Gateway's auth Secret, which the ext_proc re-reads. The Result says when
to come back: 5 minutes before expiry after a success, the backoff delay after a failure.

A failure keeps the old credentials until they expire (then the Secret is deleted: nothing signs with dead
credentials), and sets the policy's ``CredentialsRotated`` condition to False with the provider's error text,
with a Warning Event and a log line. No secret or token is ever logged or written outside that Secret.

Condition ``CredentialsRotated``: True ``Rotated`` (issued, valid until, next refresh); False
``RotationFailed`` (the provider's error; whether the old credentials are still in use, until when), False
``CredentialsExpired`` (the refreshes failed until the credentials expired: removed), False
``InvalidReference`` (the client secret can't be read: the message says why).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from api.objects import Obj, ObjKey
from api.v1alpha1 import BackendSecurityPolicy
from controller.rotation import providers, schedule
from controller.rotation.schedule import Failure, Issued
from controller.rotation.secret import aws_credentials_file, build_secret, issued_from, source_fingerprint
from controller.runtime import (
    APPLY_PATCH,
    SECRETS,
    EventRecorder,
    KubeClient,
    Request,
    Resource,
    Result,
    StatusWriter,
    Store,
    format_time,
    is_not_found,
    new_condition,
    remove_status_condition,
    set_status_condition,
)
from controller.translate import names as n
from controller.translate.resolve import CREDENTIALS_NOT_READY, resolve_policy
from controller.translate.snapshot import Snapshot
from controller.translate.views import credential_use, needs_rotation, source_uses

log = logging.getLogger(__name__)

CONDITION = "CredentialsRotated"
BLOCKED_RECHECK = 30.0
"""Seconds before a policy whose client secret can't be read is looked at again, absent events."""
ROTATED, FAILED, EXPIRED, INVALID_REF = "Rotated", "RotationFailed", "CredentialsExpired", "InvalidReference"


@dataclass(frozen=True, slots=True)
class Credential:
    """What a refresh issued: the value of the Secret key the ext_proc reads, and its expiry."""

    value: str
    expires_at: datetime


Issue = Callable[[BackendSecurityPolicy, str, datetime], Awaitable[Credential]]
"""``issue(policy, client_secret, now)``: new credentials, or ``providers.ProviderError``."""


def token_issuer(endpoints: providers.Endpoints) -> Issue:
    """The real ``Issue``: OIDC then STS for AWS, the Microsoft identity platform for Azure."""

    async def issue(policy: BackendSecurityPolicy, client_secret: str, now: datetime) -> Credential:
        timeout = aiohttp.ClientTimeout(total=endpoints.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            aws, azure = policy.spec.aws_credentials, policy.spec.azure_credentials
            if aws is not None and aws.oidc_exchange_token is not None:
                exchange = aws.oidc_exchange_token
                token = await providers.oidc_token(session, exchange, client_secret=client_secret)
                creds = await providers.assume_role_with_web_identity(
                    token=token,
                    role_arn=exchange.aws_role_arn,
                    region=aws.region,
                    session_name=providers.session_name(policy.metadata.namespace, policy.metadata.name),
                    endpoint=endpoints.sts_endpoint,
                )
                value = aws_credentials_file(
                    access_key_id=creds.access_key_id,
                    secret_access_key=creds.secret_access_key,
                    session_token=creds.session_token,
                )
                return Credential(value, creds.expires_at)
            if azure is not None:
                got = await providers.azure_access_token(
                    session, azure, client_secret=client_secret, authority=endpoints.azure_authority, now=now
                )
                return Credential(got.token, got.expires_at)
        raise providers.ProviderError("the policy has no credentials to rotate")

    return issue


class RotationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refreshes = Counter(
            "aigw_controller_credential_refreshes_total",
            "Credential refreshes of BackendSecurityPolicies, by result (success, failure)",
            ["result"],
            registry=registry,
        )


def _endpoint_of(policy: BackendSecurityPolicy, endpoints: providers.Endpoints) -> str:
    """The token endpoint the controller is configured with for the policy's method."""
    if policy.spec.aws_credentials is not None:
        return endpoints.sts_endpoint or ""
    return endpoints.azure_authority


class RotationReconciler:
    """See the module docstring. ``snapshot(policy)`` returns the policy's object snapshot with its Secrets
    fresh (the Gateway reconcile's ``Caches``); ``now`` is the wall clock (tests pass their own)."""

    def __init__(
        self,
        *,
        client: KubeClient,
        status: StatusWriter,
        recorder: EventRecorder,
        policies: Store,
        policy_resource: Resource,
        snapshot: Callable[[Obj], Awaitable[Snapshot]],
        endpoints: providers.Endpoints,
        metrics: RotationMetrics,
        issue: Issue | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.status = status
        self.recorder = recorder
        self.policies = policies
        self.policy_resource = policy_resource
        self.snapshot = snapshot
        self.endpoints = endpoints
        self.metrics = metrics
        self.issue = issue or token_issuer(endpoints)
        self.now = now
        self._issued: dict[ObjKey, Issued] = {}
        """The credentials each policy was last issued (the cache may not show our own write yet)."""
        self._failures: dict[ObjKey, Failure] = {}

    async def reconcile(self, req: Request) -> Result | None:
        key = ObjKey(req.namespace, req.name)
        obj = self.policies.get(req.key)
        policy = _parse(obj)
        if obj is None or policy is None or not needs_rotation(policy):
            # gone, unreadable, or no longer rotated: its temporary credentials go too
            self._issued.pop(key, None)
            self._failures.pop(key, None)
            await self._delete_secret(key)
            if obj is not None:
                await self._set_condition(obj, None)
            return None
        snap = await self.snapshot(obj)
        res = resolve_policy(policy, snap)
        current = self._current(key, await self._read_secret(key))
        refs = [p.message for p in res.problems if p.reason != CREDENTIALS_NOT_READY]
        if res.unsupported or refs:
            why = "; ".join([*([res.unsupported] if res.unsupported else []), *refs])
            return await self._blocked(obj, key, current, f"cannot issue credentials: {why}")
        (source,) = source_uses(policy)
        client_secret = _decode(snap.secrets[source.secret][source.key])
        if client_secret is None:
            why = f"Secret {source.secret} key {source.key!r} is not valid base64 UTF-8 text"
            return await self._blocked(obj, key, current, f"cannot issue credentials: {why}")
        fingerprint = source_fingerprint(
            policy, client_secret=client_secret, endpoint=_endpoint_of(policy, self.endpoints)
        )
        now = self.now()
        plan = schedule.plan(current=current, failure=self._failures.get(key), source=fingerprint, now=now)
        if not plan.refresh:
            if plan.drop_expired and current is not None:
                await self._expire(obj, key, current)
            elif current is not None and current.source == fingerprint and self._undone(key, fingerprint):
                # back to the inputs the credentials in use came from (a bad change undone): nothing failed
                del self._failures[key]
                await self._set_condition(obj, (ROTATED, _rotated_message(key, current), True))
            return Result(requeue_after=plan.wake_in) if plan.wake_in is not None else None
        try:
            cred = await self.issue(policy, client_secret, now)
        except providers.ProviderError as e:
            return await self._failed(obj, key, current, fingerprint, str(e), now)
        issued = Issued(issued_at=now, expires_at=cred.expires_at, source=fingerprint)
        use = credential_use(policy)
        assert use is not None  # every rotated method has one
        await self._apply_secret(build_secret(policy, key=use.key, value=cred.value, issued=issued))
        self._issued[key] = issued
        self._failures.pop(key, None)
        self.metrics.refreshes.labels("success").inc()
        next_in = schedule.after_success(issued, now=now)
        msg = _rotated_message(key, issued)
        log.info("BackendSecurityPolicy %s: %s", key, msg)
        await self._set_condition(obj, (ROTATED, msg, True))
        self.recorder.normal(obj, ROTATED, msg)
        return Result(requeue_after=next_in)

    def _undone(self, key: ObjKey, source: str) -> bool:
        """Whether the last failure was for other inputs than ``source``."""
        failure = self._failures.get(key)
        return failure is not None and failure.source != source

    # --- outcomes

    async def _failed(
        self, obj: Obj, key: ObjKey, current: Issued | None, source: str, error: str, now: datetime
    ) -> Result:
        failure, delay = schedule.after_failure(
            previous=self._failures.get(key), source=source, error=error, current=current, now=now
        )
        self._failures[key] = failure
        self.metrics.refreshes.labels("failure").inc()
        valid = current is not None and current.expires_at > now
        if current is not None and not valid:
            await self._delete_secret(key)
            self._issued.pop(key, None)
        kept = _kept(current, now)
        event = f"refreshing the credentials failed: {error}; {kept}"
        log.warning("BackendSecurityPolicy %s: %s (attempt %d)", key, event, failure.count)
        reason = FAILED if valid or current is None else EXPIRED
        retry = f"retry {failure.count + 1} at {format_time(failure.retry_at)}"
        await self._set_condition(obj, (reason, f"{event}; {retry}", False))
        self.recorder.warning(obj, reason, event)
        return Result(requeue_after=delay)

    async def _expire(self, obj: Obj, key: ObjKey, current: Issued) -> None:
        await self._delete_secret(key)
        self._issued.pop(key, None)
        failure = self._failures.get(key)
        error = f"refreshing the credentials failed: {failure.error}; " if failure else ""
        msg = f"{error}{_kept(current, self.now())}"
        log.warning("BackendSecurityPolicy %s: %s", key, msg)
        await self._set_condition(obj, (EXPIRED, msg, False))
        self.recorder.warning(obj, EXPIRED, msg)

    async def _blocked(self, obj: Obj, key: ObjKey, current: Issued | None, why: str) -> Result:
        """The inputs can't be read: nothing to try until they change. Their events bring us back; so does
        ``BLOCKED_RECHECK``, in case a Secret's event came before the policy was in the cache (it then named
        no policy). Credentials already issued still expire on time."""
        now = self.now()
        if current is not None and current.expires_at <= now:
            await self._delete_secret(key)
            self._issued.pop(key, None)
        msg = f"{why}; {_kept(current, now)}"
        await self._set_condition(obj, (INVALID_REF, msg, False))
        wake = BLOCKED_RECHECK
        if current is not None and current.expires_at > now:
            wake = min(wake, (current.expires_at - now).total_seconds())
        return Result(requeue_after=wake)

    # --- I/O

    def _current(self, key: ObjKey, secret: Obj | None) -> Issued | None:
        """The credentials in force: the Secret's, or those this process issued last when the Secret does
        not show them yet (an older copy, or none)."""
        stored = issued_from(secret)
        mine = self._issued.get(key)
        if mine is None or (stored is not None and stored.issued_at >= mine.issued_at):
            return stored
        return mine if secret is not None else None

    async def _read_secret(self, key: ObjKey) -> Obj | None:
        try:
            return await self.client.get(SECRETS, name=n.rotated_secret(key.name), namespace=key.namespace)
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    async def _apply_secret(self, body: Obj) -> None:
        md = body["metadata"]
        await self.client.patch(
            SECRETS,
            name=md["name"],
            namespace=md["namespace"],
            body=body,
            content_type=APPLY_PATCH,
            field_manager=n.FIELD_MANAGER,
            force=True,
        )

    async def _delete_secret(self, key: ObjKey) -> None:
        secret = await self._read_secret(key)
        labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
        if secret is None or labels.get(n.MANAGED_BY_KEY) != n.MANAGED_BY:
            return  # never delete a Secret that is not ours
        try:
            await self.client.delete(SECRETS, name=n.rotated_secret(key.name), namespace=key.namespace)
            log.info("BackendSecurityPolicy %s: deleted its temporary credentials", key)
        except Exception as e:
            if not is_not_found(e):
                raise

    async def _set_condition(self, obj: Obj, cond: tuple[str, str, bool] | None) -> None:
        """Set (or, with None, remove) the ``CredentialsRotated`` condition."""
        generation = int((obj.get("metadata") or {}).get("generation") or 0)

        def mutate(status: dict[str, Any]) -> None:
            conditions = status.setdefault("conditions", [])
            if cond is None:
                remove_status_condition(conditions, CONDITION)
                return
            reason, message, ok = cond
            set_status_condition(
                conditions,
                new_condition(
                    type=CONDITION,
                    status="True" if ok else "False",
                    reason=reason,
                    message=message,
                    observed_generation=generation,
                ),
            )

        await self.status.update(self.policy_resource, obj, mutate)


def _rotated_message(key: ObjKey, issued: Issued) -> str:
    return (
        f"temporary credentials issued at {format_time(issued.issued_at)}, valid until "
        f"{format_time(issued.expires_at)} (Secret {key.namespace}/{n.rotated_secret(key.name)}); "
        f"next refresh at {format_time(schedule.refresh_at(issued))}"
    )


def _kept(current: Issued | None, now: datetime) -> str:
    if current is None:
        return "no credentials were issued yet: requests to the backends that use this policy fail"
    if current.expires_at > now:
        return (
            f"the credentials issued at {format_time(current.issued_at)} stay in use until they expire at "
            f"{format_time(current.expires_at)}"
        )
    return (
        f"the credentials expired at {format_time(current.expires_at)} and were removed: requests to the "
        "backends that use this policy fail until a refresh succeeds"
    )


def _parse(obj: Obj | None) -> BackendSecurityPolicy | None:
    if obj is None:
        return None
    try:
        return BackendSecurityPolicy.model_validate(obj)
    except ValidationError:
        return None


def _decode(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        return None
