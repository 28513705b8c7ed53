"""Credentials never reach aigw's log, whatever a child prints: lines as Envoy prints them at debug level."""

from __future__ import annotations

from aigw.standalone.redact import Redactor


def _run(lines: list[str]) -> list[str]:
    redact = Redactor()
    return [redact(line) for line in lines]


def test_envoy_header_dumps_lose_every_credential_value() -> None:
    out = _run(
        [
            "'authorization', 'Bearer sk-client-SECRET-123'",
            "'api-key', 'azure-SECRET'",
            "'X-Amz-Security-Token', 'IQoJb3JpZ2luX2VjEJr'",
            "'content-type', 'application/json'",
        ]
    )
    assert out == [
        "'authorization', '<redacted>'",
        "'api-key', '<redacted>'",
        "'X-Amz-Security-Token', '<redacted>'",
        "'content-type', 'application/json'",
    ]


def test_the_ext_procs_credential_metadata_in_a_protobuf_dump_is_redacted() -> None:
    dump = [
        '          key: "io.envoy.ai_gateway.credentials"',
        "          value {",
        "            struct_value {",
        "              fields {",
        '                key: "api-key"',
        "                value {",
        '                  string_value: "azure-SECRET-key"',
        "                }",
        "              }",
        '                key: "authorization"',
        '                value: "%DYNAMIC_METADATA(io.envoy.ai_gateway.credentials:authorization)%"',
        '                key: "model"',
        '                  string_value: "gpt-4o-mini"',
    ]
    out = _run(dump)
    assert "SECRET" not in "\n".join(out)
    assert out[6] == '                  string_value: "<redacted>"'
    assert out[10] == dump[10]  # a route's header template is no secret
    assert out[12] == dump[12]  # nor is any other key's value


def test_a_bearer_token_anywhere_is_redacted() -> None:
    assert _run(['string_value: "Bearer sk-demo-not-a-real-key" trailing']) == [
        'string_value: "Bearer <redacted>" trailing'
    ]
