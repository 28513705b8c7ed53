from __future__ import annotations

import gzip

import orjson

from extproc.errors import error_body, normalize_upstream_error


def test_error_body_has_the_openai_shape() -> None:
    assert orjson.loads(error_body(message="m", type_="t", code="c")) == {
        "error": {"message": "m", "type": "t", "code": "c"}
    }


def test_non_openai_errors_are_wrapped_and_openai_errors_pass() -> None:
    wrapped = normalize_upstream_error(status=502, body=b"bad gateway")
    assert wrapped is not None
    assert orjson.loads(wrapped)["error"] == {
        "message": "bad gateway",
        "type": "upstream_error",
        "code": "502",
    }
    assert normalize_upstream_error(status=400, body=b'{"error": {"message": "x"}}') is None
    empty = normalize_upstream_error(status=500, body=b"")
    assert empty is not None and b"status 500" in empty


def test_a_gzipped_upstream_error_is_read_decompressed() -> None:
    openai_shaped = b'{"error":{"message":"slow down","type":"rate_limit_error","code":"rl"}}'
    assert normalize_upstream_error(status=429, body=gzip.compress(openai_shaped)) == openai_shaped
    out = normalize_upstream_error(status=502, body=gzip.compress(b"bad gateway"))
    assert out is not None
    assert orjson.loads(out)["error"]["message"] == "bad gateway"


def test_a_gzip_bomb_in_an_upstream_error_stays_small() -> None:
    out = normalize_upstream_error(status=500, body=gzip.compress(b"x" * (50 * 1024 * 1024)))
    assert out is not None
    assert 64 * 1024 <= len(out) < 65 * 1024
