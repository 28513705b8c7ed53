"""The Secret the rotation writes (``ai-eg-bsp-<policy>``), and reading back what it holds (pure).

It lives in the policy's namespace, is owned by the policy, labelled ``managed-by`` like every object of ours,
and holds one key, the one the ext_proc reads (``credentials``: an AWS credentials file; ``azureAccessToken``:
an access token). Its annotations say when the credentials were issued, when they expire, and a fingerprint
of the inputs they were issued from: enough for a restarted controller to know when the next refresh is due.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson

from api.corev1 import SECRET
from api.objects import Obj
from api.v1alpha1 import BackendSecurityPolicy
from controller.rotation.schedule import Issued
from controller.translate import names as n

ISSUED_AT = "aigateway.envoyproxy.io/credentials-issued-at"
EXPIRES_AT = "aigateway.envoyproxy.io/credentials-expire-at"
SOURCE = "aigateway.envoyproxy.io/credentials-source"
POLICY_LABEL = "aigateway.envoyproxy.io/backend-security-policy"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(when: datetime) -> str:
    """RFC 3339, UTC, whole seconds (as in conditions)."""
    return when.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def source_fingerprint(policy: BackendSecurityPolicy, *, client_secret: str, endpoint: str) -> str:
    """A digest of everything a refresh reads: the policy's spec and uid, the client secret, and the token
    endpoint the controller is configured with. Credentials issued from another digest are refreshed at once.
    (A digest of a digest of the secret: it tells whether the secret changed, not what it is.)"""
    secret_digest = hashlib.sha256(client_secret.encode()).hexdigest()
    doc = {
        "uid": policy.metadata.uid,
        "spec": policy.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "secret": secret_digest,
        "endpoint": endpoint,
    }
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def aws_credentials_file(*, access_key_id: str, secret_access_key: str, session_token: str) -> str:
    """An AWS credentials file (INI) with one ``default`` profile, as the ext_proc reads it."""
    return (
        "[default]\n"
        f"aws_access_key_id = {access_key_id}\n"
        f"aws_secret_access_key = {secret_access_key}\n"
        f"aws_session_token = {session_token}\n"
    )


def build_secret(policy: BackendSecurityPolicy, *, key: str, value: str, issued: Issued) -> Obj:
    """The Secret holding ``value`` under ``key`` for ``policy``, owned by it (server-side apply body)."""
    md = policy.metadata
    owner = {
        "apiVersion": policy.api_version,
        "kind": policy.kind,
        "name": md.name,
        "uid": md.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }
    return {
        "apiVersion": SECRET.api_version,
        "kind": SECRET.kind,
        "metadata": {
            "name": n.rotated_secret(md.name),
            "namespace": md.namespace,
            "labels": {n.MANAGED_BY_KEY: n.MANAGED_BY, POLICY_LABEL: n.label_value(md.name)},
            "annotations": {
                ISSUED_AT: format_time(issued.issued_at),
                EXPIRES_AT: format_time(issued.expires_at),
                SOURCE: issued.source,
            },
            "ownerReferences": [owner] if md.uid else [],
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode()},
    }


def issued_from(secret: Obj | None) -> Issued | None:
    """What a Secret written by ``build_secret`` says of its credentials (None: not ours, or unreadable)."""
    md = (secret or {}).get("metadata") or {}
    if (md.get("labels") or {}).get(n.MANAGED_BY_KEY) != n.MANAGED_BY:
        return None
    ann = md.get("annotations") or {}
    try:
        return Issued(
            issued_at=parse_time(str(ann[ISSUED_AT])),
            expires_at=parse_time(str(ann[EXPIRES_AT])),
            source=str(ann[SOURCE]),
        )
    except (KeyError, ValueError):
        return None
