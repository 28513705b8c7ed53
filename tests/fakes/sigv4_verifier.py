"""An independent SigV4 check of a received request, recomputed from its raw parts with botocore's primitives.

It trusts nothing the signer computed: it reads the credential scope, the signed header list and the
signature from the ``Authorization`` header, rebuilds the canonical request from the raw method, path, body
and the signed headers as they arrived, and compares signatures in constant time, as AWS does.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/"
    r"aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})"
)
MAX_SKEW = dt.timedelta(minutes=5)


class SignatureError(Exception):
    """Why the request is refused (AWS answers such requests with 403)."""


@dataclass(frozen=True)
class KnownKey:
    secret: str
    session_token: str | None = None


def verify(
    *,
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, KnownKey],
    region: str,
    service: str = "bedrock",
    now: dt.datetime | None = None,
) -> str:
    """Check the request; return the access key id that signed it, or raise SignatureError.

    ``headers`` must have lower-case names, values as received."""
    m = _AUTH.fullmatch(headers.get("authorization", ""))
    if m is None:
        raise SignatureError("missing or malformed SigV4 Authorization header")
    key = keys.get(m["key"])
    if key is None:
        raise SignatureError(f"unknown access key {m['key']}")
    if (m["region"], m["service"]) != (region, service):
        raise SignatureError(f"credential scope {m['region']}/{m['service']}, expected {region}/{service}")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureError("missing or malformed x-amz-date") from None
    if abs((now or dt.datetime.now(dt.UTC)) - when) > MAX_SKEW or amz_date[:8] != m["date"]:
        raise SignatureError("x-amz-date is outside the allowed skew or disagrees with the scope")
    if key.session_token is not None and headers.get("x-amz-security-token") != key.session_token:
        raise SignatureError("the security token is missing or wrong")
    signed = m["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise SignatureError("host and x-amz-date must be signed")
    missing = [h for h in signed if h not in headers]
    if missing:
        raise SignatureError(f"signed headers missing from the request: {missing}")
    request = AWSRequest(
        method=method,
        url=f"https://{headers['host']}{raw_path}",
        data=body,
        headers={h: headers[h] for h in signed},
    )
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(m["key"], key.secret, key.session_token), service, region)
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m["sig"]):
        raise SignatureError("The request signature we calculated does not match the signature you provided.")
    return m["key"]
