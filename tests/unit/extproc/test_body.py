"""Body parser properties: it returns a ParsedBody or raises BadBodyError, for any input whatsoever."""

from __future__ import annotations

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
