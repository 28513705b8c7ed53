"""AWS SigV4 for Bedrock requests, with botocore's signer, and the credentials file it reads.

The ext_proc signs the request exactly as it leaves for the upstream: the translated path and body, after
every other mutation, for service ``bedrock`` and the policy's region, with ``Host`` set to the regional
``bedrock-runtime`` endpoint (the ext_proc sets ``:authority`` to it, so what Envoy sends is what was signed).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "bedrock"


class CredentialsFileError(Exception):
    """The credentials file cannot be read or lacks the profile's keys; the message says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AWSCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def read_credentials_file(path: Path, *, profile: str) -> AWSCredentials:
    """The ``profile`` section of an AWS INI credentials file (``aws_access_key_id``,
    ``aws_secret_access_key``, optional ``aws_session_token``)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CredentialsFileError(f"cannot read AWS credentials file {path}: {e}") from e
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as e:
        raise CredentialsFileError(f"AWS credentials file {path} is not an INI file: {e.message}") from e
    for section in (profile, f"profile {profile}"):
        if parser.has_section(section):
            values = parser[section]
            break
    else:
        raise CredentialsFileError(f"AWS credentials file {path} has no profile {profile!r}")
    key, secret = values.get("aws_access_key_id", "").strip(), values.get("aws_secret_access_key", "").strip()
    if not key or not secret:
        raise CredentialsFileError(
            f"AWS credentials file {path}, profile {profile!r}: aws_access_key_id and aws_secret_access_key "
            "are required"
        )
    token = values.get("aws_session_token", "").strip() or None
    if not all(" " < c <= "~" for c in key + secret + (token or "")):
        # the key id and token travel in headers: refuse what a header can't carry, never echoing it
        raise CredentialsFileError(
            f"AWS credentials file {path}, profile {profile!r}: a value holds characters not allowed there"
        )
    return AWSCredentials(access_key_id=key, secret_access_key=secret, session_token=token)


def bedrock_host(region: str) -> str:
    return f"bedrock-runtime.{region}.amazonaws.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class SigV4Signer:
    """Signs requests for one region with one set of credentials."""

    region: str
    credentials: AWSCredentials = field(repr=False)

    @property
    def host(self) -> str:
        return bedrock_host(self.region)

    def sign(self, *, method: str, path: str, body: bytes) -> list[tuple[str, str]]:
        """The headers to set on the request (``authorization``, ``x-amz-date``, ``x-amz-security-token``
        when the credentials have a session token) for ``method`` ``path`` (with query) and ``body``."""
        c = self.credentials
        request = AWSRequest(method=method, url=f"https://{self.host}{path}", data=body)
        SigV4Auth(
            Credentials(c.access_key_id, c.secret_access_key, c.session_token), SERVICE, self.region
        ).add_auth(request)
        out = [("authorization", str(request.headers["Authorization"]))]
        out.append(("x-amz-date", str(request.headers["X-Amz-Date"])))
        if c.session_token:
            out.append(("x-amz-security-token", c.session_token))
        return out
