"""``api.headers.header_credential``: the one rule for a key that goes into a header."""

from __future__ import annotations

import re

import pytest

from api.headers import header_credential


@pytest.mark.parametrize(
    ("raw", "key"), [(b"sk-abc", "sk-abc"), (b"  sk-abc\n", "sk-abc"), (b"a b\tc", "a b\tc")]
)
def test_a_usable_key_is_stripped(raw: bytes, key: str) -> None:
    assert header_credential(raw) == key


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "is empty"),
        (b" \n", "is empty"),
        (b"\xff\xfe", "is not UTF-8 (byte 0)"),
        (b"sk-a\nsk-b", "not allowed in an HTTP header"),
        (b"sk-a\rX-Evil: 1", "not allowed in an HTTP header"),
        (b"sk-\x01", "not allowed in an HTTP header"),
        ("sk-é".encode(), "not allowed in an HTTP header"),
    ],
)
def test_an_unusable_key_is_refused_without_quoting_it(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as exc:
        header_credential(raw)
    assert "sk-" not in str(exc.value)
