"""Body parser properties: it returns a ParsedBody or raises BadBodyError, for any input whatsoever."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.body import BadBodyError, parse_request_body, with_model

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_bad_body(raw: bytes) -> None:
    try:
        parsed = parse_request_body(raw)
    except BadBodyError as e:
        assert str(e)
    else:
        assert isinstance(parsed.model, str) and parsed.model


@given(JSON, JSON)
def test_arbitrary_json_documents_parse_or_raise_bad_body(model: Any, other: Any) -> None:
    raw = orjson.dumps({"model": model, "other": other})
    try:
        parsed = parse_request_body(raw)
    except BadBodyError:
        assert not (isinstance(model, str) and model)
    else:
        assert parsed.model == model


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), JSON)
def test_model_rewrite_keeps_every_other_field(model: str, target: str, other: Any) -> None:
    parsed = parse_request_body(orjson.dumps({"model": model, "messages": other, "stream": True}))
    assert parsed.stream is True
    rewritten = orjson.loads(with_model(parsed, target))
    assert rewritten == {"model": target, "messages": other, "stream": True}


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"{}", b'{"model": 1}', b'{"model": ""}', b"null"])
def test_unusable_bodies_are_bad(raw: bytes) -> None:
    with pytest.raises(BadBodyError):
        parse_request_body(raw)


def test_stream_is_true_only_for_json_true() -> None:
    assert parse_request_body(b'{"model": "m", "stream": "yes"}').stream is False
    assert parse_request_body(b'{"model": "m", "stream": true}').stream is True


BIG_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), BIG_JSON, st.booleans())
def test_model_rewrite_changes_only_the_model_bytes(
    model: str, target: str, other: Any, ascii_only: bool
) -> None:
    """Any JSON value (integers of any size, infinities as 1e999, escapes) survives byte for byte."""
    before = json.dumps({"messages": other, "n": 1}, ensure_ascii=ascii_only).replace("Infinity", "1e999")
    after = json.dumps({"x": [other]}, ensure_ascii=ascii_only, indent=1).replace("Infinity", "1e999")
    raw = f'{before[:-1]}, "model" :\n {json.dumps(model)} , "rest": {after}}}'.encode()
    parsed = parse_request_body(raw)
    assert parsed.model == model
    expected = (
        f'{before[:-1]}, "model" :\n {json.dumps(target, ensure_ascii=False)} , "rest": {after}}}'.encode()
    )
    assert with_model(parsed, target) == expected


def test_integers_beyond_64_bits_and_odd_numbers_are_kept_exactly() -> None:
    raw = b'{"model":"alias","seed":123456789012345678901234567890,"t":1.10,"big":1e400,"neg":-0.0}'
    parsed = parse_request_body(raw)  # orjson alone refuses 1e400
    assert with_model(parsed, "real-model") == raw.replace(b'"alias"', b'"real-model"')


def test_duplicate_and_escaped_model_keys_are_all_rewritten_and_nested_ones_are_not() -> None:
    raw = b'{"model":"a","nested":{"model":"keep"},"mod\\u0065l":"b","list":["model"],"model" : "c"}'
    parsed = parse_request_body(raw)
    assert parsed.model == "c"  # what orjson (and most servers) take
    assert orjson.loads(with_model(parsed, "t")) == {
        "model": "t",
        "nested": {"model": "keep"},
        "list": ["model"],
    }
    assert with_model(parsed, "t").count(b'"t"') == 3


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "x": NaN}',
        b'{"model": "m", "x": Infinity}',
        b'\xef\xbb\xbf{"model": "m"}',
        '{"model": "m"}'.encode("utf-16"),
    ],
)
def test_what_json_is_not_stays_bad_in_the_fallback_parser(raw: bytes) -> None:
    with pytest.raises(BadBodyError):
        parse_request_body(raw)
