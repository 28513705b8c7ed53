"""``aigw run`` refuses, before handing them over, the header credentials the ext_proc would refuse."""

from __future__ import annotations

from aigw.standalone.translate import credential_refusals
from api import filterconfig as fc

SCHEMA = {"name": "OpenAI", "version": "v1"}


def _config(*, api_key: str, azure: str, aws: str) -> fc.FilterConfig:
    return fc.FilterConfig.model_validate(
        {
            "uuid": "u",
            "backends": [
                {"name": "a.ns", "schema": SCHEMA, "auth": {"apiKey": {"filename": f"/auth/{api_key}"}}},
                {
                    "name": "w.ns",
                    "schema": SCHEMA,
                    "auth": {"aws": {"credentialFileName": f"/auth/{aws}", "region": "us-east-1"}},
                },
                {"name": "plain.ns", "schema": SCHEMA},
            ],
            "pools": [
                {
                    "name": "p.ns",
                    "members": [
                        {"name": "z.ns", "schema": SCHEMA, "auth": {"azure": {"filename": f"/auth/{azure}"}}}
                    ],
                }
            ],
        }
    )


CONFIG = _config(api_key="ns.s.apiKey", azure="ns.az.token", aws="ns.aws.credentials")


def test_usable_keys_and_aws_files_pass() -> None:
    files = {"ns.s.apiKey": b"sk-1\n", "ns.az.token": b"tok", "ns.aws.credentials": b"[default]\nx = 1\n"}
    assert credential_refusals(CONFIG, files) == []


def test_each_key_the_ext_proc_would_refuse_is_named_without_its_value() -> None:
    files = {"ns.s.apiKey": b"sk-1\nsk-2", "ns.az.token": b"", "ns.aws.credentials": b"[default]\n"}
    refusals = credential_refusals(CONFIG, files)
    assert len(refusals) == 2, refusals
    assert "backend a.ns" in refusals[0] and "ns.s.apiKey" in refusals[0]
    assert "not allowed in an HTTP header" in refusals[0]
    assert "backend z.ns" in refusals[1] and "is empty" in refusals[1]
    assert not any("sk-1" in r for r in refusals)


def test_a_missing_secret_is_left_to_its_condition() -> None:
    assert credential_refusals(CONFIG, {}) == []
